// Flow 8: a conflict. While the app is paused, the same synced file is edited in the app's
// folder and on the daemon; after Resume, Activity lists the conflict with both sides and the
// sync summary counts it. "Keep mine" settles it: the app's content wins on both computers and
// the conflict copy disappears.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { click, el, readIf, screenshot, text, waitFor } from './harness.mjs';
import { runFlow } from './setup.mjs';

const copies = (dir) => readdirSync(dir).filter((n) => n.includes('.sync-conflict-'));

test('a conflict shows in Activity and Keep mine settles it everywhere', () =>
  runFlow('08', { upTo: 'shared' }, async ({ app, b, share, folder, dest, sync, watchEvents }) => {
    await sync('todo.txt', 'buy milk\n');

    // Both sides edit while the app is paused.
    await app.cli('pause');
    await waitFor('paused', async () => (await app.cli('status')).paused);
    const events = await watchEvents('editing todo.txt');
    const mark = events.mark();
    // The laptop's edit is the older one (mtime a minute back), the desk's the newer.
    writeFileSync(join(dest, 'todo.txt'), 'buy milk\nand bread (laptop)\n');
    const older = new Date(Date.now() - 60_000);
    utimesSync(join(dest, 'todo.txt'), older, older);
    writeFileSync(join(folder, 'todo.txt'), 'buy milk\nand eggs (desk)\n');
    // The desk's edit is indexed and known to the app before it resumes.
    await events.indexFrom(share.id, mark);
    events.stop();
    await app.cli('resume');
    const list = await waitFor('the conflict on the app', async () => {
      const c = await app.cli('conflicts');
      return c.length === 1 ? c : null;
    });
    assert.equal(list[0].path, 'todo.txt');

    await click(b, 'nav-activity');
    await el(b, 'conflict-row');
    assert.match(await text(b, 'conflict-row'), /todo\.txt/);
    await waitFor('the summary counting the conflict', async () => /1 conflict/.test(await text(b, 'sync-summary')));
    await screenshot(b, '08-conflict');

    await click(b, 'conflict-keep-local');
    await el(b, 'activity-done');
    assert.match(await text(b, 'activity-done'), /Settled todo\.txt/);
    const mine = 'buy milk\nand bread (laptop)\n';
    await waitFor('no conflicts left', async () => (await app.cli('conflicts')).length === 0);
    await waitFor('the app keeps its content', () => readIf(join(dest, 'todo.txt')) === mine && copies(dest).length === 0);
    await waitFor('the daemon gets it, without the copy', () => readIf(join(folder, 'todo.txt')) === mine && copies(folder).length === 0);
    await waitFor('the conflict card gone', async () => (await b.$$('[data-testid="conflict-row"]')).length === 0);
    assert.ok(existsSync(join(dest, 'todo.txt')));
    await screenshot(b, '08-resolved');
  }));
