// A KDE Connect device for the desktop flows: the `kde-peer` test binary (ferry-e2e,
// tests/src/bin/kde-peer.rs; an implementation of the protocol independent of Ferry's), driven
// by JSON lines on its stdin and read by the JSON lines it prints (its events). It only ever
// connects to the app on 127.0.0.1 (network safety rule: no broadcast, no other address).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ferry, tempDir, TARGET, waitFor, WAIT } from './harness.mjs';

export const KDE_PEER = process.env.KDE_PEER_BIN ?? join(TARGET, 'debug/kde-peer');
/**
 * The peer's own deadline: it exits by itself after this, so a failed flow never leaves it
 * behind. Longer than any flow's waits together (each bounded by WAIT).
 */
const PEER_TIMEOUT_SECS = 300;

/** The app's KDE Connect TCP port, as its doctor reports it (1716-1764, bound on 127.0.0.1). */
export async function appKdePort(app) {
  const d = await waitFor('KDE Connect running in the app', async () => {
    const doc = await ferry(app.ferryHome, 'doctor');
    return doc.kdeconnect.state === 'running' && doc.kdeconnect.port ? doc : null;
  });
  return d.kdeconnect.port;
}

/**
 * Starts `kde-peer` as the phone `name` connecting to the app's KDE Connect port. Returns
 * `send(cmd)`, `waitEvent(what, pred)` (over every event since it started, so an event that
 * came before the wait counts), `events` and `stop()` (quit, then bounded, then killed).
 */
export async function startKdePeer(app, { name = 'Pixel', id } = {}) {
  if (!existsSync(KDE_PEER)) {
    throw new Error(`the KDE Connect test peer is missing at ${KDE_PEER}: cargo build -p ferry-e2e --bin kde-peer (or set KDE_PEER_BIN)`);
  }
  const port = await appKdePort(app);
  const state = tempDir('kde-peer');
  const args = ['--name', name, '--id', id, '--state', state, '--connect', `127.0.0.1:${port}`, '--timeout', String(PEER_TIMEOUT_SECS)];
  const proc = spawn(KDE_PEER, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' } });
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
    port,
    events,
    stderr: () => stderr,
    send(cmd) {
      proc.stdin.write(`${JSON.stringify(cmd)}\n`);
    },
    /** The first event (in order) for which `pred` holds; fails with the peer's errors and stderr. */
    async waitEvent(what, pred, ms = WAIT) {
      // A peer that exited fails the wait at once rather than at its deadline.
      const died = exited.then((code) => {
        throw new Error(`kde-peer exited (${code}) while waiting for ${what}`);
      });
      try {
        return await Promise.race([waitFor(what, () => events.find(pred), ms), died]);
      } catch (e) {
        const errors = events.filter((x) => x.event === 'error').map((x) => x.message);
        throw new Error(`${e.message}; peer errors: ${JSON.stringify(errors)}; stderr: ${stderr.slice(-2000)}`);
      }
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
  await peer.waitEvent('the peer connected to the app', (e) => e.event === 'connected');
  return peer;
}
