import { describe, expect, it } from 'vitest';
import type { VersionDto } from './bindings';
import { changingSteps, groupVersions, localToRfc3339, msToLocal, rewindTime, reasonLabel, stepLabel, summarizeRewind, summaryLines } from './history';

const v = (path: string, id: number, at: number): VersionDto => ({
  id, id_text: String(id), share: 'S', path, archived_at_ms: at, size: 1, hash: 'h', modified_by: 'A', replaced_by: 'B', reason: 'deleted', file: `/x/${id}`, kept_here: true,
});

describe('history', () => {
  it('groups versions by file, newest first', () => {
    const g = groupVersions([v('a.txt', 1, 100), v('b.txt', 2, 300), v('a.txt', 3, 200)]);
    expect(g.map((f) => f.path)).toEqual(['b.txt', 'a.txt']);
    expect(g[1].versions.map((x) => x.id)).toEqual([3, 1]);
    expect(groupVersions([v('docs/A.txt', 1, 1), v('b', 2, 2)], ' a.TXT').map((f) => f.path)).toEqual(['docs/A.txt']);
  });
  it('summarises a rewind plan', () => {
    expect(summarizeRewind({ steps: [] })).toMatch(/Nothing to do/);
    const steps = [
      { action: 'restore', path: 'a', version: 1 },
      { action: 'restore', path: 'b', version: 2 },
      { action: 'undelete', path: 'c', version: 3 },
      { action: 'remove', path: 'd', version: null, from: null, note: null },
    ].map((s) => ({ from: null, note: null, ...s }));
    expect(summarizeRewind({ steps })).toBe('2 files get their old content, 1 deleted file comes back, 1 newer file moves to the history');
    expect(stepLabel(steps[2])).toBe('Bring back');
    // A file whose old content is on no device within reach stays; the count leaves it out.
    const keep = { action: 'keep', path: 'e', version: 4, from: null, note: 'not here' };
    expect(summarizeRewind({ steps: [...steps, keep] })).toMatch(/moves to the history; 1 file stays as it is/);
    expect(summarizeRewind({ steps: [keep] })).toMatch(/^1 file stays as it is/);
    expect(changingSteps({ steps: [...steps, keep] })).toBe(4);
    expect(stepLabel(keep)).toBe('Left as it is');
    expect(reasonLabel('deleted')).toBe('Deleted');
  });
  it('turns a local time into RFC 3339 and back', () => {
    const local = msToLocal(Date.UTC(2026, 10, 23, 10, 30));
    const iso = localToRfc3339(local);
    expect(iso).toBe('2026-11-23T10:30:00Z');
    expect(localToRfc3339('yesterday')).toBeNull();
    expect(localToRfc3339('')).toBeNull();
  });
  it('reads the rewind time as typed', () => {
    const now = Date.UTC(2026, 10, 23, 12, 0);
    expect(rewindTime(' 10m ', now)).toEqual({ to: '10m', ms: now - 600_000 });
    expect(rewindTime('45s', now)).toEqual({ to: '45s', ms: now - 45_000 });
    expect(rewindTime('2026-11-23T10:00:00Z', now)).toEqual({ to: '2026-11-23T10:00:00Z', ms: Date.UTC(2026, 10, 23, 10) });
    const local = msToLocal(Date.UTC(2026, 10, 23, 9, 15), ' ');
    expect(rewindTime(local, now)).toEqual({ to: '2026-11-23T09:15:00Z', ms: Date.UTC(2026, 10, 23, 9, 15) });
    expect(rewindTime('last tuesday', now)).toBeNull();
    expect(rewindTime('10x', now)).toBeNull();
  });
  it('puts summary counts in words', () => {
    const c = { local_adds: 2, local_changes: 0, local_deletes: 1, remote_adds: 0, remote_changes: 3, remote_deletes: 0, errors: 0, conflicts: 1 };
    expect(summaryLines(c)).toEqual({ here: '2 added, 1 deleted', remote: '3 changed', issues: '1 conflict' });
  });
});
