//! An observed scan turned into local records: which observations are new versions (bumped by
//! this device, or kept as unsent local changes in a receive-only share), which only refresh
//! metadata, which vanished files become tombstones; then, per update, whether the replaced
//! content is kept as a version, how the change counts in the summary, and what happens to the
//! file's snapshot link (the hard link that lets its content become a version later).
//!
//! Replaces, in ferry-node `share.rs: Worker::scan`, the loop over `outcome.changes` (the
//! `Change::Upsert` / `Change::Deleted` arms), and in `history.rs: on_scan` every decision (the
//! node keeps the snapshot IO and the version ids: `take_snapshot` may find nothing to keep).

use ferry_proto::{ChunkHash, ChunkInfo, DeviceId, FileKind, FileRecord, RelPath, Seq, ShareMode};

use crate::{Entry, VersionReason};

/// What the scanner saw at a path (the fields of `ferry_fs::Observed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub path: RelPath,
    pub kind: FileKind,
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
    pub executable: bool,
    pub hash: ChunkHash,
    pub chunks: Vec<ChunkInfo>,
}

/// One change a scan found (`ferry_fs::Change`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Upsert(Observed),
    Deleted(RelPath),
}

/// One entry to commit (the node's `ferry_store::LocalUpdate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub entry: Entry,
    /// A change peers must hear about (next seq); false: a metadata-only refresh.
    pub new_seq: bool,
}

/// The update for one scan change, given our entry at its path (`existing`), the share's mode
/// and this device. None: nothing to record (a deletion of something not live here).
///
/// Same content (kind, hash, x bit) as a live entry: only size, mtime and inode are refreshed.
/// Otherwise a new version: bumped by `me` when the share sends, else the base version kept and
/// the entry marked a local change (receive-only: never sent, reverted on request).
pub fn update_for(existing: Option<&Entry>, seen: &Seen, mode: ShareMode, me: DeviceId) -> Option<Update> {
    match seen {
        Seen::Upsert(o) => {
            if let Some(e) = existing.filter(|e| {
                !e.record.deleted
                    && e.record.kind == o.kind
                    && e.record.hash == o.hash
                    && e.record.executable == o.executable
            }) {
                let mut e = e.clone();
                e.record.size = o.size;
                e.record.mtime_ns = o.mtime_ns;
                e.inode = o.inode;
                return Some(Update { entry: e, new_seq: false });
            }
            let base = existing.map(|e| e.record.version.clone()).unwrap_or_default();
            let (version, local_change) = if mode.sends() { (base.bumped(me), false) } else { (base, true) };
            let record = FileRecord {
                path: o.path.clone(),
                kind: o.kind.clone(),
                deleted: false,
                size: o.size,
                mtime_ns: o.mtime_ns,
                executable: o.executable,
                version,
                seq: Seq(0),
                hash: o.hash,
                chunks: o.chunks.clone(),
                modified_by: me,
            };
            Some(Update { entry: Entry { record, inode: o.inode, local_change }, new_seq: true })
        }
        Seen::Deleted(_) => {
            let e = existing.filter(|e| !e.record.deleted)?;
            let (version, local_change) =
                if mode.sends() { (e.record.version.bumped(me), false) } else { (e.record.version.clone(), true) };
            let record = FileRecord {
                deleted: true,
                size: 0,
                hash: ChunkHash([0; 32]),
                chunks: vec![],
                version,
                modified_by: me,
                ..e.record.clone()
            };
            Some(Update { entry: Entry { record, inode: 0, local_change }, new_seq: true })
        }
    }
}

/// The update for a file the scan saw where this device's own apply of a peer's record was cut
/// short (a crash after the rename, before the index commit, on a disk that lost the content:
/// neither the old nor the new content is there). It is not a new version of this device: the
/// content is recorded as it is, under the version (and seq) the index had, none for a new
/// path, and not sent (`new_seq` false). The peer's record then still wins, the pull fetches
/// it again and keeps what is on disk as a version as it replaces it: no local edit, no
/// conflict copy.
pub fn unfinished_apply(mut u: Update, existing: Option<&Entry>) -> Update {
    u.entry.record.version = existing.map(|e| e.record.version.clone()).unwrap_or_default();
    u.entry.record.seq = existing.map_or(Seq(0), |e| e.record.seq);
    if let Some(e) = existing {
        u.entry.record.modified_by = e.record.modified_by;
    }
    u.new_seq = false;
    u
}

/// [`update_for`] over a whole scan, in order. `lookup` reads our entry at a path (before the
/// scan's commit).
pub fn updates(
    changes: &[Seen],
    lookup: &dyn Fn(&RelPath) -> Option<Entry>,
    mode: ShareMode,
    me: DeviceId,
) -> Vec<Update> {
    changes
        .iter()
        .filter_map(|c| {
            let path = match c {
                Seen::Upsert(o) => &o.path,
                Seen::Deleted(p) => p,
            };
            update_for(lookup(path).as_ref(), c, mode, me)
        })
        .collect()
}

/// Previous content to keep as a version (if its snapshot is still there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepVersion {
    pub path: RelPath,
    pub size: u64,
    pub hash: ChunkHash,
    pub mtime_ns: i64,
    /// Who wrote the kept content.
    pub modified_by: DeviceId,
    /// Who replaced it.
    pub replaced_by: DeviceId,
    pub reason: VersionReason,
    /// The indexed inode, size and mtime the snapshot must still match (`ferry_fs::SnapshotOf`).
    pub inode: u64,
}

/// What happens to a path's snapshot link after its update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshot {
    /// Leave it as it is.
    Keep,
    /// Link the (new) file, so its content can become a version later.
    Link,
    /// Drop it: the path is deleted.
    Drop,
}

/// How a change counts in the summary (files and links; directories are not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Add,
    Change,
    Delete,
}

/// The consequences of one [`Update`], in the order the node carries them out: keep the old
/// content (snapshot taken before anything else), then the snapshot link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    pub keep: Option<KeepVersion>,
    pub counted: Option<Counted>,
    pub snapshot: Snapshot,
}

/// The consequences of `u`, whose path held `old` before the scan. Replaces the body of
/// ferry-node `history.rs: on_scan`'s loop: the node calls it per update, takes the snapshot
/// for `keep` (a version record when `take_snapshot` finds it), links or drops per `snapshot`,
/// and adds `counted` to its `LocalCounts`.
pub fn effect(u: &Update, old: Option<&Entry>, me: DeviceId) -> Effect {
    let new = &u.entry.record;
    let prev = old.filter(|e| !e.record.deleted);
    let counted = (u.new_seq && new.kind != FileKind::Dir).then_some(match (prev, new.deleted) {
        (_, true) => Counted::Delete,
        (None, false) => Counted::Add,
        (Some(_), false) => Counted::Change,
    });
    let keep = prev.filter(|p| p.record.kind == FileKind::File && u.new_seq).and_then(|p| {
        let changed = new.deleted || new.kind != FileKind::File || new.hash != p.record.hash;
        changed.then(|| KeepVersion {
            path: new.path.clone(),
            size: p.record.size,
            hash: p.record.hash,
            mtime_ns: p.record.mtime_ns,
            modified_by: p.record.modified_by,
            replaced_by: me,
            reason: if new.deleted { VersionReason::Deleted } else { VersionReason::Replaced },
            inode: p.inode,
        })
    });
    let snapshot = if !new.deleted && new.kind == FileKind::File {
        // A new inode (or a new file): link it so its content can become a version later.
        let relink = u.new_seq || prev.is_none_or(|p| p.inode != u.entry.inode);
        if relink { Snapshot::Link } else { Snapshot::Keep }
    } else if new.deleted {
        Snapshot::Drop
    } else {
        Snapshot::Keep
    };
    Effect { keep, counted, snapshot }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::rec;
    use ferry_proto::VersionVector;

    const ME: DeviceId = DeviceId([1; 32]);
    const PEER: DeviceId = DeviceId([2; 32]);

    fn observed(path: &str, content: &[u8], inode: u64) -> Observed {
        let r = rec(path, content, VersionVector::new(), ME, 50);
        Observed {
            path: r.path,
            kind: FileKind::File,
            size: r.size,
            mtime_ns: 50,
            inode,
            executable: false,
            hash: r.hash,
            chunks: r.chunks,
        }
    }

    #[test]
    fn scans_bump_or_keep_local_and_tombstone() {
        let old = Entry {
            record: rec("f", b"old", VersionVector::new().bumped(PEER), PEER, 1),
            inode: 3,
            local_change: false,
        };
        // New content: a new version by this device.
        let u = update_for(Some(&old), &Seen::Upsert(observed("f", b"new", 4)), ShareMode::SendReceive, ME).unwrap();
        assert!(u.new_seq && !u.entry.local_change);
        assert_eq!(u.entry.record.version, old.record.version.bumped(ME));
        assert_eq!((u.entry.record.modified_by, u.entry.inode), (ME, 4));
        // Receive-only: same version, marked local.
        let u = update_for(Some(&old), &Seen::Upsert(observed("f", b"new", 4)), ShareMode::ReceiveOnly, ME).unwrap();
        assert!(u.entry.local_change);
        assert_eq!(u.entry.record.version, old.record.version);
        // Same content: metadata only, the writer kept.
        let u = update_for(Some(&old), &Seen::Upsert(observed("f", b"old", 9)), ShareMode::SendReceive, ME).unwrap();
        assert!(!u.new_seq);
        assert_eq!((u.entry.record.modified_by, u.entry.inode, u.entry.record.mtime_ns), (PEER, 9, 50));
        // Deleted: a tombstone; a second deletion is nothing.
        let u = update_for(Some(&old), &Seen::Deleted(old.record.path.clone()), ShareMode::SendOnly, ME).unwrap();
        assert!(u.entry.record.deleted && u.entry.record.chunks.is_empty());
        assert_eq!(u.entry.record.version, old.record.version.bumped(ME));
        assert!(update_for(Some(&u.entry), &Seen::Deleted(old.record.path.clone()), ShareMode::SendOnly, ME).is_none());
        assert!(update_for(None, &Seen::Deleted(old.record.path.clone()), ShareMode::SendOnly, ME).is_none());
        let lookup = |p: &RelPath| (p == &old.record.path).then(|| old.clone());
        let all = updates(
            &[Seen::Upsert(observed("g", b"g", 5)), Seen::Deleted(old.record.path.clone())],
            &lookup,
            ShareMode::SendReceive,
            ME,
        );
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn an_unfinished_apply_is_no_new_version() {
        let old = Entry {
            record: rec("f", b"old", VersionVector::new().bumped(PEER), PEER, 1),
            inode: 3,
            local_change: false,
        };
        let mut old = old;
        old.record.seq = Seq(7);
        // What the peer was sending us: a version after the one we hold.
        let theirs = old.record.version.bumped(PEER);
        let seen = Seen::Upsert(observed("f", b"torn", 4));
        let u = unfinished_apply(update_for(Some(&old), &seen, ShareMode::SendReceive, ME).unwrap(), Some(&old));
        assert!(!u.new_seq, "never sent as a change of ours");
        assert_eq!(
            (u.entry.record.version.clone(), u.entry.record.seq, u.entry.record.modified_by),
            (old.record.version.clone(), Seq(7), PEER)
        );
        assert_eq!((u.entry.record.hash, u.entry.inode), (observed("f", b"torn", 4).hash, 4), "the disk as it is");
        assert_eq!(
            u.entry.record.version.compare(&theirs),
            ferry_proto::VersionOrdering::Lesser,
            "the peer's record still wins"
        );
        // A new path: no version at all, no seq.
        let u = unfinished_apply(update_for(None, &seen, ShareMode::SendReceive, ME).unwrap(), None);
        assert!(!u.new_seq && u.entry.record.version.is_empty() && u.entry.record.seq == Seq(0));
    }

    #[test]
    fn effects_keep_replaced_content() {
        let old = Entry {
            record: rec("f", b"old", VersionVector::new().bumped(PEER), PEER, 1),
            inode: 3,
            local_change: false,
        };
        let edit = update_for(Some(&old), &Seen::Upsert(observed("f", b"new", 4)), ShareMode::SendReceive, ME).unwrap();
        let e = effect(&edit, Some(&old), ME);
        let keep = e.keep.unwrap();
        assert_eq!(
            (keep.hash, keep.modified_by, keep.replaced_by, keep.reason),
            (old.record.hash, PEER, ME, VersionReason::Replaced)
        );
        assert_eq!((e.counted, e.snapshot), (Some(Counted::Change), Snapshot::Link));
        let del = update_for(Some(&old), &Seen::Deleted(old.record.path.clone()), ShareMode::SendReceive, ME).unwrap();
        let e = effect(&del, Some(&old), ME);
        assert_eq!(e.keep.unwrap().reason, VersionReason::Deleted);
        assert_eq!((e.counted, e.snapshot), (Some(Counted::Delete), Snapshot::Drop));
        let add = update_for(None, &Seen::Upsert(observed("g", b"g", 5)), ShareMode::SendReceive, ME).unwrap();
        assert_eq!(
            effect(&add, None, ME),
            Effect { keep: None, counted: Some(Counted::Add), snapshot: Snapshot::Link }
        );
        // A metadata refresh: nothing kept or counted; relinked only for a new inode.
        let touch =
            update_for(Some(&old), &Seen::Upsert(observed("f", b"old", 3)), ShareMode::SendReceive, ME).unwrap();
        assert_eq!(effect(&touch, Some(&old), ME), Effect { keep: None, counted: None, snapshot: Snapshot::Keep });
        let moved =
            update_for(Some(&old), &Seen::Upsert(observed("f", b"old", 8)), ShareMode::SendReceive, ME).unwrap();
        assert_eq!(effect(&moved, Some(&old), ME).snapshot, Snapshot::Link);
    }
}
