// Flow 4: a note from the daemon shows unread in Notes; a reply typed in the app reaches the
// daemon (`ferry notes --json`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { click, el, screenshot, type, waitFor } from './harness.mjs';
import { runFlow } from './setup.mjs';

test('notes both ways with unread badge and receipt', () =>
  runFlow('04', { upTo: 'paired' }, async ({ app, b, daemon }) => {
    const appId = (await app.cli('id')).device_id;
    await daemon.cli('note', 'send', appId, 'the keys are in the drawer');
    assert.equal(await (await el(b, 'badge-notes')).getText(), '1');
    await click(b, 'nav-notes');
    assert.equal(await (await el(b, 'conversation-unread')).getText(), '1');
    await screenshot(b, '04-notes-unread');
    await click(b, 'conversation');
    await waitFor('the note text', async () => (await (await el(b, 'note')).getText()).includes('the keys are in the drawer'));
    // Opening the conversation marks it read, on both sides.
    await waitFor('the read receipt on the daemon', async () =>
      (await daemon.cli('notes')).some((n) => n.outgoing && n.state === 'read'));
    await type(b, 'note-text', 'thanks, found them');
    await click(b, 'note-send');
    await waitFor('the reply on the daemon', async () =>
      (await daemon.cli('notes')).some((n) => !n.outgoing && n.text === 'thanks, found them'));
    await waitFor('the delivered receipt in the app', async () => {
      for (const r of await b.$$('[data-testid="note-receipt"]')) if (['Delivered', 'Read'].includes(await r.getText())) return true;
      return false;
    });
    await screenshot(b, '04-notes-reply');
  }));
