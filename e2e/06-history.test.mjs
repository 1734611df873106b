// Flow 6: a file synced from the daemon is deleted there and disappears in the app's folder; its
// version shows in the app's History; Restore brings it back in the app's folder with the same
// bytes, and it syncs back to the daemon. Then the folder is rewound: an edit and a new file
// made on the daemon after the restore are previewed as a plan and undone with Apply.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { click, el, readIf, screenshot, text, type, waitFor } from './harness.mjs';
import { runFlow } from './setup.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('a deleted file comes back from History, and a folder rewinds to a time', () =>
  runFlow('06', { upTo: 'shared' }, async ({ app, b, share, folder, dest, sync }) => {
    // Synced, then deleted on the daemon: gone from the app's folder too.
    const body = `quarterly report ${Date.now()}\n`.repeat(40);
    await sync('report.txt', body);
    rmSync(join(folder, 'report.txt'));
    await waitFor('report.txt deleted in the app folder', () => !existsSync(join(dest, 'report.txt')));

    // Its version in History (the node lists it by file path too).
    const versions = await app.cli('versions', join(dest, 'report.txt'));
    assert.ok(versions.some((v) => v.path === 'report.txt' && v.reason === 'deleted'), JSON.stringify(versions));
    await click(b, 'nav-history');
    await (await el(b, 'history-share')).selectByAttribute('value', share.id);
    await type(b, 'history-filter', 'report');
    await waitFor('the version row of report.txt', async () => {
      for (const e of await b.$$('[data-testid="history-path"]')) if ((await e.getAttribute('data-path')) === 'report.txt') return true;
      return false;
    });
    assert.match(await text(b, 'history-row'), /Deleted.*deleted by Desk/s);
    await screenshot(b, '06-history');

    // Restore: back in the app's folder with the original bytes, and back on the daemon.
    await click(b, 'history-restore');
    await el(b, 'history-restored');
    assert.match(await text(b, 'history-restored'), /Restored report\.txt \(the version deleted by Desk/);
    await waitFor('report.txt restored in the app folder', () => readIf(join(dest, 'report.txt')) === body);
    await waitFor('report.txt back on the daemon', () => readIf(join(folder, 'report.txt')) === body);
    await screenshot(b, '06-restored');

    // Rewind: after a quiet moment, the daemon edits the file and adds one; the app previews
    // "back to before those" and applies it.
    await sleep(2000);
    const mark = Date.now();
    await sleep(2500);
    writeFileSync(join(folder, 'report.txt'), 'overwritten by mistake\n');
    writeFileSync(join(folder, 'scratch.txt'), 'a new file\n');
    await waitFor('the edit in the app folder', () => readIf(join(dest, 'report.txt')) === 'overwritten by mistake\n');
    await waitFor('scratch.txt in the app folder', () => readIf(join(dest, 'scratch.txt')) !== null);
    await type(b, 'rewind-time', `${Math.floor((Date.now() - mark) / 1000)}s`);
    await click(b, 'rewind-preview');
    await el(b, 'rewind-plan');
    const steps = await waitFor('two plan steps', async () => {
      const rows = await b.$$('[data-testid="rewind-step"]');
      const all = [];
      for (const r of rows) all.push((await b.execute((n) => n.textContent, r)).replace(/\s+/g, ' ').trim());
      return all.length === 2 ? all : null;
    });
    assert.ok(steps.some((s) => /Restore old content report\.txt/.test(s)), steps.join(' | '));
    assert.ok(steps.some((s) => /Move to history scratch\.txt/.test(s)), steps.join(' | '));
    assert.match(await text(b, 'rewind-summary'), /1 file gets its old content, 1 newer file moves to the history/);
    assert.equal(readIf(join(dest, 'report.txt')), 'overwritten by mistake\n', 'a preview changes nothing');
    await screenshot(b, '06-rewind-preview');

    await click(b, 'rewind-apply');
    await el(b, 'rewind-done');
    assert.match(await text(b, 'rewind-done'), /Rewound 2 files/);
    await waitFor('report.txt rewound in the app folder', () => readIf(join(dest, 'report.txt')) === body);
    await waitFor('scratch.txt moved to the history', () => !existsSync(join(dest, 'scratch.txt')));
    await waitFor('the rewind on the daemon', () => readIf(join(folder, 'report.txt')) === body && !existsSync(join(folder, 'scratch.txt')));
    await screenshot(b, '06-rewound');
  }));
