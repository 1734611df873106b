// Flow 5: Pause from the tray menu (clicked over D-Bus through the published dbusmenu): the
// state shows paused and a file created on the daemon does not arrive, although its index
// did; Resume (tray again) and it arrives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { el, readIf, screenshot, waitFor } from './harness.mjs';
import { runFlow } from './setup.mjs';
import { clickTray, trayItems } from './tray-dbus.mjs';

test('pause from the tray holds a file until resume', () =>
  runFlow('05', { upTo: 'shared', panel: true }, async ({ app, b, panel, share, folder, dest, sync, watchEvents }) => {
    await sync('before.txt', 'synced before the pause\n');

    const { items } = await trayItems(panel);
    for (const l of ['Open Ferry', 'Pause syncing', 'Send note to', 'Open folder', 'Quit Ferry']) {
      assert.ok(items.some((i) => i.label === l), `tray menu has "${l}": ${items.map((i) => i.label)}`);
    }
    await clickTray(panel, 'Pause syncing');
    await waitFor('paused state', async () => (await (await el(b, 'overall-state')).getText()).includes('Paused'));
    assert.equal((await app.cli('status')).paused, true);
    await waitFor('the tray offers Resume', async () => (await trayItems(panel)).items.some((i) => i.label === 'Resume syncing'));

    // Watch the app's events: the daemon's index for the new file arrives, the file does not.
    const events = await watchEvents('pausing');
    const mark = events.mark();
    writeFileSync(join(folder, 'held.txt'), 'held until resume\n');
    await events.indexFrom(share.id, mark);
    assert.equal(existsSync(join(dest, 'held.txt')), false, 'held.txt must not arrive while paused');
    await screenshot(b, '05-paused');

    await clickTray(panel, 'Resume syncing');
    await waitFor('held.txt after resume', () => readIf(join(dest, 'held.txt')) === 'held until resume\n');
    await waitFor('up to date state', async () => !(await (await el(b, 'overall-state')).getText()).includes('Paused'));
    await screenshot(b, '05-resumed');
  }));
