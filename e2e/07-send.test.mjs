// Flow 7: one-shot file sends. The daemon sends a file: the app shows an accept prompt in
// Activity (with a badge); Accept puts the same bytes in the app's inbox and the transfer shows
// received. With "Accept files without asking" ticked in Devices, the next send arrives with no
// prompt. The app sends a file to the daemon (through its node, as the native picker cannot be
// driven): Activity shows it waiting, then delivered. Devices mutes the daemon and adds an
// address; Settings saves a new inbox (and refuses a relative one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { click, el, readIf, screenshot, tempDir, text, transferStatuses as statuses, type, waitFor } from './harness.mjs';
import { runFlow } from './setup.mjs';

test('files sent both ways, with the accept prompt and auto-accept', () =>
  runFlow('07', { upTo: 'paired' }, async ({ app, b, daemon }) => {
    const appId = (await app.cli('id')).device_id;

    // An offer from the daemon: badge, prompt card, Accept, same bytes in the inbox.
    const src = tempDir('daemon-send');
    const body = `holiday photos index ${Date.now()}\n`.repeat(2000);
    writeFileSync(join(src, 'photos.txt'), body);
    await daemon.cli('send', appId, join(src, 'photos.txt'), '--no-wait');
    await waitFor('the Activity badge', async () => (await text(b, 'badge-activity')) === '1');
    await click(b, 'nav-activity');
    await el(b, 'send-offer');
    assert.match(await text(b, 'send-offer-title'), /Desk wants to send you photos\.txt/);
    await screenshot(b, '07-send-offer');
    await click(b, 'send-offer-accept');
    const received = await waitFor('the received transfer', async () =>
      (await app.cli('transfers')).find((t) => t.direction === 'in' && t.state === 'done'));
    assert.equal(received.placed.length, 1);
    assert.equal(readIf(received.placed[0]), body, 'the inbox holds the same bytes');
    await waitFor('Received in Activity', async () => (await statuses(b)).includes('Received'));
    assert.equal((await b.$$('[data-testid="send-offer"]')).length, 0, 'the prompt is gone');

    // Auto-accept from Devices: the next send needs no answer.
    await click(b, 'nav-devices');
    await click(b, 'device-auto-accept');
    await waitFor('auto-accept on', async () => (await app.cli('devices')).some((d) => d.id === daemon.id && d.auto_accept));
    await el(b, 'device-message');
    assert.match(await text(b, 'device-message'), /accepted without asking/);
    await screenshot(b, '07-devices');
    writeFileSync(join(src, 'notes.md'), '# trip notes\n');
    await daemon.cli('send', appId, join(src, 'notes.md'), '--no-wait');
    const second = await waitFor('the auto-accepted transfer', async () =>
      (await app.cli('transfers')).find((t) => t.direction === 'in' && t.state === 'done' && t.names.includes('notes.md')));
    assert.equal(readIf(second.placed[0]), '# trip notes\n');

    // The app sends to the daemon: waiting for its answer, then delivered.
    const mine = tempDir('app-send');
    writeFileSync(join(mine, 'budget.csv'), 'month,amount\njan,10\n');
    await app.cli('send', daemon.id, join(mine, 'budget.csv'), '--no-wait');
    await click(b, 'nav-activity');
    await waitFor('the outgoing transfer waiting', async () => (await statuses(b)).includes('Waiting for Desk to accept'));
    const offer = await waitFor('the offer on the daemon', async () => (await daemon.cli('pending')).find((p) => p.kind === 'send'));
    await daemon.cli('accept', String(offer.id));
    await waitFor('Delivered in Activity', async () => (await statuses(b)).includes('Delivered to Desk'));
    await screenshot(b, '07-activity');

    // Devices: mute and an extra address, as the node reports them.
    await click(b, 'nav-devices');
    await click(b, 'device-mute');
    await waitFor('muted', async () => (await app.cli('devices')).some((d) => d.id === daemon.id && d.muted));
    await el(b, 'device-muted');
    await click(b, 'device-add-address');
    await type(b, 'device-address', '127.0.0.1:22999');
    await click(b, 'device-address-save');
    await waitFor('the added address', async () =>
      (await app.cli('devices')).some((d) => d.id === daemon.id && d.addresses.includes('127.0.0.1:22999')));
    assert.match(await text(b, 'device-message'), /also tries 127\.0\.0\.1:22999/);
    await screenshot(b, '07-devices-muted');
    await click(b, 'device-mute');
    await waitFor('unmuted', async () => (await app.cli('devices')).some((d) => d.id === daemon.id && !d.muted));

    // Settings: a new inbox is saved to ferry.toml and used from the next start; a relative
    // one is refused with the node's message.
    await click(b, 'nav-settings');
    await type(b, 'settings-inbox', 'Downloads');
    await click(b, 'settings-save');
    await el(b, 'settings-error');
    assert.match(await text(b, 'settings-error'), /absolute path/);
    const inbox = join(app.home, 'Received');
    await type(b, 'settings-inbox', inbox);
    await click(b, 'settings-save');
    await el(b, 'settings-saved');
    assert.match(await text(b, 'settings-saved'), /the new inbox after it restarts/);
    assert.match(readIf(join(app.ferryHome, 'ferry.toml')), new RegExp(`inbox = "${inbox}"`));
    assert.doesNotMatch(readIf(join(app.ferryHome, 'ferry.toml')), /mdns/, 'an untouched mDNS box is not written');
    await screenshot(b, '07-settings');
  }));
