//! Conversions between what the node stores or observes (`ferry_store`, `ferry_fs` types) and
//! the inputs and outputs of the sans-IO engine (`ferry_engine`). The engine never sees the
//! store's or the scanner's types, and the node makes no sync decision of its own: it converts,
//! calls the engine, and carries out the answer. A leaf module (no `crate::` imports).

use ferry_engine::scan::{Observed, Seen, Update};
use ferry_engine::{Entry, VersionReason as Reason};
use ferry_store::{LocalEntry, LocalMeta, LocalUpdate, VersionReason};

/// A local index entry as the engine sees it (a copy: the record is cloned).
pub(crate) fn entry(e: &LocalEntry) -> Entry {
    into_entry(e.clone())
}

/// [`entry`] without the copy.
pub(crate) fn into_entry(e: LocalEntry) -> Entry {
    Entry { record: e.record, inode: e.meta.inode, local_change: e.meta.local_change }
}

/// The engine's entry as the store keeps it.
pub(crate) fn local_entry(e: Entry) -> LocalEntry {
    LocalEntry { record: e.record, meta: LocalMeta { inode: e.inode, local_change: e.local_change } }
}

/// An engine update as the store commits it.
pub(crate) fn local_update(u: Update) -> LocalUpdate {
    LocalUpdate { entry: local_entry(u.entry), new_seq: u.new_seq }
}

/// The engine's version reason as the store keeps it (one to one).
pub(crate) fn version_reason(r: Reason) -> VersionReason {
    match r {
        Reason::Replaced => VersionReason::Replaced,
        Reason::Deleted => VersionReason::Deleted,
        Reason::Conflict => VersionReason::Conflict,
    }
}

/// A scanner change as the engine sees it (moved, not copied: chunk lists can be long).
pub(crate) fn seen(c: ferry_fs::Change) -> Seen {
    match c {
        ferry_fs::Change::Upsert(o) => Seen::Upsert(Observed {
            path: o.path,
            kind: o.kind,
            size: o.size,
            mtime_ns: o.mtime_ns,
            inode: o.inode,
            executable: o.executable,
            hash: o.hash,
            chunks: o.chunks,
        }),
        ferry_fs::Change::Deleted(p) => Seen::Deleted(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::{ChunkHash, DeviceId, FileKind, FileRecord, RelPath, Seq, VersionVector};

    #[test]
    fn entries_round_trip() {
        let record = FileRecord {
            path: RelPath::new("a/b").unwrap(),
            kind: FileKind::File,
            deleted: false,
            size: 0,
            mtime_ns: 5,
            executable: true,
            version: VersionVector::new().bumped(DeviceId([1; 32])),
            seq: Seq(3),
            hash: ChunkHash::of(b""),
            chunks: vec![],
            modified_by: DeviceId([1; 32]),
        };
        let e = LocalEntry { record, meta: LocalMeta { inode: 9, local_change: true } };
        let back = local_entry(entry(&e));
        assert_eq!((back.record, back.meta), (e.record, e.meta));
        for r in [Reason::Replaced, Reason::Deleted, Reason::Conflict] {
            assert_eq!(format!("{r:?}"), format!("{:?}", version_reason(r)));
        }
    }
}
