// End-to-end harness for the desktop app: the real app (driven by tauri-driver + WebKitWebDriver
// through webdriverio) and a headless `ferry daemon` playing the other computer. Everything
// listens on 127.0.0.1 only; each test has its own temp HOMEs. .ci/desktop-test runs every test
// file in its own dbus-run-session under Xvfb. setup.mjs (runFlow) composes these pieces into
// the setup and teardown every flow shares.
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import net from 'node:net';
import { promisify } from 'node:util';
import { remote } from 'webdriverio';

const run = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, '..');
export const TARGET = process.env.CARGO_TARGET_DIR ?? join(process.env.HOME, '.cache/ferry-target');
export const APP = process.env.FERRY_DESKTOP_BIN ?? join(TARGET, 'debug/ferry-desktop');
export const FERRY = process.env.FERRY_BIN ?? join(TARGET, 'debug/ferry');
export const ARTIFACTS = join(ROOT, 'test-artifacts');
/** Upper bound for any single wait: generous for a loaded 2-core CI machine. */
export const WAIT = 60_000;

async function freePort() {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on('error', fail);
  });
}

/** Polls `check` until it returns a truthy value; fails with `what` after `ms`. */
export async function waitFor(what, check, ms = WAIT) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

/** `ferry --home HOME ARGS --json`, parsed. */
export async function ferry(home, ...args) {
  const { stdout } = await run(FERRY, ['--home', home, '--json', ...args], { timeout: WAIT });
  return stdout.trim() ? JSON.parse(stdout) : null;
}

/** Every temp directory this flow made, removed when it exits (see below). */
const temps = [];

/** A temp directory for this test, removed at exit if the flow passed. */
export function tempDir(name) {
  const dir = mkdtempSync(join(tmpdir(), `ferry-e2e-${name}-`));
  temps.push(dir);
  return dir;
}

// Each flow is its own node process (.ci/desktop-test), so its exit is the end of its test. A
// failed flow keeps its homes and folders (the daemon's and the app's logs and databases are what
// explains a failure) and says where; a passed one leaves nothing behind (every run used to leave
// ~60 directories in /tmp). By exit the app and daemons are stopped: runFlow's teardown awaits them.
process.on('exit', (code) => {
  if (code !== 0) {
    if (temps.length) console.error(`kept for inspection: ${temps.join(' ')}`);
    return;
  }
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

/** A headless node on loopback, the "other computer". */
export async function startDaemon(name = 'Desk') {
  const home = tempDir('daemon');
  const proc = spawn(FERRY, ['--home', home, 'daemon', '--listen', '127.0.0.1:0', '--name', name, '--owner', 'dana', '--no-mdns', '--no-kdeconnect', '--no-localsend'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, FERRY_LOG: 'warn' },
  });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  const status = await waitFor(`daemon start (${stderr})`, () => ferry(home, 'status'));
  return {
    home,
    proc,
    name,
    id: status.device_id,
    address: status.listen,
    cli: (...args) => ferry(home, ...args),
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.once('exit', r));
      }
    },
  };
}

/** Starts tauri-driver, which starts the app (with HOME = a temp dir) for a WebDriver session. */
export async function startApp() {
  const home = tempDir('app');
  const port = await freePort();
  const nativePort = await freePort();
  // A free port, not LocalSend's 53317: a real LocalSend on the machine cannot collide.
  const lsPort = await freePort();
  const env = {
    ...process.env,
    HOME: home,
    XDG_DATA_HOME: join(home, '.local/share'),
    XDG_CONFIG_HOME: join(home, '.config'),
    FERRY_LISTEN: '127.0.0.1:0',
    FERRY_LOG: 'warn',
    // The app runs in the root namespace: mDNS stays off (network safety rule).
    FERRY_MDNS: '0',
    // KDE Connect's discovery is a broadcast: it listens on loopback only, never announces.
    FERRY_KDECONNECT_BIND: '127.0.0.1',
    // LocalSend's discovery is a multicast: likewise loopback only, never announced.
    FERRY_LOCALSEND_BIND: '127.0.0.1',
    FERRY_LOCALSEND_PORT: String(lsPort),
  };
  delete env.FERRY_HOME;
  delete env.FERRY_NAME;
  delete env.FERRY_OWNER;
  const driver = spawn('tauri-driver', ['--port', String(port), '--native-port', String(nativePort)], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env,
  });
  await waitFor('tauri-driver', () => new Promise((ok) => {
    const c = net.connect(port, '127.0.0.1', () => { c.end(); ok(true); });
    c.on('error', () => ok(false));
  }));
  // The app starts its window as a process of its own (`--window`), which inherits the
  // WebDriver variables: WebKitWebDriver retries connecting until that page answers.
  const session = (args) =>
    remote({
      hostname: '127.0.0.1',
      port,
      logLevel: 'warn',
      capabilities: {
        'wdio:enforceWebDriverClassic': true,
        'tauri:options': args ? { application: APP, args } : { application: APP },
      },
    });
  const browser = await session(null);
  const ferryHome = join(home, '.local/share/ferry');
  await waitFor('the app node', () => existsSync(join(ferryHome, 'ferry.sock')) && ferry(ferryHome, 'status'));
  return {
    home,
    ferryHome,
    browser,
    cli: (...args) => ferry(ferryHome, ...args),
    /**
     * A new WebDriver session on a window process started as `ferry-desktop --window ARGS...`
     * (what the tray starts), for when the session's window was closed: WebDriver cannot
     * follow a window another process started. Becomes `browser`.
     */
    async reopen(args = []) {
      await this.browser.deleteSession().catch(() => {});
      this.browser = await session(['--window', ...args]);
      return this.browser;
    },
    async stop() {
      await this.browser.deleteSession().catch(() => {});
      driver.kill('SIGTERM');
      await new Promise((r) => (driver.exitCode === null ? driver.once('exit', r) : r()));
      // WebKitWebDriver ends the app with the session, but not when the session has no
      // window (closed to the tray) and the delete fails: then the app outlives the driver
      // and keeps the flow's runner waiting. Ended here, by pid.
      for (const pid of appProcesses(home, 'ferry-desktop')) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // Gone meanwhile.
        }
      }
    },
  };
}

/** Pids of the processes named `comm` that an app started with this HOME runs (/proc's comm is cut at 15 characters). */
export function appProcesses(home, comm) {
  const out = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== comm) continue;
      if (readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`HOME=${home}`)) out.push(pid);
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return out;
}

/** Waits for an element by data-testid and returns it. */
export async function el(browser, id, ms = WAIT) {
  const e = await browser.$(`[data-testid="${id}"]`);
  await e.waitForDisplayed({ timeout: ms });
  return e;
}

/**
 * An element's text content, trimmed. WebKitWebDriver's getText returns '' for some displayed
 * elements (seen for the path boxes), so tests read textContent instead.
 */
export async function text(browser, id) {
  const e = await el(browser, id);
  return (await browser.execute((n) => n.textContent, e)).trim();
}

export async function click(browser, id) {
  await (await el(browser, id)).click();
}

/** Sets an input's value the way a user would (select all, type). */
export async function type(browser, id, text) {
  const e = await el(browser, id);
  await e.clearValue();
  await e.setValue(text);
}

/** Completes the first-run screen and waits for the main window. */
export async function firstRun(app) {
  await click(app.browser, 'first-start');
  await el(app.browser, 'folder-row');
}

/**
 * Saves a screenshot of the whole X screen (tray and window as a user sees them). WebKit paints
 * after the DOM changes: wait until the page has rendered two frames so the picture shows what
 * the test just checked, not the previous state.
 */
export async function screenshot(browser, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await browser.executeAsync((done) => requestAnimationFrame(() => requestAnimationFrame(() => done())));
  await run('import', ['-window', 'root', join(ARTIFACTS, `${name}.png`)], { timeout: WAIT });
}

/** The daemon asks the app to pair; the test accepts in the app. Returns the daemon's pair process result. */
export function daemonPair(daemon, address) {
  const proc = spawn(FERRY, ['--home', daemon.home, 'pair', address], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise((r) => proc.once('exit', (code) => r(code)));
  return {
    proc,
    output: () => out,
    code: () => waitFor('the pairing code from `ferry pair`', () => /Code: (\S+)/.exec(out)?.[1]),
    exited,
  };
}

/** Pairs the daemon with the app through the app's prompt. */
export async function pair(app, daemon) {
  const status = await app.cli('status');
  const p = daemonPair(daemon, status.listen);
  await p.code();
  await click(app.browser, 'pair-accept');
  const code = await p.exited;
  if (code !== 0) throw new Error(`ferry pair exited ${code}: ${p.output()}`);
  await promptGone(app.browser);
  return status;
}

/** Waits until no pairing prompt covers the window (it closes once the node reports the answer). */
export async function promptGone(browser) {
  await waitFor('the pairing prompt to close', async () => (await browser.$$('[data-testid="pair-prompt"]')).length === 0);
}

/** The daemon creates a folder "Projects" and offers it to the app. */
export async function offerFromDaemon(app, daemon) {
  const folder = tempDir('daemon-share');
  const share = await daemon.cli('share', 'add', folder, '--label', 'Projects');
  const appId = (await app.cli('id')).device_id;
  await daemon.cli('share', 'invite', share.id, appId);
  return { share, folder };
}

/** The daemon shares a folder with the app, which accepts it into `dest` in Folders. */
export async function shareFromDaemon(app, daemon, dest, offered = null) {
  const { share, folder } = offered ?? (await offerFromDaemon(app, daemon));
  await click(app.browser, 'nav-folders');
  await type(app.browser, 'offer-path', dest);
  await click(app.browser, 'offer-accept');
  await waitFor('the accepted share', async () => (await app.cli('share', 'list')).some((s) => s.id === share.id));
  return { share, folder };
}

/**
 * The app node's live event stream (`ferry --json events`), proven live by a note from the
 * daemon (`note`) before it is returned. `indexFrom(share)` waits for the daemon's index of
 * `share` reaching the app after the call that made it (events seen before `mark()` don't count).
 */
export async function appEvents(app, daemon, note) {
  const proc = spawn(FERRY, ['--home', app.ferryHome, '--json', 'events'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let lines = [];
  let partial = '';
  proc.stdout.on('data', (d) => {
    const parts = (partial + d).split('\n');
    partial = parts.pop();
    lines.push(...parts);
  });
  const from = (i, pred) => lines.slice(i).some(pred);
  await daemon.cli('note', 'send', (await app.cli('id')).device_id, note);
  await waitFor('the events stream', () => from(0, (l) => l.includes('"note_received"')));
  return {
    mark: () => lines.length,
    indexFrom: (share, mark) =>
      waitFor(`the daemon's index of ${share} reaching the app`, () =>
        from(mark, (l) => l.includes('"index_received"') && l.includes(share))),
    stop: () => proc.kill(),
  };
}

/** The transfer rows' statuses as Activity shows them, e.g. ["Received", "Waiting for Desk to accept"]. */
export async function transferStatuses(b) {
  const out = [];
  for (const e of await b.$$('[data-testid="send-transfer-status"]')) out.push((await b.execute((n) => n.textContent, e)).trim());
  return out;
}

export function readIf(path) {
  return existsSync(path) ? readFileSync(path, 'utf8') : null;
}
