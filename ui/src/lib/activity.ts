// The Activity feed: built from node events as they arrive (recent changes, transfers in
// progress, errors, conflicts, devices coming and going). Pure: unit-tested.
import type { Event } from './bindings';

export type Entry = {
  seq: number;
  at: number;
  kind: 'change' | 'conflict' | 'error' | 'device' | 'scan' | 'sync' | 'send';
  share: string | null;
  title: string;
  detail: string;
};

export type Transfer = {
  share: string;
  path: string;
  done: number;
  total: number;
  rate: number;
  at: number;
};

export type Activity = {
  entries: Entry[];
  transfers: Record<string, Transfer>;
  nextSeq: number;
};

/** How many entries the feed keeps (newest first). */
export const MAX_ENTRIES = 300;

export function emptyActivity(): Activity {
  return { entries: [], transfers: {}, nextSeq: 1 };
}

const key = (share: string, path: string) => `${share}\u0000${path}`;

/** Applies one event; returns a new Activity (inputs are not mutated). */
export function reduce(
  a: Activity,
  e: Event,
  now: number,
  shareName: (id: string) => string,
  deviceName: (id: string) => string = (id) => id,
): Activity {
  const add = (x: Omit<Entry, 'seq' | 'at'>, base: Activity = a): Activity => {
    const entry: Entry = { ...x, seq: base.nextSeq, at: now };
    return { ...base, entries: [entry, ...base.entries].slice(0, MAX_ENTRIES), nextSeq: base.nextSeq + 1 };
  };
  switch (e.type) {
    case 'transfer_progress': {
      const transfers = { ...a.transfers };
      if (e.total > 0 && e.done >= e.total) delete transfers[key(e.share, e.path)];
      else transfers[key(e.share, e.path)] = { share: e.share, path: e.path, done: e.done, total: e.total, rate: e.bytes_per_sec, at: now };
      return { ...a, transfers };
    }
    case 'applied': {
      const transfers = { ...a.transfers };
      delete transfers[key(e.share, e.path)];
      const verb = e.action === 'deleted' ? 'Deleted' : e.action === 'added' ? 'Added' : 'Updated';
      return add({ kind: 'change', share: e.share, title: `${verb} ${e.path}`, detail: `in ${shareName(e.share)}, from ${deviceName(e.from)}` }, { ...a, transfers });
    }
    case 'conflict':
      return add({ kind: 'conflict', share: e.share, title: `Conflict on ${e.path}`, detail: `kept the other side as ${e.copy}` });
    case 'error':
      return add({ kind: 'error', share: e.share, title: 'Error', detail: e.message });
    case 'scan_finished':
      if (e.changes === 0) return a;
      return add({ kind: 'scan', share: e.share, title: `${e.changes} local change${e.changes === 1 ? '' : 's'}`, detail: `found in ${shareName(e.share)}` });
    case 'device_connected':
      return add({ kind: 'device', share: null, title: `${e.name} connected`, detail: e.address });
    case 'device_disconnected':
      return add({ kind: 'device', share: null, title: `${e.name} disconnected`, detail: e.reason });
    case 'paired':
      return add({ kind: 'device', share: null, title: `Paired with ${e.name}`, detail: '' });
    case 'device_removed':
      return e.by == null
        ? add({ kind: 'device', share: null, title: `Removed ${e.name}`, detail: 'its connections are refused; no file was deleted' })
        : add({ kind: 'device', share: null, title: `Removed by ${e.by}`, detail: 'no longer syncing with it; your files stay' });
    case 'device_refused':
      // E.g. a paired KDE Connect device came back with another certificate: worth an error.
      return add({ kind: 'error', share: null, title: `Refused ${e.name}`, detail: e.reason });
    case 'failed_items': {
      const first = e.new[0];
      const title = `${e.new.length === 1 ? `Cannot sync ${first.path}` : `${e.new.length} items cannot be synced`} in ${shareName(e.share)}`;
      return add({ kind: 'error', share: e.share, title, detail: e.new.map((i) => `${i.path}: ${i.reason}`).join('; ') });
    }
    case 'in_sync':
      return add({ kind: 'sync', share: e.share, title: `${shareName(e.share)} is up to date`, detail: '' });
    case 'sync_paused':
      return add({ kind: 'sync', share: null, title: e.paused ? 'Syncing paused' : 'Syncing resumed', detail: '' });
    case 'send_offered': {
      const what = e.names.length === 1 ? e.names[0] : `${e.files} file${e.files === 1 ? '' : 's'}`;
      return add({
        kind: 'send',
        share: null,
        title: e.direction === 'in' ? `${e.device_name} offers ${what}` : `Offered ${what} to ${e.device_name}`,
        detail: e.names.length > 1 ? e.names.join(', ') : '',
      });
    }
    case 'send_state': {
      const who = deviceName(e.device);
      const inbound = e.direction === 'in';
      if (e.state === 'done') return add({ kind: 'send', share: null, title: inbound ? `Received files from ${who}` : `${who} has the files you sent`, detail: '' });
      if (e.state === 'rejected') return add({ kind: 'send', share: null, title: inbound ? `Declined files from ${who}` : `${who} declined your files`, detail: e.message ?? '' });
      if (e.state === 'failed') return add({ kind: 'error', share: null, title: inbound ? `Receiving from ${who} failed` : `Sending to ${who} failed`, detail: e.message ?? '' });
      return a;
    }
    case 'lagged':
      return add({ kind: 'error', share: null, title: 'Some activity was not shown', detail: `${e.missed} events were missed` });
    default:
      return a;
  }
}

/** Applies events the node kept (its recent events), each at the time it happened. */
export function replay(
  a: Activity,
  recent: { events: (Event & { at_ms: number })[] },
  shareName: (id: string) => string,
  deviceName: (id: string) => string = (id) => id,
): Activity {
  return recent.events.reduce((acc, e) => reduce(acc, e, e.at_ms, shareName, deviceName), a);
}

/** Fraction done, 0..1. */
export function progress(t: Transfer): number {
  return t.total > 0 ? Math.min(1, t.done / t.total) : 0;
}
