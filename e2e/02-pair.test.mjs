// Flow 2: the daemon asks to pair; the app's prompt shows the code the daemon printed; Accept;
// `ferry pair` exits 0 and both sides list each other as paired.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { click, daemonPair, el, screenshot, waitFor } from './harness.mjs';
import { runFlow } from './setup.mjs';

test('pairing prompt shows the same code; accept pairs both sides', () =>
  runFlow('02', { upTo: 'firstRun' }, async ({ app, b, daemon }) => {
    const status = await app.cli('status');
    const p = daemonPair(daemon, status.listen);
    const code = await p.code();
    await el(b, 'pair-prompt');
    assert.equal((await (await el(b, 'pair-code')).getText()).replace(/\s/g, ''), code.replace(/\s/g, ''));
    assert.equal(await (await el(b, 'pair-name')).getText(), 'Desk');
    await screenshot(b, '02-pair-prompt');
    await click(b, 'pair-accept');
    assert.equal(await p.exited, 0, p.output());
    const appDevices = await app.cli('devices');
    assert.ok(appDevices.some((d) => d.id === daemon.id && d.paired), 'the app lists the daemon as paired');
    const daemonDevices = await daemon.cli('devices');
    assert.ok(daemonDevices.some((d) => d.id === status.device_id && d.paired), 'the daemon lists the app as paired');
    await click(b, 'nav-devices');
    await waitFor('the device row', async () => (await b.$$('[data-testid="device-row"]')).length === 1);
    await screenshot(b, '02-devices');
  }));
