//! The store's tests, one submodule per module of the crate; this file holds the fixtures they
//! share.

mod database;
mod devices;
mod local;
mod notes;
mod prompts;
mod remote;
mod shares;
mod transfers;
mod versions;
mod walk;

use ferry_proto::{
    ChunkHash, DeviceId, FileKind, FileRecord, NoteId, RelPath, Seq, ShareId, ShareMode, TransferId, VersionVector,
};
use redb::{Database, ReadableDatabase, ReadableTableMetadata};

use super::*;
use crate::schema::{DEVICES, LOCAL, LOCAL_SEQ, REMOTE, REMOTE_STATE, SHARE_STATE, SHARES, VERSIONS, prefix_bounds};

const ME: DeviceId = DeviceId([9; 32]);
const PEER: DeviceId = DeviceId([1; 32]);
const PEER2: DeviceId = DeviceId([2; 32]);
// Adjacent ids: removing S1 must not touch S2, whose keys sort right after S1's.
const S1: ShareId = ShareId([1; 10]);
const S2: ShareId = ShareId([1, 1, 1, 1, 1, 1, 1, 1, 1, 2]);

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("ferry.redb")).unwrap()
}

fn p(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

fn rec(path: &str, seq: u64) -> FileRecord {
    FileRecord {
        path: p(path),
        kind: FileKind::File,
        deleted: false,
        size: 3,
        mtime_ns: 1_000,
        executable: false,
        version: VersionVector::new().bumped(ME),
        seq: Seq(seq),
        hash: ChunkHash::of(path.as_bytes()),
        chunks: vec![],
        modified_by: ME,
    }
}

fn entry(path: &str) -> LocalEntry {
    LocalEntry { record: rec(path, 0), meta: LocalMeta { inode: 7, local_change: false } }
}

fn update(path: &str) -> LocalUpdate {
    LocalUpdate { entry: entry(path), new_seq: true }
}

fn share(id: ShareId) -> ShareRecord {
    ShareRecord {
        id,
        label: format!("share {id}"),
        path: "/tmp/x".into(),
        mode: ShareMode::SendReceive,
        devices: vec![PEER],
        paused: false,
    }
}

fn version(share: ShareId, path: &str, id: u64) -> VersionRecord {
    VersionRecord {
        share,
        path: p(path),
        id,
        archived_at_ms: (id / 1_000_000) as i64,
        size: 3,
        hash: ChunkHash::of(b"old"),
        mtime_ns: 5,
        modified_by: PEER,
        replaced_by: ME,
        archive_path: format!(".ferry/versions/{path}~{id}"),
        reason: VersionReason::Replaced,
    }
}

fn device(id: DeviceId) -> DeviceRecord {
    DeviceRecord {
        id,
        name: "laptop".into(),
        owner: "ann".into(),
        paired: true,
        addresses: vec!["10.0.0.2:22000".into()],
        static_addresses: vec![],
        last_seen_ms: Some(42),
    }
}

fn paths(records: &[FileRecord]) -> Vec<(String, u64)> {
    records.iter().map(|r| (r.path.to_string(), r.seq.0)).collect()
}

fn entry_paths(entries: &[LocalEntry]) -> Vec<String> {
    entries.iter().map(|e| e.record.path.to_string()).collect()
}

/// Number of keys starting with `prefix` in every share-keyed table, summed.
fn keys_with_prefix(store: &Store, prefix: &[u8]) -> usize {
    let txn = store.db.begin_read().unwrap();
    let bounds = prefix_bounds(prefix);
    let mut n = 0;
    for table in [SHARES, SHARE_STATE, LOCAL, LOCAL_SEQ, REMOTE, REMOTE_STATE, VERSIONS] {
        n += txn.open_table(table).unwrap().range::<&[u8]>(schema::as_slices(&bounds)).unwrap().count();
    }
    n
}

fn note(id: u8, peer: DeviceId, outgoing: bool) -> NoteRecord {
    NoteRecord {
        id: NoteId([id; 16]),
        peer,
        outgoing,
        sent_at_ms: id as i64,
        text: format!("note {id}"),
        state: if outgoing { NoteState::Queued } else { NoteState::Unread },
        receipt_pending: false,
        order: 0,
    }
}
