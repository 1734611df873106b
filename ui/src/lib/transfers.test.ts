import { describe, expect, it } from 'vitest';
import type { Event, TransferDto } from './bindings';
import { applySendEvent, describeOffer, formatEta, namesList, transferProgress, transferStatus, transferTitle } from './transfers';

const t = (over: Partial<TransferDto> = {}): TransferDto => ({
  id: 'ab'.repeat(16),
  device: 'DEV',
  device_name: 'Desk',
  direction: 'out',
  files: 2,
  names: ['report.pdf'],
  bytes_done: 0,
  bytes_total: 4_000_000,
  state: 'offered',
  message: null,
  rate: 0,
  created_ms: 1,
  finished_ms: null,
  wire_bytes: 0,
  resumed_bytes: 0,
  placed: [],
  ...over,
});

describe('transfers', () => {
  it('says how long is left', () => {
    expect(formatEta(0, 100)).toBe('');
    expect(formatEta(1000, 0)).toBe('');
    expect(formatEta(1000, 100)).toBe('10 s left');
    expect(formatEta(6_000_000, 10_000)).toBe('10 min left');
    expect(formatEta(36_000_000, 10_000)).toBe('1 h left');
  });
  it('reports progress and status in words', () => {
    expect(transferProgress(t({ bytes_done: 1_000_000 }))).toBe(0.25);
    expect(transferProgress(t({ bytes_total: 0, state: 'done' }))).toBe(1);
    expect(transferStatus(t())).toBe('Waiting for Desk to accept');
    expect(transferStatus(t({ direction: 'in' }))).toBe('Waiting for your answer');
    expect(transferStatus(t({ state: 'active', bytes_done: 1_000_000, rate: 1_000_000 }))).toBe('1.0 MB of 4.0 MB · 1.0 MB/s · 3 s left');
    expect(transferStatus(t({ state: 'rejected' }))).toBe('Desk declined');
    expect(transferStatus(t({ state: 'failed', message: 'disk full' }))).toBe('Failed: disk full');
  });
  it('names what moves', () => {
    expect(namesList(['a'])).toBe('a');
    expect(namesList(['a', 'b'])).toBe('a and b');
    expect(namesList(['a', 'b', 'c', 'd'])).toBe('a, b and 2 more');
    expect(transferTitle(t())).toBe('report.pdf to Desk');
    expect(transferTitle(t({ direction: 'in', names: [], files: 3 }))).toBe('3 files from Desk');
    expect(describeOffer({ files: 3, bytes: 12_000_000, names: [] })).toBe('3 files, 12 MB');
    expect(describeOffer({ files: 1, bytes: null, names: [] })).toBe('1 file');
  });
  it('moves progress and state from events', () => {
    const list = [t()];
    const prog: Event = { type: 'send_progress', id: list[0].id, device: 'DEV', direction: 'out', done: 2_000_000, total: 4_000_000, bytes_per_sec: 500 };
    const a = applySendEvent(list, prog, 10);
    expect(a[0]).toMatchObject({ bytes_done: 2_000_000, rate: 500, state: 'active' });
    expect(list[0].bytes_done).toBe(0);
    const done: Event = { type: 'send_state', id: list[0].id, device: 'DEV', direction: 'out', state: 'done', message: null };
    const b = applySendEvent(a, done, 20);
    expect(b[0]).toMatchObject({ state: 'done', rate: 0, bytes_done: 4_000_000, finished_ms: 20 });
    const other: Event = { ...prog, direction: 'in' };
    expect(applySendEvent(list, other, 1)).toBe(list);
    expect(applySendEvent(list, { type: 'in_sync', share: 's' }, 1)).toBe(list);
  });
});
