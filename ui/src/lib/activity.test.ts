import { describe, expect, it } from 'vitest';
import { emptyActivity, MAX_ENTRIES, progress, reduce, replay } from './activity';

const name = (id: string) => (id === 's1' ? 'Photos' : id);

describe('activity', () => {
  it('tracks a transfer until its file is applied', () => {
    let a = emptyActivity();
    a = reduce(a, { type: 'transfer_progress', share: 's1', path: 'a.bin', done: 50, total: 200, bytes_per_sec: 1000 }, 1, name);
    expect(Object.values(a.transfers)).toHaveLength(1);
    expect(progress(Object.values(a.transfers)[0])).toBe(0.25);
    a = reduce(a, { type: 'applied', share: 's1', path: 'a.bin', action: 'added', from: 'desk' }, 2, name);
    expect(Object.values(a.transfers)).toHaveLength(0);
    expect(a.entries[0].title).toBe('Added a.bin');
    expect(a.entries[0].detail).toBe('in Photos, from desk');
  });
  it('keeps newest first, bounded, and does not mutate its input', () => {
    const start = emptyActivity();
    let a = start;
    for (let i = 0; i < MAX_ENTRIES + 5; i++) {
      a = reduce(a, { type: 'error', share: null, device: null, message: `e${i}` }, i, name);
    }
    expect(start.entries).toHaveLength(0);
    expect(a.entries).toHaveLength(MAX_ENTRIES);
    expect(a.entries[0].detail).toBe(`e${MAX_ENTRIES + 4}`);
  });
  it('replays recorded events at the times they happened, newest first', () => {
    const recent = {
      events: [
        { seq: 1, at_ms: 100, type: 'conflict' as const, share: 's1', path: 'a.txt', copy: 'a (conflict).txt', winner: 'desk' },
        { seq: 2, at_ms: 200, type: 'in_sync' as const, share: 's1' },
      ],
    };
    const a = replay(emptyActivity(), recent, name);
    expect(a.entries.map((e) => [e.title, e.at])).toEqual([['Photos is up to date', 200], ['Conflict on a.txt', 100]]);
  });
  it('shows a refused device as an error with its reason', () => {
    const reason = 'it came back with another certificate';
    const a = reduce(emptyActivity(), { type: 'device_refused', device: 'k1', name: 'Pixel', reason }, 1, name);
    expect(a.entries[0]).toMatchObject({ kind: 'error', title: 'Refused Pixel', detail: reason });
  });
  it('says which items cannot be synced', () => {
    const item = { path: 'docs/pipe', reason: 'a FIFO (named pipe): Ferry does not sync special files' };
    const a = reduce(emptyActivity(), { type: 'failed_items', share: 's1', label: 'Photos', count: 1, new: [item] }, 1, name);
    expect(a.entries[0].title).toBe('Cannot sync docs/pipe in Photos');
    expect(a.entries[0].detail).toBe('docs/pipe: a FIFO (named pipe): Ferry does not sync special files');
    const b = reduce(a, { type: 'failed_items', share: 's1', label: 'Photos', count: 3, new: [item, item] }, 2, name);
    expect(b.entries[0].title).toBe('2 items cannot be synced in Photos');
  });
  it('ignores quiet events', () => {
    const a = reduce(emptyActivity(), { type: 'scan_finished', share: 's1', changes: 0, seen: 3, hashed_bytes: 0, millis: 1 }, 1, name);
    expect(a.entries).toHaveLength(0);
    const b = reduce(a, { type: 'index_sent', share: 's1', device: 'd', records: 3 }, 1, name);
    expect(b).toBe(a);
  });
  it('records removals both ways', () => {
    let a = reduce(emptyActivity(), { type: 'device_removed', device: 'd1', name: 'laptop', by: null }, 1, name);
    expect(a.entries[0].title).toBe('Removed laptop');
    a = reduce(a, { type: 'device_removed', device: 'd2', name: 'desk', by: 'desk' }, 2, name);
    expect(a.entries[0].title).toBe('Removed by desk');
  });
  it('records pause and conflicts', () => {
    let a = reduce(emptyActivity(), { type: 'sync_paused', paused: true }, 1, name);
    a = reduce(a, { type: 'conflict', share: 's1', path: 'x.txt', copy: 'x.conflict.txt', winner: 'd' }, 2, name);
    expect(a.entries.map((e) => e.kind)).toEqual(['conflict', 'sync']);
  });
  it('records sends offered, received, declined and failed', () => {
    const dev = (id: string) => (id === 'D1' ? 'Desk' : id);
    let a = reduce(emptyActivity(), { type: 'send_offered', id: 't', device: 'D1', device_name: 'Desk', direction: 'in', files: 1, bytes: 5, names: ['a.pdf'] }, 1, name, dev);
    expect(a.entries[0]).toMatchObject({ kind: 'send', title: 'Desk offers a.pdf' });
    a = reduce(a, { type: 'send_state', id: 't', device: 'D1', direction: 'in', state: 'active', message: null }, 2, name, dev);
    expect(a.entries).toHaveLength(1);
    a = reduce(a, { type: 'send_state', id: 't', device: 'D1', direction: 'in', state: 'done', message: null }, 3, name, dev);
    expect(a.entries[0].title).toBe('Received files from Desk');
    a = reduce(a, { type: 'send_state', id: 'u', device: 'D1', direction: 'out', state: 'failed', message: 'disk full' }, 4, name, dev);
    expect(a.entries[0]).toMatchObject({ kind: 'error', title: 'Sending to Desk failed', detail: 'disk full' });
  });
});
