// Flow 12: a LocalSend device (the ls-peer test binary on 127.0.0.1, registering with the
// app's LocalSend port as the LocalSend app does when it hears an announcement; no multicast)
// shows up in Devices without pairing: a phone icon, "LocalSend · Pixel 8", its short
// fingerprint, Nearby, Forget. It offers a file: the offer in Activity names it and shows its
// whole fingerprint with the line to check it on the device; Accept puts the same bytes
// (SHA-256) in the app's inbox. A note typed in Notes reaches it as a LocalSend text message
// with the same text; once it takes it, the note shows Delivered and the conversation says
// LocalSend has no read receipts. Settings shows LocalSend running on the doctor's port with
// the app's fingerprint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { click, el, screenshot, tempDir, text, transferStatuses, type, waitFor } from './harness.mjs';
import { startLsPeer } from './lspeer.mjs';
import { runFlow } from './setup.mjs';

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
/** Big enough to be streamed in many reads; small enough for CI. */
const FILE_BYTES = 2 * 1024 * 1024 + 29;
/** "ABCD EF01 …": a fingerprint as the UI groups it. */
const grouped = (fp, digits = 64) => fp.toUpperCase().slice(0, digits).match(/.{1,4}/g).join(' ');
/** An element's text with its line breaks (a fingerprint shows as two lines) as spaces. */
const flat = async (b, id) => (await text(b, id)).replace(/\s+/g, ' ').trim();

/** The app's view of the peer (`ferry devices --json`). */
async function lsOf(app) {
  return (await app.cli('devices')).find((d) => d.kind === 'localsend' && d.name === 'Pixel');
}

/** The peer registers; Devices lists it: phone icon, badge, short fingerprint, Nearby. */
async function devicesShowPeer(app, b, peer) {
  const reg = await peer.register();
  assert.equal(reg.status, 200, JSON.stringify(reg));
  assert.equal(reg.matches, true, 'the app announces the fingerprint of the certificate it serves');
  const dev = await waitFor('the peer in the app', async () => {
    const d = await lsOf(app);
    if (!d?.nearby) throw new Error(`the app lists ${JSON.stringify(d ?? null)}`);
    return d;
  });
  assert.equal(dev.fingerprint, peer.fingerprint.toUpperCase());
  assert.equal(dev.paired, false);
  await click(b, 'nav-devices');
  await waitFor('the LocalSend row', async () => (await b.$$('[data-testid="ls-row"]')).length === 1);
  assert.equal(await (await el(b, 'device-icon')).getAttribute('data-icon'), 'phone');
  assert.equal(await text(b, 'ls-badge'), 'LocalSend · Pixel 8');
  assert.equal(await text(b, 'ls-fingerprint'), grouped(peer.fingerprint, 16));
  assert.equal(await text(b, 'ls-state'), 'Nearby');
  assert.match(await text(b, 'pair-ls-hint'), /need no pairing/);
  assert.equal(await text(b, 'ls-forget'), 'Forget…');
  // Favorite: kept in the list while away; the node records it.
  await click(b, 'ls-favorite');
  await waitFor('the favorite recorded', async () => (await lsOf(app))?.favorite === true);
  await waitFor('the star on', async () => (await text(b, 'ls-favorite')).includes('★'));
  await screenshot(b, '12-ls-devices');
  return dev;
}

/** The peer offers a file: the offer shows alias and fingerprint; Accept; same bytes in the inbox. */
async function fileFromPeer(app, b, peer) {
  const src = tempDir('ls-send');
  const bytes = randomBytes(FILE_BYTES);
  writeFileSync(join(src, 'holiday.jpg'), bytes);
  peer.send({ cmd: 'send', to: peer.appAddress, files: [{ path: join(src, 'holiday.jpg') }] });
  await waitFor('the Activity badge', async () => (await text(b, 'badge-activity')) === '1');
  await click(b, 'nav-activity');
  await el(b, 'send-offer');
  assert.match(await text(b, 'send-offer-title'), /Pixel wants to send you holiday\.jpg/);
  assert.equal(await text(b, 'send-offer-alias'), 'Pixel');
  assert.equal(await flat(b, 'send-offer-fingerprint'), grouped(peer.fingerprint));
  assert.match(await text(b, 'send-offer-check'), /Check the fingerprint in LocalSend's settings on the device/);
  await screenshot(b, '12-ls-send-offer');
  await click(b, 'send-offer-accept');
  await peer.waitEvent('the app accepted', (e) => e.event === 'accepted');
  const sent = await peer.waitEvent('the send done', (e) => e.event === 'sent' || e.event === 'send-failed' || e.event === 'declined');
  assert.equal(sent.event, 'sent', JSON.stringify(sent));
  assert.equal(sent.status, 200);
  assert.deepEqual(sent.files.map((f) => f.status), [200]);
  const received = await waitFor('the received transfer', async () =>
    (await app.cli('transfers')).find((t) => t.direction === 'in' && t.state === 'done' && t.names.includes('holiday.jpg')));
  assert.equal(received.placed.length, 1);
  // The default inbox: ~/Downloads/Ferry (the app's HOME has no XDG download folder).
  assert.equal(dirname(received.placed[0]), join(app.home, 'Downloads', 'Ferry'), 'placed in the inbox');
  assert.equal(basename(received.placed[0]), 'holiday.jpg');
  assert.equal(sha256(readFileSync(received.placed[0])), sha256(bytes), 'the inbox holds the same bytes');
  await waitFor('Received in Activity', async () => (await transferStatuses(b)).includes('Received'));
}

/** A note typed in Notes reaches the peer as text; taken, it shows Delivered. */
async function noteToPeer(app, b, peer) {
  await click(b, 'nav-notes');
  await waitFor('the conversation', async () => {
    for (const c of await b.$$('[data-testid="conversation"]')) if ((await c.getText()).includes('Pixel')) return c.click().then(() => true);
    return false;
  });
  assert.match(await text(b, 'notes-ls-hint'), /LocalSend has no read receipts/);
  await type(b, 'note-text', 'see you at the station at 8');
  await click(b, 'note-send');
  const shown = await peer.waitEvent('the note on the peer', (e) => e.event === 'text');
  assert.equal(shown.text, 'see you at the station at 8');
  assert.equal(shown.cert_fingerprint.toUpperCase(), peer.appFingerprint.toUpperCase(), "the app's certificate, as the doctor reports it");
  peer.send({ cmd: 'accept' });
  await waitFor('the note delivered in the app', async () =>
    (await app.cli('notes')).find((n) => n.outgoing && n.text === 'see you at the station at 8' && n.state === 'delivered'));
  await waitFor('Delivered', async () => {
    for (const r of await b.$$('[data-testid="note-receipt"]')) if ((await r.getText()) === 'Delivered') return true;
    return false;
  });
  await screenshot(b, '12-ls-notes');
}

/** Settings: LocalSend on, running on the doctor's port, the app's fingerprint shown. */
async function settingsShowLocalSend(b, peer) {
  await click(b, 'nav-settings');
  assert.equal(await (await el(b, 'settings-localsend')).isSelected(), true);
  const port = peer.appAddress.split(':')[1];
  await waitFor('the LocalSend state', async () => (await text(b, 'settings-localsend-state')).includes(`Running now on TCP port ${port}`));
  assert.equal(await flat(b, 'settings-localsend-fingerprint'), grouped(peer.appFingerprint));
  // The LocalSend part of the form (switch, state, fingerprint, PIN) in the picture.
  await (await el(b, 'settings-localsend')).scrollIntoView({ block: 'start' });
  await screenshot(b, '12-ls-settings');
}

test('a LocalSend device: listed without pairing, a file from it with its fingerprint shown, a note to it delivered', () =>
  runFlow('12', { upTo: 'firstRun', daemon: false }, async ({ app, b }) => {
    const peer = await startLsPeer(app, { alias: 'Pixel', model: 'Pixel 8' });
    try {
      await devicesShowPeer(app, b, peer);
      await fileFromPeer(app, b, peer);
      await noteToPeer(app, b, peer);
      await settingsShowLocalSend(b, peer);
    } finally {
      await peer.stop();
    }
  }));
