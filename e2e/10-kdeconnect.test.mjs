// Flow 10: a phone with KDE Connect (the kde-peer test binary, connecting to the app's KDE
// Connect port on 127.0.0.1) asks to pair: the prompt shows the key the phone computed, with
// "Check that Pixel shows the same key" and no offer to share a folder; Accept pairs both
// sides and Devices shows it with a phone icon, "KDE Connect phone", Connected and Unpair. A
// note from it shows unread; a note to it reaches it, marked Delivered (never Read: KDE Connect
// has no read receipts, which the conversation says). A file from it is offered in Activity;
// Accept places the same bytes (SHA-256) in the app's inbox; a file to it arrives with the same
// SHA-256 and Activity says delivered. Folders offers it no share; Settings shows KDE Connect
// running on the doctor's port. Unpair in Devices: it is told and stays nearby; Pair from the
// app shows the key the phone shows; after the phone re-keys, Devices shows it Refused, with
// the node's reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { click, el, promptGone, screenshot, tempDir, text, transferStatuses, type, waitFor } from './harness.mjs';
import { startKdePeer } from './kdepeer.mjs';
import { runFlow } from './setup.mjs';

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
/** A KDE Connect device id: 32 of [A-Za-z0-9_], as KDE Connect's own check wants. */
const kdeId = () => `pixel_e2e_${randomBytes(11).toString('hex')}`;
/** Big enough to be streamed in many reads and to show progress; small enough for CI. */
const FILE_BYTES = 3 * 1024 * 1024 + 17;

/** The app's view of the phone (`ferry devices --json`). */
async function phoneOf(app) {
  return (await app.cli('devices')).find((d) => d.kind === 'kdeconnect' && d.name === 'Pixel');
}

/** The phone asks to pair: the prompt shows the key it shows; Accept. Returns the app's record of it. */
async function pairFromPhone(app, b, peer) {
  // Pairing: the phone asks (and shows its key), the prompt shows the same key, Accept.
  peer.send({ cmd: 'pair' });
  const asked = await peer.waitEvent('the pairing request sent', (e) => e.event === 'pair_sent');
  await el(b, 'pair-prompt');
  assert.equal(await text(b, 'pair-name'), 'Pixel');
  assert.match(await text(b, 'pair-kind'), /KDE Connect phone/);
  assert.equal(await text(b, 'pair-check'), 'Check that Pixel shows the same key:');
  const shown = (await text(b, 'pair-code')).replace(/\s/g, '');
  assert.match(shown, /^[0-9a-fA-F]{8}$/, 'the prompt shows an 8-hex-digit KDE key');
  const pending = (await app.cli('pending')).find((p) => p.kind === 'pair');
  assert.equal(shown, pending.code, "the prompt shows the node's key as it is");
  assert.equal(shown.toUpperCase(), asked.key.toUpperCase(), 'the app shows the key the phone shows');
  assert.equal((await b.$$('[data-testid="pair-share-default"]')).length, 0, 'no folder is offered to a phone');
  await screenshot(b, '10-kde-pair-prompt');
  await click(b, 'pair-accept');
  await peer.waitEvent('the phone told it is paired', (e) => e.event === 'pair' && e.answer === true && e.pair === true);
  await promptGone(b);
  const phone = await waitFor('the phone paired in the app', async () => {
    const d = await phoneOf(app);
    // Thrown, not returned: a timeout then says what the app listed last.
    if (!(d?.paired && d.connected)) throw new Error(`the app lists ${JSON.stringify(d ?? null)}; peer events ${JSON.stringify(peer.events)}`);
    return d;
  });
  assert.equal(phone.device_type, 'phone');
  assert.equal(phone.warning, null);
  return phone;
}

/** Devices: a phone icon, its kind, connected, Unpair instead of Remove, no address. */
async function devicesShowPhone(b) {
  await click(b, 'nav-devices');
  await waitFor('the phone row', async () => (await b.$$('[data-testid="device-row"]')).length === 1);
  assert.equal(await (await el(b, 'device-icon')).getAttribute('data-icon'), 'phone');
  assert.equal(await text(b, 'device-kind'), 'KDE Connect phone');
  await waitFor('Connected', async () => (await text(b, 'device-state')) === 'Connected');
  assert.equal(await text(b, 'device-remove'), 'Unpair…');
  assert.equal((await b.$$('[data-testid="device-add-address"]')).length, 0);
  await screenshot(b, '10-kde-devices');
}

/** Notes both ways: unread from the phone, Delivered (never Read) to it. */
async function notesBothWays(app, b, peer, phone) {
  // A note from the phone: unread, in its conversation.
  peer.send({ cmd: 'ping', message: 'the train is 10 minutes late' });
  await waitFor('the unread badge', async () => (await text(b, 'badge-notes')) === '1');
  await click(b, 'nav-notes');
  assert.equal(await text(b, 'conversation-unread'), '1');
  const note = (await app.cli('notes')).find((n) => !n.outgoing && n.text === 'the train is 10 minutes late');
  assert.ok(note, 'the ping is a received note');
  assert.equal(note.state, 'unread');
  assert.equal(note.peer, phone.id);
  await screenshot(b, '10-kde-notes-unread');
  await click(b, 'conversation');
  await waitFor('the note text', async () => (await text(b, 'note')).includes('the train is 10 minutes late'));
  assert.match(await text(b, 'notes-kde-hint'), /does not tell when it is read/);
  // A note to the phone: it gets the ping; the app says Delivered, never Read.
  await type(b, 'note-text', 'see you at the station');
  await click(b, 'note-send');
  await peer.waitEvent('the note on the phone', (e) => e.event === 'ping' && e.message === 'see you at the station');
  await waitFor('Delivered', async () => {
    for (const r of await b.$$('[data-testid="note-receipt"]')) if ((await r.getText()) === 'Delivered') return true;
    return false;
  });
  await screenshot(b, '10-kde-notes-thread');
}

/** Files both ways, through Activity. */
async function filesBothWays(app, b, peer, phone) {
  // A file from the phone: offered in Activity; Accept puts the same bytes in the inbox.
  const src = tempDir('kde-send');
  const bytes = randomBytes(FILE_BYTES);
  writeFileSync(join(src, 'boarding-pass.pdf'), bytes);
  peer.send({ cmd: 'send_file', path: join(src, 'boarding-pass.pdf') });
  await waitFor('the Activity badge', async () => (await text(b, 'badge-activity')) === '1');
  await click(b, 'nav-activity');
  await el(b, 'send-offer');
  assert.match(await text(b, 'send-offer-title'), /Pixel wants to send you boarding-pass\.pdf/);
  await screenshot(b, '10-kde-send-offer');
  await click(b, 'send-offer-accept');
  const received = await waitFor('the received transfer', async () =>
    (await app.cli('transfers')).find((t) => t.direction === 'in' && t.state === 'done' && t.names.includes('boarding-pass.pdf')));
  assert.equal(received.placed.length, 1);
  // The default inbox: ~/Downloads/Ferry (the app's HOME has no XDG download folder).
  assert.equal(dirname(received.placed[0]), join(app.home, 'Downloads', 'Ferry'), 'placed in the inbox');
  assert.equal(basename(received.placed[0]), 'boarding-pass.pdf');
  const sent = await peer.waitEvent('the phone served the file', (e) => e.event === 'sent' && e.name === 'boarding-pass.pdf');
  assert.equal(sent.sha256, sha256(bytes), 'the phone sent the bytes written');
  assert.equal(sha256(readFileSync(received.placed[0])), sha256(bytes), 'the inbox holds the same bytes');
  await waitFor('Received in Activity', async () => (await transferStatuses(b)).includes('Received'));
  // A file to the phone, as Send files… sends it (through the node: the native picker
  // cannot be driven): the phone gets the same bytes, Activity says delivered.
  const mine = tempDir('app-send');
  const ticket = randomBytes(512 * 1024);
  writeFileSync(join(mine, 'ticket.png'), ticket);
  await app.cli('send', phone.id, join(mine, 'ticket.png'), '--no-wait');
  const got = await peer.waitEvent('the file on the phone', (e) => e.event === 'file' && e.name === 'ticket.png');
  assert.equal(got.sha256, sha256(ticket), 'the phone got the same bytes');
  await waitFor('Delivered in Activity', async () => (await transferStatuses(b)).includes('Delivered to Pixel'));
  await screenshot(b, '10-kde-activity');
}

/** Folders offers the phone no share; Settings shows KDE Connect running on the doctor's port. */
async function foldersAndSettings(b, peer) {
  // Folders: the phone is never offered a share.
  await click(b, 'nav-folders');
  await click(b, 'folder-invite');
  assert.match(await text(b, 'invite-none'), /never a folder/);
  assert.equal((await b.$$('[data-testid="invite-device"]')).length, 0);
  // Settings: KDE Connect on, running on the port the doctor reports.
  await click(b, 'nav-settings');
  assert.equal(await (await el(b, 'settings-kdeconnect')).isSelected(), true);
  await waitFor('the KDE Connect state', async () => (await text(b, 'settings-kdeconnect-state')).includes(`Running now on TCP port ${peer.port}`));
  await screenshot(b, '10-kde-settings');
}

/** Unpair, pair again from the app, then the phone re-keys and is refused. */
async function unpairPairRefuse(app, b, peer) {
  // Unpair from Devices: the phone is told and stays listed as nearby, with Pair.
  await click(b, 'nav-devices');
  await click(b, 'device-remove');
  await el(b, 'remove-confirm');
  assert.match(await text(b, 'remove-confirm'), /Unpair Pixel\?.*can ask to pair again/s);
  await click(b, 'remove-accept');
  await peer.waitEvent('the phone told it is unpaired', (e) => e.event === 'pair' && e.pair === false);
  await waitFor('the phone unpaired in the app', async () => (await phoneOf(app))?.paired === false);
  await el(b, 'nearby-row');
  assert.match(await text(b, 'device-message'), /Pixel was unpaired/);
  assert.equal(await text(b, 'device-kind'), 'KDE Connect phone');
  await screenshot(b, '10-kde-nearby');
  // Pair from the app: the banner shows the key the phone shows; the phone accepts.
  await click(b, 'nearby-pair');
  const request = await peer.waitEvent('the request on the phone', (e) => e.event === 'pair' && e.request === true);
  const waiting = await text(b, 'pair-waiting');
  assert.match(waiting, /Check that it shows the key/);
  assert.ok(waiting.toUpperCase().includes(request.key.toUpperCase()), `${waiting} shows ${request.key}`);
  await screenshot(b, '10-kde-pair-waiting');
  peer.send({ cmd: 'accept_pair' });
  await waitFor('Paired in the app', async () => (await text(b, 'pair-outcome')) === 'Paired with Pixel.');
  await waitFor('the phone paired again', async () => (await phoneOf(app))?.paired === true);
  // The phone comes back with another certificate: refused, and Devices says so.
  peer.send({ cmd: 'rekey' });
  const refused = await waitFor('the refusal in the app', async () => (await phoneOf(app))?.warning);
  await waitFor('the warning in Devices', async () => (await text(b, 'device-warning')).includes(refused));
  await waitFor('the phone shown refused', async () => (await text(b, 'device-state')) === 'Refused');
  await screenshot(b, '10-kde-refused');
}

test('a KDE Connect phone: pairing by key both ways, notes and files both ways, unpair, refused re-key', () =>
  runFlow('10', { upTo: 'firstRun', daemon: false }, async ({ app, b }) => {
    const peer = await startKdePeer(app, { name: 'Pixel', id: kdeId() });
    try {
      const phone = await pairFromPhone(app, b, peer);
      await devicesShowPhone(b);
      await notesBothWays(app, b, peer, phone);
      await filesBothWays(app, b, peer, phone);
      await foldersAndSettings(b, peer);
      await unpairPairRefuse(app, b, peer);
    } finally {
      await peer.stop();
    }
  }));
