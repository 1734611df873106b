//! Decisions that depend on a share's settings: the conflict policy, the mass-delete guard, and
//! the "make the others match this device" plan of a send-only share's override.

use std::collections::{BTreeSet, HashMap};

use ferry_proto::{ChunkHash, ConflictPolicy, DeviceId, FileRecord, RelPath, VersionVector};

use crate::{Action, decide};

/// [`decide`] under a conflict policy:
/// - `KeepBoth`: as [`decide`] (the loser becomes a conflict copy);
/// - `NewestWins`: the same winner, but a losing local file goes to the history
///   ([`Action::ConflictRemoteWinsArchive`]) instead of a conflict copy;
/// - `ThisDeviceWins`: when the remote edit would win, this device keeps its content and makes
///   a new version that has seen both ([`Action::OverrideLocal`]), which every other device then
///   takes (archiving its own content). A local deletion never overrides an edit: data first.
pub fn decide_with_policy(local: Option<&FileRecord>, remote: &FileRecord, policy: ConflictPolicy) -> Action {
    let action = decide(local, remote);
    match (action, policy) {
        (Action::ConflictRemoteWins, ConflictPolicy::NewestWins) => Action::ConflictRemoteWinsArchive,
        (Action::ConflictRemoteWins, ConflictPolicy::ThisDeviceWins) => Action::OverrideLocal,
        _ => action,
    }
}

/// The record this device writes for [`Action::OverrideLocal`]: its own content under a
/// version that dominates both.
pub fn override_record(local: &FileRecord, remote: &FileRecord, me: DeviceId) -> FileRecord {
    FileRecord { version: local.version.merged(&remote.version).bumped(me), modified_by: me, ..local.clone() }
}

/// Percent of a share's files one peer update may delete before the guard holds it.
pub const MASS_DELETE_PERCENT: u8 = 50;
/// Deleting this many files or fewer never trips the guard: tidying a small folder is normal.
pub const MASS_DELETE_MIN: usize = 10;

/// True when deleting `deletes` of `live_files` files at once needs the user's consent.
pub fn mass_delete_trips(live_files: usize, deletes: usize, percent: u8) -> bool {
    deletes > MASS_DELETE_MIN && deletes * 100 > live_files * percent as usize
}

/// Override of a send-only share: the records this device must publish so that every peer ends
/// up with exactly this device's files. A path is re-published (same content, a version that
/// dominates every peer's) when some peer's record is newer than or concurrent with ours; a path
/// only peers have is published as a deletion. Peers archive what they lose.
pub fn plan_override(
    local: &HashMap<RelPath, FileRecord>,
    remotes: &[&HashMap<RelPath, FileRecord>],
    me: DeviceId,
    now_ns: i64,
) -> Vec<FileRecord> {
    let paths: BTreeSet<&RelPath> = local.keys().chain(remotes.iter().flat_map(|r| r.keys())).collect();
    let mut out = Vec::new();
    for p in paths {
        let theirs: Vec<&FileRecord> = remotes.iter().filter_map(|r| r.get(p)).collect();
        let merged = theirs.iter().fold(VersionVector::new(), |acc, r| acc.merged(&r.version));
        match local.get(p) {
            Some(l) => {
                let behind = theirs.iter().any(|r| {
                    matches!(
                        r.version.compare(&l.version),
                        ferry_proto::VersionOrdering::Greater | ferry_proto::VersionOrdering::Concurrent
                    ) && !r.same_content(l)
                });
                if behind {
                    out.push(FileRecord {
                        version: l.version.merged(&merged).bumped(me),
                        modified_by: me,
                        ..l.clone()
                    });
                }
            }
            None => {
                if let Some(r) = theirs.iter().find(|r| !r.deleted) {
                    out.push(FileRecord {
                        deleted: true,
                        size: 0,
                        mtime_ns: now_ns,
                        hash: ChunkHash([0; 32]),
                        chunks: vec![],
                        version: merged.bumped(me),
                        modified_by: me,
                        ..(*r).clone()
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::rec;

    #[test]
    fn policies() {
        let a = DeviceId([1; 32]);
        let b = DeviceId([2; 32]);
        let base = VersionVector::new().bumped(a);
        let ours = rec("f", b"ours", base.bumped(a), a, 5);
        let theirs = rec("f", b"theirs", base.bumped(b), b, 9);
        assert_eq!(decide_with_policy(Some(&ours), &theirs, ConflictPolicy::KeepBoth), Action::ConflictRemoteWins);
        assert_eq!(
            decide_with_policy(Some(&ours), &theirs, ConflictPolicy::NewestWins),
            Action::ConflictRemoteWinsArchive
        );
        assert_eq!(decide_with_policy(Some(&ours), &theirs, ConflictPolicy::ThisDeviceWins), Action::OverrideLocal);
        // When we win anyway, nothing changes.
        assert_eq!(decide_with_policy(Some(&theirs), &ours, ConflictPolicy::ThisDeviceWins), Action::ConflictLocalWins);
        let o = override_record(&ours, &theirs, a);
        assert_eq!(o.hash, ours.hash);
        assert_eq!(o.version.compare(&theirs.version), ferry_proto::VersionOrdering::Greater);
        assert_eq!(o.version.compare(&ours.version), ferry_proto::VersionOrdering::Greater);
    }

    #[test]
    fn guard() {
        assert!(!mass_delete_trips(20, 10, 50), "at the minimum");
        assert!(mass_delete_trips(20, 11, 50));
        assert!(!mass_delete_trips(100, 50, 50), "exactly half");
        assert!(mass_delete_trips(100, 51, 50));
        assert!(!mass_delete_trips(100, 51, 60));
    }

    #[test]
    fn override_plan() {
        let a = DeviceId([1; 32]);
        let b = DeviceId([2; 32]);
        let base = VersionVector::new().bumped(a);
        let mut local = HashMap::new();
        let mut remote = HashMap::new();
        let p = |s: &str| RelPath::new(s).unwrap();
        // Same everywhere: nothing.
        local.insert(p("same"), rec("same", b"x", base.clone(), a, 1));
        remote.insert(p("same"), rec("same", b"x", base.clone(), a, 1));
        // Peer changed it: republish ours over theirs.
        local.insert(p("changed"), rec("changed", b"ours", base.clone(), a, 1));
        remote.insert(p("changed"), rec("changed", b"theirs", base.bumped(b), b, 2));
        // Peer lags behind: it will catch up by itself.
        local.insert(p("lag"), rec("lag", b"new", base.bumped(a), a, 3));
        remote.insert(p("lag"), rec("lag", b"old", base.clone(), a, 1));
        // Only the peer has it: delete it there.
        remote.insert(p("extra"), rec("extra", b"e", VersionVector::new().bumped(b), b, 2));
        let plan = plan_override(&local, &[&remote], a, 7);
        assert_eq!(plan.len(), 2, "{plan:?}");
        let changed = plan.iter().find(|r| r.path == p("changed")).unwrap();
        assert_eq!(changed.hash, ChunkHash::of(b"ours"));
        assert_eq!(changed.version.compare(&remote[&p("changed")].version), ferry_proto::VersionOrdering::Greater);
        let extra = plan.iter().find(|r| r.path == p("extra")).unwrap();
        assert!(extra.deleted);
        assert_eq!(extra.version.compare(&remote[&p("extra")].version), ferry_proto::VersionOrdering::Greater);
    }
}
