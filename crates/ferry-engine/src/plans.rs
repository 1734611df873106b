//! Plans that rewrite many local records at the user's request: revert (a receive-only share
//! drops its local changes and matches the others) and republish (after a refused mass delete,
//! the files the peers deleted come back to them). Override (a send-only share makes the others
//! match it) is [`crate::plan_override`]; rewind is [`crate::history::plan_rewind`].
//!
//! Each returns the updates to commit (and for revert the files to move into the history
//! first); the node carries them out as one writer of the share's index.

use std::collections::{HashMap, HashSet};

use ferry_proto::{ChunkHash, DeviceId, FileKind, FileRecord, RelPath, ShareMode, VersionOrdering, VersionVector};

use crate::{Entry, override_record, scan::Update};

/// A local-only file that revert already moved to the history: a tombstone with no version.
/// Replaces ferry-node `history.rs: is_dropped_change`.
pub fn is_dropped_change(e: &Entry) -> bool {
    e.record.deleted && e.record.version.0.is_empty()
}

/// What a revert does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevertPlan {
    /// Files only this device has: move each into the history (`archive_as`, reason Deleted)
    /// before committing `updates`.
    pub archive: Vec<RelPath>,
    /// Entries to commit with `new_seq: false` (never sent): changed and deleted files get an
    /// empty version, so the next pull applies the peers' versions (archiving ours, like any
    /// apply); the archived files become version-less tombstones ([`is_dropped_change`]).
    pub updates: Vec<Update>,
}

/// Revert of a receive-only share. `local`: every local entry; `remote_live`: the paths some
/// member holds live. Replaces the decisions of ferry-node `history.rs: revert_share` (the
/// `changed` / `only_here` split and the updates built from them); the node archives
/// `archive`, commits `updates` with the version records, then requests a pull.
pub fn plan_revert<'a>(local: impl IntoIterator<Item = &'a Entry>, remote_live: &HashSet<RelPath>) -> RevertPlan {
    let mut plan = RevertPlan::default();
    let mut dropped = Vec::new();
    for e in local.into_iter().filter(|e| e.local_change && !is_dropped_change(e)) {
        if e.record.deleted || remote_live.contains(&e.record.path) {
            let mut e = e.clone();
            e.record.version = VersionVector::new();
            plan.updates.push(Update { entry: e, new_seq: false });
        } else if e.record.kind == FileKind::File {
            plan.archive.push(e.record.path.clone());
            let mut e = e.clone();
            e.record.deleted = true;
            e.record.version = VersionVector::new();
            e.record.hash = ChunkHash([0; 32]);
            e.record.chunks.clear();
            e.record.size = 0;
            e.inode = 0;
            dropped.push(Update { entry: e, new_seq: false });
        }
    }
    // The node commits the changed entries first, then the dropped ones.
    plan.updates.extend(dropped);
    plan
}

/// Republish after a refused mass delete: every live file (or directory) of `local` that a
/// member holds a newer or concurrent tombstone of gets our content under a version that
/// supersedes that tombstone ([`override_record`]), so it comes back there. Nothing for a share
/// that does not send. `remotes` are the members' indexes, in member order.
///
/// Replaces ferry-node `guard.rs: republish`'s decision; commit the updates (`new_seq: true`).
pub fn plan_republish(
    local: &[Entry],
    remotes: &[&HashMap<RelPath, FileRecord>],
    mode: ShareMode,
    me: DeviceId,
) -> Vec<Update> {
    if !mode.sends() {
        return Vec::new();
    }
    let mut updates: Vec<Update> = Vec::new();
    for remote in remotes {
        for e in local.iter().filter(|e| e.record.is_file() || e.record.kind == FileKind::Dir && !e.record.deleted) {
            let Some(r) = remote.get(&e.record.path) else { continue };
            let newer =
                matches!(r.version.compare(&e.record.version), VersionOrdering::Greater | VersionOrdering::Concurrent);
            if r.deleted && newer && !updates.iter().any(|u| u.entry.record.path == e.record.path) {
                let record = override_record(&e.record, r, me);
                updates.push(Update { entry: Entry { record, ..e.clone() }, new_seq: true });
            }
        }
    }
    updates
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::rec;
    use crate::{Action, decide};

    const ME: DeviceId = DeviceId([1; 32]);
    const PEER: DeviceId = DeviceId([2; 32]);

    fn entry(r: FileRecord, local_change: bool) -> Entry {
        Entry { record: r, inode: 5, local_change }
    }

    #[test]
    fn revert_resets_changes_and_drops_files_only_here() {
        let base = VersionVector::new().bumped(PEER);
        let changed = entry(rec("changed", b"mine", base.clone(), ME, 2), true);
        let mut gone = entry(rec("gone", b"", base.clone(), ME, 2), true);
        gone.record.deleted = true;
        let only = entry(rec("only", b"here", VersionVector::new(), ME, 2), true);
        let synced = entry(rec("synced", b"s", base.clone(), PEER, 1), false);
        let remote_live: HashSet<RelPath> = [changed.record.path.clone(), synced.record.path.clone()].into();
        let plan = plan_revert([&changed, &gone, &only, &synced], &remote_live);
        assert_eq!(plan.archive, vec![only.record.path.clone()]);
        let paths: Vec<&str> = plan.updates.iter().map(|u| u.entry.record.path.as_str()).collect();
        assert_eq!(paths, ["changed", "gone", "only"]);
        assert!(plan.updates.iter().all(|u| !u.new_seq && u.entry.record.version.is_empty()));
        assert!(is_dropped_change(&plan.updates[2].entry));
        // After the revert, the peer's version is applied over ours.
        let theirs = rec("changed", b"theirs", base, PEER, 1);
        assert_eq!(decide(Some(&plan.updates[0].entry.record), &theirs), Action::Apply);
        // Nothing left to revert.
        let again: Vec<Entry> = plan.updates.iter().map(|u| u.entry.clone()).filter(is_dropped_change).collect();
        assert!(plan_revert(&again, &remote_live).updates.is_empty());
    }

    #[test]
    fn republish_supersedes_the_peers_tombstones() {
        let base = VersionVector::new().bumped(ME);
        let kept = entry(rec("kept", b"k", base.clone(), ME, 1), false);
        let other = entry(rec("other", b"o", base.clone(), ME, 1), false);
        let mut tomb = kept.record.clone();
        tomb.deleted = true;
        tomb.version = base.bumped(PEER);
        let remote: HashMap<RelPath, FileRecord> =
            [(tomb.path.clone(), tomb.clone()), (other.record.path.clone(), other.record.clone())].into();
        let plan = plan_republish(&[kept.clone(), other], &[&remote, &remote], ShareMode::SendReceive, ME);
        assert_eq!(plan.len(), 1, "once per path");
        assert_eq!(plan[0].entry.record.hash, kept.record.hash);
        assert_eq!(decide(Some(&tomb), &plan[0].entry.record), Action::Apply);
        assert!(plan_republish(&[kept], &[&remote], ShareMode::ReceiveOnly, ME).is_empty());
    }
}
