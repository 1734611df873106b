// A LocalSend device for the desktop flows: the `ls-peer` test binary (ferry-e2e,
// tests/src/bin/ls-peer.rs; written from the LocalSend app's sources, independent of
// ferry-localsend), driven by JSON lines on its stdin and read by the JSON lines it prints
// (its events). It listens on 127.0.0.1 and talks to the app on 127.0.0.1 only, never by
// multicast (network safety rule: no multicast outside a test namespace).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ferry, tempDir, TARGET, waitFor, WAIT } from './harness.mjs';

export const LS_PEER = process.env.LS_PEER_BIN ?? join(TARGET, 'debug/ls-peer');
/**
 * The peer's own deadline: it exits by itself after this, so a failed flow never leaves it
 * behind. Longer than any flow's waits together (each bounded by WAIT).
 */
const PEER_TIMEOUT_SECS = 300;

/** The app's LocalSend HTTPS port and fingerprint, as its doctor reports them. */
export async function appLocalSend(app) {
  const d = await waitFor('LocalSend running in the app', async () => {
    const doc = await ferry(app.ferryHome, 'doctor');
    return doc.localsend.state === 'running' && doc.localsend.port ? doc : null;
  });
  return { port: d.localsend.port, fingerprint: d.localsend.fingerprint };
}

/**
 * Starts `ls-peer` as the device `alias` (a `mobile` by default; `ask`: offers from the app
 * wait for `accept`). Returns `send(cmd)`, `waitEvent(what, pred)` (over every event since it
 * started, so an event that came before the wait counts), `events`, `fingerprint` (its own,
 * as it announces it), `appAddress` ("127.0.0.1:PORT" of the app's LocalSend), `register()`
 * and `stop()` (quit, then bounded, then killed).
 */
export async function startLsPeer(app, { alias = 'Pixel', model = 'Pixel 8', type = 'mobile', ask = true } = {}) {
  if (!existsSync(LS_PEER)) {
    throw new Error(`the LocalSend test peer is missing at ${LS_PEER}: cargo build -p ferry-e2e --bin ls-peer (or set LS_PEER_BIN)`);
  }
  const appLs = await appLocalSend(app);
  const dir = tempDir('ls-peer');
  const args = ['--alias', alias, '--model', model, '--type', type, '--dir', dir, '--bind', '127.0.0.1', '--port', '0', '--timeout', String(PEER_TIMEOUT_SECS)];
  if (ask) args.push('--ask');
  const proc = spawn(LS_PEER, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' } });
  const events = [];
  let partial = '';
  let stderr = '';
  proc.stdout.on('data', (d) => {
    const parts = (partial + d).split('\n');
    partial = parts.pop();
    for (const line of parts) {
      if (!line.trim()) continue;
      try {
        events.push(JSON.parse(line));
      } catch {
        events.push({ event: 'unparsed', line });
      }
    }
  });
  proc.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((r) => proc.once('exit', (code) => r(code)));
  const peer = {
    proc,
    dir,
    events,
    appAddress: `127.0.0.1:${appLs.port}`,
    appFingerprint: appLs.fingerprint,
    fingerprint: null,
    stderr: () => stderr,
    send(cmd) {
      proc.stdin.write(`${JSON.stringify(cmd)}\n`);
    },
    /** The first event (in order) for which `pred` holds; fails with the peer's errors and stderr. */
    async waitEvent(what, pred, ms = WAIT) {
      // A peer that exited fails the wait at once rather than at its deadline.
      const died = exited.then((code) => {
        throw new Error(`ls-peer exited (${code}) while waiting for ${what}`);
      });
      try {
        return await Promise.race([waitFor(what, () => events.find(pred), ms), died]);
      } catch (e) {
        const errors = events.filter((x) => x.event === 'error').map((x) => x.message);
        throw new Error(`${e.message}; peer errors: ${JSON.stringify(errors)}; stderr: ${stderr.slice(-2000)}`);
      }
    },
    /** POST /register to the app, as the LocalSend app does when it hears an announcement. */
    async register() {
      peer.send({ cmd: 'register', to: peer.appAddress });
      return peer.waitEvent('registered with the app', (e) => e.event === 'registered' && e.to === peer.appAddress);
    },
    async stop() {
      if (proc.exitCode !== null) return;
      proc.stdin.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
      const quit = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 5_000))]);
      if (quit === 'timeout') {
        proc.kill('SIGKILL');
        await exited;
      }
    },
  };
  const ready = await peer.waitEvent('the peer ready', (e) => e.event === 'ready');
  peer.fingerprint = ready.fingerprint;
  return peer;
}
