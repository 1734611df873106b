// One-shot sends (both directions): live progress from node events, rates and time left,
// and the words for an incoming offer. Pure: unit-tested in transfers.test.ts.
import type { Event, PendingDto, TransferDto } from './bindings';
import { formatBytes, formatRate, plural } from './format';

/** "12 s left", "3 min left", "2 h left"; '' when nothing moves or nothing is left. */
export function formatEta(remaining: number, bytesPerSec: number): string {
  if (!(bytesPerSec > 0) || !(remaining > 0)) return '';
  const s = Math.ceil(remaining / bytesPerSec);
  if (s < 60) return `${s} s left`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min left`;
  return `${Math.round(m / 60)} h left`;
}

/** Fraction done, 0..1 (a finished transfer of nothing is complete). */
export function transferProgress(t: Pick<TransferDto, 'bytes_done' | 'bytes_total' | 'state'>): number {
  if (t.state === 'done') return 1;
  return t.bytes_total > 0 ? Math.min(1, t.bytes_done / t.bytes_total) : 0;
}

export const ACTIVE_STATES = new Set(['queued', 'offered', 'active']);

/** What a transfer is doing, in words, from this device's side. */
export function transferStatus(t: TransferDto): string {
  const other = t.device_name || 'the other device';
  switch (t.state) {
    case 'queued':
      return t.direction === 'out' ? `Waiting for ${other} to connect` : 'Queued';
    case 'offered':
      return t.direction === 'out' ? `Waiting for ${other} to accept` : 'Waiting for your answer';
    case 'active': {
      const left = formatEta(t.bytes_total - t.bytes_done, t.rate);
      return [`${formatBytes(t.bytes_done)} of ${formatBytes(t.bytes_total)}`, t.rate > 0 ? formatRate(t.rate) : '', left]
        .filter(Boolean)
        .join(' · ');
    }
    case 'done':
      return t.direction === 'out' ? `Delivered to ${other}` : 'Received';
    case 'rejected':
      return t.direction === 'out' ? `${other} declined` : 'Declined';
    case 'failed':
      return `Failed${t.message ? `: ${t.message}` : ''}`;
    default:
      return t.state;
  }
}

/** "report.pdf", "report.pdf and photos", "a, b and 3 more". */
export function namesList(names: string[], max = 2): string {
  if (names.length === 0) return '';
  if (names.length <= max) return names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
  return `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}

/** Title of a transfer row: "report.pdf to Desk", "3 files from Desk". */
export function transferTitle(t: TransferDto): string {
  const what = t.names.length > 0 ? namesList(t.names) : plural(t.files, 'file');
  return `${what} ${t.direction === 'out' ? 'to' : 'from'} ${t.device_name || 'a device'}`;
}

/** An incoming send offer in words: "3 files, 12 MB". */
export function describeOffer(p: Pick<PendingDto, 'files' | 'bytes' | 'names'>): string {
  const parts = [];
  if (p.files != null) parts.push(plural(p.files, 'file'));
  if (p.bytes != null) parts.push(formatBytes(p.bytes));
  return parts.join(', ');
}

/**
 * Applies a send event to the transfer list (progress and state move without a refetch).
 * Returns the same array when the event is not about a known transfer; the caller refetches
 * for new transfers (send_offered).
 */
export function applySendEvent(list: TransferDto[], e: Event, now: number): TransferDto[] {
  if (e.type !== 'send_progress' && e.type !== 'send_state') return list;
  const i = list.findIndex((t) => t.id === e.id && t.direction === e.direction);
  if (i < 0) return list;
  const t = { ...list[i] };
  if (e.type === 'send_progress') {
    t.bytes_done = e.done;
    t.bytes_total = e.total;
    t.rate = e.bytes_per_sec;
    if (t.state === 'queued' || t.state === 'offered') t.state = 'active';
  } else {
    t.state = e.state;
    t.message = e.message;
    if (!ACTIVE_STATES.has(e.state)) {
      t.rate = 0;
      t.finished_ms = t.finished_ms ?? now;
      if (e.state === 'done') t.bytes_done = t.bytes_total;
    }
  }
  const out = list.slice();
  out[i] = t;
  return out;
}
