// Flow 3: the daemon offers a share; the app accepts it into a chosen folder; a file created on
// the daemon arrives there (same bytes) and shows in Activity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { click, el, offerFromDaemon, readIf, screenshot, shareFromDaemon, waitFor } from './harness.mjs';
import { runFlow } from './setup.mjs';

test('accepting a share offer syncs a file from the daemon', () =>
  runFlow('03', { upTo: 'paired' }, async ({ app, b, daemon }) => {
    const offered = await offerFromDaemon(app, daemon);
    await click(b, 'nav-folders');
    await el(b, 'share-offer');
    assert.match(await (await el(b, 'share-offer')).getText(), /Desk offers “Projects”/);
    await screenshot(b, '03-share-offer');
    const dest = join(app.home, 'Projects from Desk');
    const { folder } = await shareFromDaemon(app, daemon, dest, offered);
    const body = `plan for monday ${Date.now()}\n`;
    writeFileSync(join(folder, 'plan.txt'), body);
    await waitFor('plan.txt in the accepted folder', () => readIf(join(dest, 'plan.txt')) === body);
    await click(b, 'nav-activity');
    await waitFor('the Activity entry', async () => {
      for (const e of await b.$$('[data-testid="activity-entry"]')) if ((await e.getText()).includes('Added plan.txt')) return true;
      return false;
    });
    await screenshot(b, '03-activity');
    await click(b, 'nav-folders');
    await waitFor('two folders listed', async () => (await b.$$('[data-testid="folder-row"]')).length === 2);
    await screenshot(b, '03-folders');
  }));
