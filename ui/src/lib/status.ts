// The overall state shown in the sidebar (the same four the tray icon shows).
import type { PendingDto, ShareStatusDto, StatusDto } from './bindings';

export type Overall = 'up_to_date' | 'syncing' | 'attention' | 'paused';

export function overall(s: StatusDto | null, pending: PendingDto[]): Overall {
  if (!s) return 'syncing';
  if (s.paused) return 'paused';
  if (pending.length > 0 || s.shares.some((x) => x.state === 'error' || x.last_error || x.attention || failedCount(x) > 0)) return 'attention';
  if (s.shares.some((x) => x.state === 'scanning' || x.state === 'syncing' || x.need > 0)) return 'syncing';
  return 'up_to_date';
}

export const OVERALL_LABEL: Record<Overall, string> = {
  up_to_date: 'Up to date',
  syncing: 'Syncing…',
  attention: 'Needs attention',
  paused: 'Paused',
};

/** How many items of a share cannot be synced (listed or not). */
export function failedCount(s: Pick<ShareStatusDto, 'failed_items' | 'failed_more'>): number {
  return (s.failed_items?.length ?? 0) + Number(s.failed_more ?? 0);
}

/** A share's state in words; `failed` items that cannot be synced keep it from "Up to date". */
export function shareState(state: string, inSync: boolean, need: number, failed = 0): string {
  if (state === 'paused') return 'Paused';
  if (state === 'error') return 'Error';
  if (state === 'scanning') return 'Scanning…';
  if (need > 0) return `Syncing · ${need} to fetch`;
  if (state === 'stopped') return 'Stopped';
  if (failed > 0) return `Out of sync · ${failed} ${failed === 1 ? 'item' : 'items'} failed`;
  return inSync ? 'Up to date' : 'Waiting for devices';
}

/**
 * A share's attention note for the window: the node writes it for the CLI too, ending with the
 * command that clears it; the window has a Dismiss button instead.
 */
export function attentionText(note: string): string {
  const t = note.replace(/\s*\(`ferry [^`]*`[^)]*\)\s*$/, '').trim();
  return t ? t[0].toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? '' : '.') : '';
}
