//! History decisions as pure functions of the recorded versions and a `now` passed in: which
//! versions a retention policy keeps, what a path held at a past moment, the plan that rewinds a
//! folder to that moment, and the parsing of times the user types ("2h", RFC 3339).
//!
//! "What a path held at time T" is read from the version history. A version is content that was
//! live until it was archived (`archived_at`); it became live when it was written, which the
//! history knows only through the content's mtime. So the content at T is the earliest version
//! archived after T if its mtime is not after T; if nothing was archived after T, the current
//! content, if its mtime is not after T. Anything else did not exist at T (or its content at T
//! was never recorded) and a rewind moves it into the history rather than guessing.

use std::collections::{BTreeSet, HashMap, HashSet};

use ferry_proto::{ChunkHash, RelPath, Retention};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// What the history needs to know about one archived version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    pub path: RelPath,
    /// Unique per path (the archive time in ns).
    pub id: u64,
    pub archived_at_ms: i64,
    pub size: u64,
    pub mtime_ns: i64,
    pub hash: ChunkHash,
}

/// The versions `policy` drops at `now_ms`, as (path, id). Pure: the caller removes them.
///
/// Staggered: every version younger than the keep-all window stays; older ones are put in
/// buckets by age past the window (hourly for the first day, daily until day 31, weekly after)
/// and only the newest of each bucket stays, per path. Then, if the share's kept versions
/// exceed the size cap, the oldest go first until they fit.
pub fn prune(versions: &[VersionInfo], policy: Retention, now_ms: i64) -> Vec<(RelPath, u64)> {
    match policy {
        Retention::Off => versions.iter().map(|v| (v.path.clone(), v.id)).collect(),
        Retention::TrashCan { days } => versions
            .iter()
            .filter(|v| now_ms - v.archived_at_ms >= days as i64 * DAY_MS)
            .map(|v| (v.path.clone(), v.id))
            .collect(),
        Retention::Staggered { keep_all_days, max_bytes } => {
            let keep_all = keep_all_days as i64 * DAY_MS;
            let mut sorted: Vec<&VersionInfo> = versions.iter().collect();
            // Newest first, so the first version seen in a bucket is the one kept.
            sorted.sort_by(|a, b| b.archived_at_ms.cmp(&a.archived_at_ms).then(b.id.cmp(&a.id)));
            let mut seen: HashSet<(&RelPath, u8, i64)> = HashSet::new();
            let mut drop = Vec::new();
            let mut kept = Vec::new();
            for v in sorted {
                let age = (now_ms - v.archived_at_ms).max(0);
                if age < keep_all {
                    kept.push(v);
                    continue;
                }
                let past = age - keep_all;
                let bucket = if past < DAY_MS {
                    (0u8, past / HOUR_MS)
                } else if past < 31 * DAY_MS {
                    (1, past / DAY_MS)
                } else {
                    (2, past / (7 * DAY_MS))
                };
                if seen.insert((&v.path, bucket.0, bucket.1)) {
                    kept.push(v);
                } else {
                    drop.push((v.path.clone(), v.id));
                }
            }
            if max_bytes > 0 {
                let mut total: u64 = kept.iter().map(|v| v.size).sum();
                // `kept` is newest first: pop from the back for the oldest.
                while total > max_bytes {
                    let Some(v) = kept.pop() else { break };
                    total -= v.size;
                    drop.push((v.path.clone(), v.id));
                }
            }
            drop
        }
    }
}

/// What a path held at a moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AtTime {
    /// The current content (unchanged since then).
    Current,
    /// The content of this version.
    Version(u64),
    /// Nothing (or nothing recorded).
    Absent,
}

/// The current state of a path, as far as history needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Current {
    pub mtime_ns: i64,
    pub hash: ChunkHash,
}

/// What `path` held at `t_ms`, given its current live content (None: deleted or never there)
/// and its versions (any order). See the module docs.
pub fn content_at(current: Option<&Current>, versions: &[VersionInfo], t_ms: i64) -> AtTime {
    let t_ns = (t_ms as i128 * 1_000_000).min(i64::MAX as i128) as i64;
    let after = versions.iter().filter(|v| v.archived_at_ms > t_ms).min_by_key(|v| (v.archived_at_ms, v.id));
    match after {
        Some(v) if v.mtime_ns <= t_ns => AtTime::Version(v.id),
        Some(_) => AtTime::Absent,
        None => match current {
            Some(c) if c.mtime_ns <= t_ns => AtTime::Current,
            _ => AtTime::Absent,
        },
    }
}

/// One step of a rewind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RewindStep {
    /// Bring back this version's content at `path` (a new change, the current content becomes
    /// a version).
    Restore { path: RelPath, version: u64 },
    /// The file did not exist then: move it into the history.
    Remove { path: RelPath },
}

/// The steps that make the files in `current` (live files, by path) and `versions` look as
/// they did at `t_ms`. Paths in neither are untouched; sorted by path.
pub fn plan_rewind(
    current: &HashMap<RelPath, Current>,
    versions: &HashMap<RelPath, Vec<VersionInfo>>,
    t_ms: i64,
) -> Vec<RewindStep> {
    let paths: BTreeSet<&RelPath> = current.keys().chain(versions.keys()).collect();
    let mut out = Vec::new();
    for p in paths {
        let cur = current.get(p);
        let vs = versions.get(p).map(Vec::as_slice).unwrap_or(&[]);
        match content_at(cur, vs, t_ms) {
            AtTime::Current => {}
            AtTime::Version(id) => {
                let same = cur.is_some_and(|c| vs.iter().any(|v| v.id == id && v.hash == c.hash));
                if !same {
                    out.push(RewindStep::Restore { path: p.clone(), version: id });
                }
            }
            AtTime::Absent => {
                if cur.is_some() {
                    out.push(RewindStep::Remove { path: p.clone() });
                }
            }
        }
    }
    out
}

/// Parses a moment typed by the user: RFC 3339 (`2026-11-23T10:00:00Z`) or an age before
/// `now_ms`: a number and a unit, `s`, `m`, `h`, `d` or `w` (`90s`, `10m`, `2h`, `3d`, `1w`).
/// Returns milliseconds since the Unix epoch.
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let s = s.trim();
    if let Some(unit) = s.chars().last().filter(|c| c.is_ascii_alphabetic()) {
        let num = &s[..s.len() - 1];
        if !num.is_empty() && num.chars().all(|c| c.is_ascii_digit()) {
            let n: i64 = num.parse().map_err(|_| format!("{s:?}: number too large"))?;
            let unit_ms = match unit {
                's' => 1000,
                'm' => 60_000,
                'h' => HOUR_MS,
                'd' => DAY_MS,
                'w' => 7 * DAY_MS,
                _ => return Err(format!("{s:?}: unknown unit {unit:?} (use s, m, h, d or w)")),
            };
            let ago = n.checked_mul(unit_ms).ok_or_else(|| format!("{s:?}: too far back"))?;
            return Ok(now_ms - ago);
        }
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("{s:?} is not a time: use RFC 3339 (2026-11-23T10:00:00Z) or an age like 10m, 2h, 3d"))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(path: &str, id: u64, at_ms: i64, size: u64) -> VersionInfo {
        VersionInfo {
            path: RelPath::new(path).unwrap(),
            id,
            archived_at_ms: at_ms,
            size,
            mtime_ns: 0,
            hash: ChunkHash([id as u8; 32]),
        }
    }

    #[test]
    fn off_and_trash_can() {
        let now = 100 * DAY_MS;
        let vs = vec![v("a", 1, now - 10 * DAY_MS, 1), v("a", 2, now - DAY_MS, 1)];
        assert_eq!(prune(&vs, Retention::Off, now).len(), 2);
        let dropped = prune(&vs, Retention::TrashCan { days: 5 }, now);
        assert_eq!(dropped, vec![(RelPath::new("a").unwrap(), 1)]);
        assert!(prune(&vs, Retention::TrashCan { days: 30 }, now).is_empty());
    }

    #[test]
    fn staggered_keeps_one_per_bucket() {
        let now = 1000 * DAY_MS;
        let keep_all = 2;
        let base = now - keep_all as i64 * DAY_MS;
        let mut vs = vec![
            // Inside the keep-all window: all kept.
            v("a", 1, now - 1000, 1),
            v("a", 2, now - 2000, 1),
            // 10 and 20 minutes past the window: same hourly bucket, the newer (3) stays.
            v("a", 3, base - 10 * 60_000, 1),
            v("a", 4, base - 20 * 60_000, 1),
            // Another hour: stays.
            v("a", 5, base - 2 * HOUR_MS, 1),
            // Day 5 past the window, twice: one stays.
            v("a", 6, base - 5 * DAY_MS, 1),
            v("a", 7, base - 5 * DAY_MS - HOUR_MS, 1),
            // Weeks: 40 and 41 days are in the same week bucket (past / 7 = 5).
            v("a", 8, base - 40 * DAY_MS, 1),
            v("a", 9, base - 41 * DAY_MS, 1),
            // Another path has its own buckets.
            v("b", 10, base - 20 * 60_000, 1),
        ];
        let policy = Retention::Staggered { keep_all_days: keep_all, max_bytes: 0 };
        let mut dropped: Vec<u64> = prune(&vs, policy, now).into_iter().map(|(_, id)| id).collect();
        dropped.sort();
        assert_eq!(dropped, vec![4, 7, 9]);

        // The cap drops the oldest kept first.
        vs.retain(|x| ![4, 7, 9].contains(&x.id));
        let capped = Retention::Staggered { keep_all_days: keep_all, max_bytes: 5 };
        let mut dropped: Vec<u64> = prune(&vs, capped, now).into_iter().map(|(_, id)| id).collect();
        dropped.sort();
        // Kept by age: 1, 2, 3, 10, 5 (newest five); dropped: 6 and 8, the oldest.
        assert_eq!(dropped, vec![6, 8]);
    }

    #[test]
    fn content_at_and_rewind_plan() {
        let p = |s: &str| RelPath::new(s).unwrap();
        let t = 1_000_000; // ms
        let ns = |ms: i64| ms * 1_000_000;
        let ver = |path: &str, id: u64, at: i64, mtime_ms: i64, h: u8| VersionInfo {
            path: p(path),
            id,
            archived_at_ms: at,
            size: 1,
            mtime_ns: ns(mtime_ms),
            hash: ChunkHash([h; 32]),
        };
        let mut current = HashMap::new();
        let mut versions: HashMap<RelPath, Vec<VersionInfo>> = HashMap::new();
        // untouched: current since before t, no versions after.
        current.insert(p("untouched"), Current { mtime_ns: ns(t - 10), hash: ChunkHash([1; 32]) });
        // edited twice after t: the first version archived after t is the content at t.
        current.insert(p("edited"), Current { mtime_ns: ns(t + 50), hash: ChunkHash([9; 32]) });
        versions.insert(p("edited"), vec![ver("edited", 2, t + 50, t + 20, 8), ver("edited", 1, t + 20, t - 5, 7)]);
        // deleted after t: only a version.
        versions
            .insert(p("deleted"), vec![ver("deleted", 3, t + 30, t - 100, 3), ver("deleted", 4, t - 50, t - 200, 4)]);
        // created after t.
        current.insert(p("new"), Current { mtime_ns: ns(t + 5), hash: ChunkHash([5; 32]) });
        // created and deleted after t: nothing to do.
        versions.insert(p("gone"), vec![ver("gone", 5, t + 40, t + 10, 5)]);
        // edited back to the same content as at t: nothing to do.
        current.insert(p("same"), Current { mtime_ns: ns(t + 60), hash: ChunkHash([6; 32]) });
        versions.insert(p("same"), vec![ver("same", 6, t + 30, t - 1, 6)]);

        let plan = plan_rewind(&current, &versions, t);
        assert_eq!(
            plan,
            vec![
                RewindStep::Restore { path: p("deleted"), version: 3 },
                RewindStep::Restore { path: p("edited"), version: 1 },
                RewindStep::Remove { path: p("new") },
            ]
        );
        assert_eq!(content_at(None, &versions[&p("deleted")], t - 60), AtTime::Version(4));
        assert_eq!(content_at(None, &versions[&p("deleted")], t + 31), AtTime::Absent);
    }

    #[test]
    fn times() {
        let now = 10 * DAY_MS;
        assert_eq!(parse_time("10m", now).unwrap(), now - 600_000);
        assert_eq!(parse_time("2h", now).unwrap(), now - 2 * HOUR_MS);
        assert_eq!(parse_time("3d", now).unwrap(), now - 3 * DAY_MS);
        assert_eq!(parse_time("1w", now).unwrap(), now - 7 * DAY_MS);
        assert_eq!(parse_time("90s", now).unwrap(), now - 90_000);
        assert_eq!(parse_time("1970-01-02T00:00:00Z", now).unwrap(), DAY_MS);
        assert_eq!(parse_time("1970-01-02T01:00:00+01:00", now).unwrap(), DAY_MS);
        for bad in ["", "10", "m", "10y", "yesterday", "2026-13-01T00:00:00Z", "99999999999999999999d"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
    }
}
