//! Ferry's sync decisions as pure functions: given what this device has and what a peer
//! announced, what should happen to a path (nothing, take the peer's version, merge versions,
//! or settle a conflict), which side wins a conflict, and where each chunk of a wanted file can
//! come from. No IO and no clock: callers pass everything in (`now_ms` where time matters), so
//! the same rules run in the node and in the seeded multi-device simulation in `tests/`.
//!
//! The modules, each the pure half of one node activity (the node does the IO around them):
//! - [`pull`]: which remote record to move to per path, from whom, what to reuse, and what
//!   becomes of our content (conflict copy, version, nothing);
//! - [`scan`]: an observed scan turned into local records (version bumps, tombstones) and the
//!   replaced content to keep as versions;
//! - [`policy`]: the conflict policies, the mass-delete threshold, the override plan;
//! - [`guard`]: the mass-delete guard as a state machine (burst window, the user's answer);
//! - [`plans`]: revert and republish plans (override is [`plan_override`]);
//! - [`history`]: retention, "content at time T", rewind plans;
//! - [`send`]: the one-shot transfer state machine;
//! - [`compact`]: chunk-list references of index updates.
//!
//! Conflict rules (the same on every device, so all converge without talking it over):
//! - a modification beats a deletion (data is never lost to a concurrent delete);
//! - between two modifications the later mtime wins, ties go to the greater device id;
//! - the losing content is kept as `NAME.sync-conflict-...` by the device that holds it.

pub mod compact;
pub mod guard;
pub mod history;
pub mod plans;
pub mod policy;
pub mod pull;
pub mod scan;
pub mod send;

use std::collections::HashMap;

pub use policy::{decide_with_policy, mass_delete_trips, override_record, plan_override};

use ferry_proto::{ChunkHash, FileRecord, RelPath, VersionOrdering};

/// A local index entry as the engine sees it: the node's `ferry_store::LocalEntry` flattened
/// (`Entry { record: e.record, inode: e.meta.inode, local_change: e.meta.local_change }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub record: FileRecord,
    /// The file's inode when indexed (0: none, e.g. a tombstone).
    pub inode: u64,
    /// A change made here in a receive-only share: never sent to peers.
    pub local_change: bool,
}

/// Why content became a version (the node's `ferry_store::VersionReason`, one to one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionReason {
    /// Newer content took its place.
    Replaced,
    /// The file was deleted.
    Deleted,
    /// It lost a conflict.
    Conflict,
}

/// What to do with one path after comparing the local record with a remote one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Local is the same or newer.
    Nothing,
    /// The remote version supersedes ours: make the disk match it.
    Apply,
    /// Concurrent versions with identical content: adopt the merged version, disk untouched.
    MergeVersion,
    /// Concurrent versions with different content, remote wins: keep our content as a
    /// conflict copy, then apply the remote version.
    ConflictRemoteWins,
    /// Concurrent versions with different content, local wins: the other side keeps the copy.
    ConflictLocalWins,
    /// As `ConflictRemoteWins`, but our losing content goes to the version history instead of
    /// a conflict copy (policy `newest-wins`).
    ConflictRemoteWinsArchive,
    /// The remote edit would win, but this device's policy is to win: keep our content under a
    /// version that has seen both (policy `this-device-wins`).
    OverrideLocal,
}

/// Decide what `remote` means for this device, whose record of the same path is `local`.
pub fn decide(local: Option<&FileRecord>, remote: &FileRecord) -> Action {
    let Some(local) = local else {
        // Nothing here yet: any live remote entry is new to us; a tombstone is recorded so
        // that we forward it, and costs no disk work.
        return Action::Apply;
    };
    match remote.version.compare(&local.version) {
        VersionOrdering::Equal | VersionOrdering::Lesser => Action::Nothing,
        VersionOrdering::Greater => Action::Apply,
        VersionOrdering::Concurrent => {
            if local.same_content(remote) {
                Action::MergeVersion
            } else if local.deleted {
                // Our delete loses to their edit; no conflict copy needed for a deletion.
                Action::Apply
            } else if remote_wins(local, remote) {
                Action::ConflictRemoteWins
            } else {
                Action::ConflictLocalWins
            }
        }
    }
}

/// True when `remote` wins a conflict against `local` (both concurrent, different content).
pub fn remote_wins(local: &FileRecord, remote: &FileRecord) -> bool {
    match (local.deleted, remote.deleted) {
        (true, false) => return true,
        (false, true) => return false,
        _ => {}
    }
    (remote.mtime_ns, remote.modified_by) > (local.mtime_ns, local.modified_by)
}

/// Where one chunk of a wanted file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkSource {
    /// Already on this device: read `len` bytes at `offset` of the local file `path`.
    Local { path: RelPath, offset: u64 },
    /// Must be fetched from a peer.
    Remote,
}

/// For each chunk of `target`, where to get it, preferring content this device already has
/// (which is how renames and moved content cost no transfer). `local_chunks` maps a chunk hash
/// to one place it is known to live locally.
pub fn plan_chunks(target: &FileRecord, local_chunks: &HashMap<ChunkHash, (RelPath, u64)>) -> Vec<ChunkSource> {
    target
        .chunks
        .iter()
        .map(|c| match local_chunks.get(&c.hash) {
            Some((path, offset)) => ChunkSource::Local { path: path.clone(), offset: *offset },
            None => ChunkSource::Remote,
        })
        .collect()
}

/// Order in which to apply changes: directories outermost first so files have a parent,
/// then files, then deletions innermost first so directories are empty when removed.
pub fn apply_order(a: &FileRecord, b: &FileRecord) -> std::cmp::Ordering {
    fn rank(r: &FileRecord) -> u8 {
        match (r.deleted, &r.kind) {
            (false, ferry_proto::FileKind::Dir) => 0,
            (false, _) => 1,
            (true, _) => 2,
        }
    }
    rank(a).cmp(&rank(b)).then_with(|| if a.deleted && b.deleted { b.path.cmp(&a.path) } else { a.path.cmp(&b.path) })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ferry_proto::{ChunkInfo, DeviceId, FileKind, Seq, VersionVector};

    /// A live file record with `content` (one chunk); shared with the other modules' tests.
    pub(crate) fn rec(path: &str, content: &[u8], v: VersionVector, by: DeviceId, mtime: i64) -> FileRecord {
        FileRecord {
            path: RelPath::new(path).unwrap(),
            kind: FileKind::File,
            deleted: false,
            size: content.len() as u64,
            mtime_ns: mtime,
            executable: false,
            version: v,
            seq: Seq(0),
            hash: ChunkHash::of(content),
            chunks: vec![ChunkInfo { hash: ChunkHash::of(content), len: content.len() as u32 }],
            modified_by: by,
        }
    }

    #[test]
    fn decisions() {
        let a = DeviceId([1; 32]);
        let b = DeviceId([2; 32]);
        let base = VersionVector::new().bumped(a);
        let l = rec("f", b"x", base.clone(), a, 1);
        assert_eq!(decide(None, &l), Action::Apply);
        assert_eq!(decide(Some(&l), &l), Action::Nothing);
        let newer = rec("f", b"y", base.bumped(b), b, 2);
        assert_eq!(decide(Some(&l), &newer), Action::Apply);
        assert_eq!(decide(Some(&newer), &l), Action::Nothing);
        let ours = rec("f", b"ours", base.bumped(a), a, 5);
        let theirs = rec("f", b"theirs", base.bumped(b), b, 9);
        assert_eq!(decide(Some(&ours), &theirs), Action::ConflictRemoteWins);
        assert_eq!(decide(Some(&theirs), &ours), Action::ConflictLocalWins);
        let same = rec("f", b"ours", base.bumped(b), b, 9);
        assert_eq!(decide(Some(&ours), &same), Action::MergeVersion);
    }

    #[test]
    fn edit_beats_concurrent_delete() {
        let a = DeviceId([1; 32]);
        let b = DeviceId([2; 32]);
        let base = VersionVector::new().bumped(a);
        let mut del = rec("f", b"", base.bumped(a), a, 100);
        del.deleted = true;
        let edit = rec("f", b"new", base.bumped(b), b, 1);
        assert_eq!(decide(Some(&del), &edit), Action::Apply);
        assert_eq!(decide(Some(&edit), &del), Action::ConflictLocalWins);
    }

    #[test]
    fn mtime_tie_goes_to_greater_device() {
        let a = DeviceId([1; 32]);
        let b = DeviceId([2; 32]);
        let x = rec("f", b"x", VersionVector::new().bumped(a), a, 7);
        let y = rec("f", b"y", VersionVector::new().bumped(b), b, 7);
        assert!(remote_wins(&x, &y));
        assert!(!remote_wins(&y, &x));
    }

    #[test]
    fn plan_prefers_local_chunks() {
        let a = DeviceId([1; 32]);
        let r = rec("f", b"abc", VersionVector::new().bumped(a), a, 1);
        let mut local = HashMap::new();
        assert_eq!(plan_chunks(&r, &local), vec![ChunkSource::Remote]);
        local.insert(r.chunks[0].hash, (RelPath::new("old").unwrap(), 0));
        assert_eq!(plan_chunks(&r, &local), vec![ChunkSource::Local { path: RelPath::new("old").unwrap(), offset: 0 }]);
    }
}
