// Flow 1: first run shows the device name and the default folder; "Get started" creates and
// shares ~/Ferry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { el, firstRun, screenshot, text } from './harness.mjs';
import { runFlow } from './setup.mjs';

test('first run shows the device name and the default folder', () =>
  runFlow('01', { daemon: false }, async ({ app, b }) => {
    await el(b, 'first-run');
    assert.equal(await (await el(b, 'first-name')).getValue(), hostname());
    const folder = join(app.home, 'Ferry');
    await screenshot(b, '01-first-run');
    assert.equal(await text(b, 'first-folder'), folder);
    await firstRun(app);
    assert.ok(existsSync(folder), 'the default folder exists');
    assert.equal(await text(b, 'folder-path'), folder);
    // The CLI talks to the app's in-process node through its control socket.
    const shares = await app.cli('share', 'list');
    assert.deepEqual(shares.map((s) => s.path), [folder]);
    await screenshot(b, '01-folders');
  }));
