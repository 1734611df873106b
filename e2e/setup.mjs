// The setup and teardown every desktop flow (e2e/0N-*.test.mjs) shares: which computers run,
// how far the app is brought before the flow's own steps, and that everything started is
// stopped again whatever happens. The flows keep only the steps they test.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { appEvents, firstRun, pair, readIf, screenshot, shareFromDaemon, startApp, startDaemon, waitFor } from './harness.mjs';
import { startPanel } from './tray-dbus.mjs';

/** How far `runFlow` brings the app before the body runs; each stage includes the ones before. */
const STAGES = ['started', 'firstRun', 'paired', 'shared'];

/**
 * Runs one flow: sets up, runs `body(ctx)`, tears down.
 *
 * Setup, in this order:
 * - `panel: true`: the tray panel (tray-dbus.mjs startPanel). It must exist before the app
 *   starts, or the app's tray item falls back to an icon without a D-Bus menu.
 * - the app (harness startApp), then the daemon "Desk" (startDaemon) unless `daemon: false`.
 * - `upTo` (default 'started'), how far the app is brought:
 *   'started'  nothing more: the first-run screen is showing;
 *   'firstRun' "Get started" done, the main window shows (harness firstRun);
 *   'paired'   and the daemon paired through the app's prompt (pair);
 *   'shared'   and a folder "Projects" made on the daemon accepted into ~/Projects in the app
 *              (shareFromDaemon).
 *
 * `ctx` holds:
 * - `app`, `b` (= app.browser), `daemon` (null with `daemon: false`), `panel` (null unless
 *   `panel: true`);
 * - with 'shared': `share` (the daemon's share record), `folder` (the daemon's side of the
 *   folder), `dest` (the app's side) and `sync(file, bytes)`, which writes `file` in `folder`
 *   and waits until the app's copy in `dest` holds the same bytes;
 * - `watchEvents(note)`: the app's live event stream (harness appEvents), stopped at teardown.
 *
 * If setup or the body throws, `test-artifacts/<name>-failure.png` shows the screen as it
 * was, then the error is rethrown. Teardown always runs: the event streams (last first), then
 * the app, the daemon and the panel. Every cleanup runs even if one before it fails, so no
 * process outlives the test file; a cleanup's error is reported only if the flow passed.
 */
export async function runFlow(name, { upTo = 'started', daemon: withDaemon = true, panel: withPanel = false } = {}, body) {
  const stage = STAGES.indexOf(upTo);
  if (stage < 0) throw new Error(`runFlow: unknown stage '${upTo}', expected one of ${STAGES.join(', ')}`);
  if (stage >= STAGES.indexOf('paired') && !withDaemon) throw new Error(`runFlow: '${upTo}' needs the daemon`);
  const deferred = [];
  let panel = null;
  let app = null;
  let daemon = null;
  let passed = false;
  try {
    if (withPanel) panel = await startPanel();
    app = await startApp();
    if (withDaemon) daemon = await startDaemon('Desk');
    const ctx = { app, b: app.browser, daemon, panel };
    ctx.watchEvents = async (note) => {
      const events = await appEvents(app, daemon, note);
      deferred.push(() => events.stop());
      return events;
    };
    if (stage >= STAGES.indexOf('firstRun')) await firstRun(app);
    if (stage >= STAGES.indexOf('paired')) await pair(app, daemon);
    if (stage >= STAGES.indexOf('shared')) {
      const dest = join(app.home, 'Projects');
      const { share, folder } = await shareFromDaemon(app, daemon, dest);
      Object.assign(ctx, { share, folder, dest });
      ctx.sync = async (file, bytes) => {
        writeFileSync(join(folder, file), bytes);
        await waitFor(`${file} in the app folder`, () => readIf(join(dest, file)) === bytes);
      };
    }
    await body(ctx);
    passed = true;
  } catch (e) {
    if (app) await screenshot(app.browser, `${name}-failure`).catch(() => {});
    throw e;
  } finally {
    const failure = await runAll([...deferred.reverse(), () => app?.stop(), () => daemon?.stop(), () => panel?.close()]);
    // A flow's own failure says more than a cleanup's that may follow from it: keep that one.
    if (passed && failure) throw failure;
  }
}

/** Runs every function in order, even after one fails; returns the first error, if any. */
async function runAll(fns) {
  let first = null;
  for (const fn of fns) {
    try {
      await fn();
    } catch (e) {
      first ??= e;
    }
  }
  return first;
}
