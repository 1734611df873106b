// Flow 11: another KDE Connect (kdeconnectd, GSConnect) holds UDP port 1716 on this computer,
// here a socket of the test bound to 127.0.0.1:1716 (it sends nothing). The app leaves KDE
// Connect off: Settings shows it not running and the doctor's reason, Devices does not speak
// of phones; turning the switch off is saved for the next start. Its own file: a second app
// in one D-Bus session would be swallowed by the first (single instance).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { join } from 'node:path';
import { click, el, readIf, screenshot, text, waitFor } from './harness.mjs';
import { runFlow } from './setup.mjs';

/** KDE Connect's discovery port (ferry_kdeconnect::UDP_PORT). */
const KDE_UDP_PORT = 1716;

/** Binds 127.0.0.1:1716 the way another KDE Connect would (no address reuse). */
async function holdPort() {
  const s = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  await new Promise((ok, fail) => {
    s.once('error', (e) => fail(new Error(`cannot hold UDP 127.0.0.1:${KDE_UDP_PORT} for the test: ${e.message}`)));
    s.bind({ address: '127.0.0.1', port: KDE_UDP_PORT, exclusive: true }, ok);
  });
  return s;
}

test('with UDP 1716 taken, Settings says KDE Connect is off and why', async () => {
  const held = await holdPort();
  try {
    await runFlow('11', { upTo: 'firstRun', daemon: false }, async ({ app, b }) => {
      const doc = (await app.cli('doctor')).kdeconnect;
      assert.equal(doc.state, 'failed');
      assert.match(doc.reason, /another KDE Connect .* UDP port 1716/);

      await click(b, 'nav-settings');
      assert.equal(await (await el(b, 'settings-kdeconnect')).isSelected(), true, 'asked for, as by default');
      const state = await waitFor('the reason in Settings', async () => {
        const t = await text(b, 'settings-kdeconnect-state');
        return t.includes('Not running now: another KDE Connect') ? t : null;
      });
      assert.match(state, /^Off\s/);
      assert.match(state, /Ferry tries again when it restarts\./);
      await screenshot(b, '11-kde-settings-port-taken');

      // Off for the next start: written to ferry.toml; nothing changes at the restart (it
      // does not run now), so the saved message promises nothing.
      await click(b, 'settings-kdeconnect');
      await click(b, 'settings-save');
      assert.equal(await text(b, 'settings-saved'), 'Saved.');
      assert.match(readIf(join(app.ferryHome, 'ferry.toml')), /kdeconnect = false/);

      // Devices does not offer what does not run.
      await click(b, 'nav-devices');
      await el(b, 'devices-empty');
      assert.doesNotMatch(await text(b, 'devices-empty'), /KDE Connect/);
      assert.equal((await b.$$('[data-testid="pair-kde-hint"]')).length, 0);
    });
  } finally {
    held.close();
  }
});
