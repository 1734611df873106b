// Small pure helpers for display; unit-tested in format.test.ts.

export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function formatRate(bytesPerSec: number): string {
  return `${formatBytes(Math.round(bytesPerSec))}/s`;
}

/** "just now", "5 min ago", "3 h ago", "2 days ago", else a date. */
export function timeAgo(ms: number, now: number = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 45) return 'just now';
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 24) return `${h} h ago`;
  const d = Math.round(h / 24);
  if (d < 7) return d === 1 ? 'yesterday' : `${d} days ago`;
  return new Date(ms).toLocaleDateString();
}

export function clockTime(ms: number): string {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

/**
 * The pairing code as both screens show it: Ferry's 6 digits as "123 456". Anything else (a
 * KDE Connect key: 8 hex digits, as the phone shows it) is shown as it is, letters and all.
 */
export function formatCode(code: string): string {
  const digits = code.replace(/\s/g, '');
  return /^\d{6}$/.test(digits) ? `${digits.slice(0, 3)} ${digits.slice(3)}` : code;
}

/** A device id shortened for display: its first group. */
export function shortId(id: string): string {
  return id.split('-')[0] ?? id;
}

export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

/** HOST:PORT as the node accepts it (IPv6 in brackets). */
export function validAddress(s: string): boolean {
  const t = s.trim();
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(t);
  if (!m) return false;
  const port = Number(m[2]);
  return port > 0 && port < 65536;
}

/** Where an offered share goes by default: beside the default folder, named after its label. */
export function offerFolder(defaultFolder: string, label: string, taken: string[]): string {
  const parent = defaultFolder.replace(/\/[^/]*\/?$/, '') || '/';
  const clean = label.replace(/[/\\]/g, '-').trim() || 'Shared';
  let candidate = `${parent}/${clean === 'Ferry' ? 'Ferry shared' : clean}`;
  let i = 2;
  while (taken.includes(candidate)) candidate = `${parent}/${clean} ${i++}`;
  return candidate;
}
