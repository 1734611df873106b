// Flow 9: the daemon deletes every file of a shared folder at once. The app holds the
// deletions and asks in Folders; "Keep my files" keeps them here and sends them back to the
// daemon, and the folder shows why it needs attention until Dismiss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { click, el, readIf, screenshot, text, waitFor } from './harness.mjs';
import { runFlow } from './setup.mjs';

test('a mass delete is held until the user keeps the files', () =>
  runFlow('09', { upTo: 'shared' }, async ({ app, b, folder, dest }) => {
    const names = Array.from({ length: 14 }, (_, i) => `page-${String(i + 1).padStart(2, '0')}.txt`);
    for (const n of names) writeFileSync(join(folder, n), `${n}\n`);
    await waitFor('every page in the app folder', () => names.every((n) => readIf(join(dest, n)) === `${n}\n`));

    for (const n of names) rmSync(join(folder, n));
    await click(b, 'nav-folders');
    await el(b, 'mass-delete');
    assert.match(await text(b, 'mass-delete'), /Desk deleted \d+ of \d+ files in “Projects”/);
    assert.ok(names.every((n) => existsSync(join(dest, n))), 'nothing deleted while the prompt waits');
    await screenshot(b, '09-mass-delete');

    await click(b, 'mass-delete-reject');
    await waitFor('the prompt answered', async () => (await b.$$('[data-testid="mass-delete"]')).length === 0);
    await waitFor('the pages back on the daemon', () => names.every((n) => readIf(join(folder, n)) === `${n}\n`));
    assert.ok(names.every((n) => readIf(join(dest, n)) === `${n}\n`), 'the app kept every page');
    await el(b, 'folder-attention');
    assert.match(await text(b, 'folder-attention'), /Refused a peer's deletion of \d+ files/);
    await screenshot(b, '09-kept');
    await click(b, 'folder-attention-dismiss');
    await waitFor('the note dismissed', async () => (await b.$$('[data-testid="folder-attention"]')).length === 0);
    assert.equal((await app.cli('status')).shares.find((s) => s.label === 'Projects').attention, null);
  }));
