// History: versions grouped by file, the rewind plan in words, and the rewind time as the node
// takes it. Pure: unit-tested in history.test.ts.
import type { RewindDto, RewindStepDto, SummaryCountsDto, VersionDto } from './bindings';
import { plural } from './format';

export type FileVersions = { path: string; versions: VersionDto[]; newest: number };

/** Versions grouped by file, each file's newest first; files by their newest version. */
export function groupVersions(list: VersionDto[], filter = ''): FileVersions[] {
  const f = filter.trim().toLowerCase();
  const by = new Map<string, VersionDto[]>();
  for (const v of list) {
    if (f && !v.path.toLowerCase().includes(f)) continue;
    const l = by.get(v.path);
    if (l) l.push(v);
    else by.set(v.path, [v]);
  }
  return [...by.entries()]
    .map(([path, versions]) => {
      versions.sort((a, b) => b.archived_at_ms - a.archived_at_ms || b.id - a.id);
      return { path, versions, newest: versions[0].archived_at_ms };
    })
    .sort((a, b) => b.newest - a.newest || a.path.localeCompare(b.path));
}

/** Why a version was kept, as a user reads it. */
export function reasonLabel(reason: string): string {
  switch (reason) {
    case 'deleted':
      return 'Deleted';
    case 'replaced':
      return 'Replaced';
    case 'conflict':
      return 'Lost a conflict';
    default:
      return reason ? reason[0].toUpperCase() + reason.slice(1) : 'Kept';
  }
}

export const STEP_LABEL: Record<string, string> = {
  restore: 'Restore old content',
  undelete: 'Bring back',
  remove: 'Move to history',
  keep: 'Left as it is',
};

export function stepLabel(s: RewindStepDto): string {
  return STEP_LABEL[s.action] ?? s.action;
}

/** "2 files get their old content, 1 comes back, 1 moves to the history" (or nothing to do). */
export function summarizeRewind(r: Pick<RewindDto, 'steps'>): string {
  const n = (a: string) => r.steps.filter((s) => s.action === a).length;
  const [restore, undelete, remove, keep] = [n('restore'), n('undelete'), n('remove'), n('keep')];
  const parts = [];
  if (restore) parts.push(`${plural(restore, 'file')} ${restore === 1 ? 'gets its' : 'get their'} old content`);
  if (undelete) parts.push(`${plural(undelete, 'deleted file')} ${undelete === 1 ? 'comes' : 'come'} back`);
  if (remove) parts.push(`${plural(remove, 'newer file')} ${remove === 1 ? 'moves' : 'move'} to the history`);
  const kept = keep ? `${plural(keep, 'file')} ${keep === 1 ? 'stays' : 'stay'} as ${keep === 1 ? 'it is' : 'they are'}: its old content is on no device within reach` : '';
  if (!parts.length) return kept || 'Nothing to do: the folder already looks like that.';
  return kept ? `${parts.join(', ')}; ${kept}` : parts.join(', ');
}

/** The steps a rewind changes files with (`keep` steps leave theirs alone). */
export function changingSteps(r: Pick<RewindDto, 'steps'>): number {
  return r.steps.filter((s) => s.action !== 'keep').length;
}

/**
 * What the user typed as the moment to rewind to, as the node takes it: an age (`30s`, `10m`,
 * `2h`, `3d`, `1w`) passes through; a local date and time (`2026-11-23 10:30`, seconds
 * optional, `T` or a space) becomes RFC 3339 in UTC; RFC 3339 with a zone passes through.
 * `ms` is the moment itself (for checks and display); null when the text is none of these.
 */
export function rewindTime(input: string, now: number): { to: string; ms: number } | null {
  const t = input.trim();
  const age = /^(\d{1,6})\s*([smhdw])$/.exec(t);
  if (age) {
    const unit = { s: 1000, m: 60_000, h: 3600_000, d: 86_400_000, w: 604_800_000 }[age[2] as 's' | 'm' | 'h' | 'd' | 'w'];
    return { to: `${age[1]}${age[2]}`, ms: now - Number(age[1]) * unit };
  }
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(t)) {
    const ms = new Date(t).getTime();
    return Number.isNaN(ms) ? null : { to: t, ms };
  }
  const local = localToRfc3339(t.replace(' ', 'T'));
  return local ? { to: local, ms: new Date(local).getTime() } : null;
}

/** A datetime-local value ("2026-11-23T10:30") as RFC 3339 in UTC; null when not a time. */
export function localToRfc3339(value: string): string | null {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(value.trim())) return null;
  const d = new Date(value.trim());
  if (Number.isNaN(d.getTime())) return null;
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** `ms` as a local date and time, "2026-11-23T10:30" (`sep` between date and time). */
export function msToLocal(ms: number, sep = 'T'): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}${sep}${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** A share's summary counts in words: here (local) and from other devices. */
export function summaryLines(c: SummaryCountsDto): { here: string; remote: string; issues: string } {
  const words = (adds: number, changes: number, deletes: number) =>
    [adds ? `${adds} added` : '', changes ? `${changes} changed` : '', deletes ? `${deletes} deleted` : '']
      .filter(Boolean)
      .join(', ');
  return {
    here: words(c.local_adds, c.local_changes, c.local_deletes),
    remote: words(c.remote_adds, c.remote_changes, c.remote_deletes),
    issues: [c.conflicts ? plural(c.conflicts, 'conflict') : '', c.errors ? plural(c.errors, 'error') : '']
      .filter(Boolean)
      .join(', '),
  };
}
