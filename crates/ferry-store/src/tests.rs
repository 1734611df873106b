use ferry_proto::{ChunkHash, FileKind, ShareMode, VersionVector};
use redb::ReadableTableMetadata;

use super::*;

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

#[test]
fn store_is_send_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Store>();
    assert_send_sync::<StoreError>();
}

#[test]
fn reopen_persists_data() {
    let dir = tempfile::tempdir().unwrap();
    let epoch;
    {
        let store = open(&dir);
        store.set_meta("device_name", b"laptop").unwrap();
        store.put_device(&device(PEER)).unwrap();
        store.put_share(&share(S1)).unwrap();
        epoch = store.share_state(&S1).unwrap().epoch;
        assert_ne!(epoch, 0);
        assert_eq!(store.commit_local(&S1, &[update("a"), update("b")], &[version(S1, "a", 5)]).unwrap(), Seq(2));
        store.put_remote(&S1, &PEER, 77, &[rec("r", 4)]).unwrap();
        assert_eq!(store.next_prompt_id().unwrap(), 1);
    }
    let store = open(&dir);
    assert_eq!(store.get_meta("device_name").unwrap().as_deref(), Some(&b"laptop"[..]));
    assert_eq!(store.get_meta("missing").unwrap(), None);
    assert_eq!(store.device(&PEER).unwrap(), Some(device(PEER)));
    assert_eq!(store.devices().unwrap(), vec![device(PEER)]);
    assert_eq!(store.share(&S1).unwrap(), Some(share(S1)));
    assert_eq!(store.share_state(&S1).unwrap(), ShareState { epoch, max_seq: 2 });
    assert_eq!(paths(&store.local_since(&S1, Seq(0), 10).unwrap()), [("a".into(), 1), ("b".into(), 2)]);
    assert_eq!(store.versions(&S1, &p("a")).unwrap(), vec![version(S1, "a", 5)]);
    assert_eq!(store.remote_state(&S1, &PEER).unwrap(), RemoteState { epoch: 77, max_seq: 4 });
    assert_eq!(store.remote_files(&S1, &PEER).unwrap(), vec![rec("r", 4)]);
    assert_eq!(store.next_prompt_id().unwrap(), 2, "prompt ids continue after reopen");
}

#[test]
fn put_share_keeps_state_of_existing_share() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert!(matches!(store.share_state(&S1), Err(StoreError::NotFound(_))));
    store.put_share(&share(S1)).unwrap();
    store.commit_local(&S1, &[update("a")], &[]).unwrap();
    let state = store.share_state(&S1).unwrap();
    let mut renamed = share(S1);
    renamed.label = "renamed".into();
    store.put_share(&renamed).unwrap();
    assert_eq!(store.share_state(&S1).unwrap(), state);
    assert_eq!(store.shares().unwrap(), vec![renamed]);
    // A share removed and added again starts a new index with a new epoch.
    store.remove_share(&S1).unwrap();
    store.put_share(&share(S1)).unwrap();
    let fresh = store.share_state(&S1).unwrap();
    assert_eq!(fresh.max_seq, 0);
    assert_ne!(fresh.epoch, state.epoch);
}

#[test]
fn commit_local_assigns_seqs_and_local_since_follows_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.put_share(&share(S1)).unwrap();
    assert_eq!(store.commit_local(&S1, &[update("a"), update("b"), update("c")], &[]).unwrap(), Seq(3));
    assert_eq!(store.local_file(&S1, &p("b")).unwrap().unwrap().record.seq, Seq(2));

    // Re-committing "a" moves it to the end of the seq index; it is not listed twice.
    assert_eq!(store.commit_local(&S1, &[update("a")], &[]).unwrap(), Seq(4));
    let all = store.local_since(&S1, Seq(0), 100).unwrap();
    assert_eq!(paths(&all), [("b".into(), 2), ("c".into(), 3), ("a".into(), 4)]);
    assert_eq!(paths(&store.local_since(&S1, Seq(2), 100).unwrap()), [("c".into(), 3), ("a".into(), 4)]);
    assert_eq!(paths(&store.local_since(&S1, Seq(0), 1).unwrap()), [("b".into(), 2)]);
    assert!(store.local_since(&S1, Seq(4), 100).unwrap().is_empty());
    assert!(store.local_since(&S1, Seq(u64::MAX), 100).unwrap().is_empty());

    // A local change in a receive-only share takes a seq but is never listed.
    let mut local = update("d");
    local.entry.meta.local_change = true;
    assert_eq!(store.commit_local(&S1, &[local, update("e")], &[]).unwrap(), Seq(6));
    assert_eq!(paths(&store.local_since(&S1, Seq(3), 100).unwrap()), [("a".into(), 4), ("e".into(), 6)]);
    // The limit counts returned records, not skipped ones.
    assert_eq!(paths(&store.local_since(&S1, Seq(4), 1).unwrap()), [("e".into(), 6)]);

    // A metadata-only refresh keeps the seq and the index position.
    let mut refresh = LocalUpdate { entry: store.local_file(&S1, &p("b")).unwrap().unwrap(), new_seq: false };
    refresh.entry.meta.inode = 99;
    assert_eq!(store.commit_local(&S1, &[refresh], &[]).unwrap(), Seq(6));
    assert_eq!(store.local_file(&S1, &p("b")).unwrap().unwrap().meta.inode, 99);
    assert_eq!(store.local_file(&S1, &p("b")).unwrap().unwrap().record.seq, Seq(2));
    assert_eq!(paths(&store.local_since(&S1, Seq(0), 100).unwrap())[0], ("b".into(), 2));

    // Exactly one seq-index key per entry.
    let txn = store.db.begin_read().unwrap();
    assert_eq!(txn.open_table(LOCAL_SEQ).unwrap().len().unwrap(), 5);
    assert_eq!(entry_paths(&store.local_files(&S1).unwrap()), ["a", "b", "c", "d", "e"]);
}

#[test]
fn local_files_at_reads_many_paths_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.put_share(&share(S1)).unwrap();
    store.commit_local(&S1, &[update("a"), update("c")], &[]).unwrap();
    let g = store.generation();
    let got = store.local_files_at(&S1, &[p("c"), p("b"), p("a")]).unwrap();
    assert_eq!(store.generation(), g, "reads leave the generation alone");
    let paths: Vec<Option<String>> = got.iter().map(|e| e.as_ref().map(|e| e.record.path.to_string())).collect();
    assert_eq!(paths, vec![Some("c".to_string()), None, Some("a".to_string())]);
    assert!(store.local_files_at(&S2, &[p("a")]).unwrap()[0].is_none());
    store.commit_local(&S1, &[update("b")], &[]).unwrap();
    assert!(store.generation() > g, "a write moves it");
}

#[test]
fn commit_local_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert!(matches!(store.commit_local(&S1, &[update("a")], &[]), Err(StoreError::NotFound(_))));
    store.put_share(&share(S1)).unwrap();
    store.commit_local(&S1, &[update("a")], &[]).unwrap();
    // "b" claims seq 1, which is "a"'s: refused, and "c" before it is not written either.
    let mut clash = update("b");
    clash.new_seq = false;
    clash.entry.record.seq = Seq(1);
    assert!(matches!(store.commit_local(&S1, &[update("c"), clash], &[]), Err(StoreError::Invalid(_))));
    assert_eq!(store.local_file(&S1, &p("c")).unwrap(), None);
    assert_eq!(store.share_state(&S1).unwrap().max_seq, 1);
    // A version of another share is refused.
    assert!(store.commit_local(&S1, &[update("c")], &[version(S2, "c", 1)]).is_err());
    assert_eq!(store.local_file(&S1, &p("c")).unwrap(), None);
    assert_eq!(paths(&store.local_since(&S1, Seq(0), 10).unwrap()), [("a".into(), 1)]);
}

#[test]
fn local_files_under_matches_whole_components() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.put_share(&share(S1)).unwrap();
    store.put_share(&share(S2)).unwrap();
    let names = ["a", "a/b", "a/b.txt", "a/b/c", "a/b/d/e", "a/bb", "a/bb/c", "ab", "b"];
    store.commit_local(&S1, &names.map(update), &[]).unwrap();
    store.commit_local(&S2, &[update("a/b/x")], &[]).unwrap();
    assert_eq!(entry_paths(&store.local_files_under(&S1, &p("a/b")).unwrap()), ["a/b", "a/b/c", "a/b/d/e"]);
    assert_eq!(entry_paths(&store.local_files_under(&S1, &p("a/bb")).unwrap()), ["a/bb", "a/bb/c"]);
    assert_eq!(entry_paths(&store.local_files_under(&S1, &p("ab")).unwrap()), ["ab"]);
    assert_eq!(entry_paths(&store.local_files_under(&S1, &p("zz")).unwrap()), Vec::<String>::new());
    // Without the prefix itself present, only what is below it.
    assert_eq!(entry_paths(&store.local_files_under(&S2, &p("a")).unwrap()), ["a/b/x"]);
    assert_eq!(entry_paths(&store.local_files(&S1).unwrap()), names);
}

#[test]
fn put_remote_tracks_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert_eq!(store.remote_state(&S1, &PEER).unwrap(), RemoteState::default());
    store.put_remote(&S1, &PEER, 10, &[rec("x", 3), rec("y", 5)]).unwrap();
    store.put_remote(&S1, &PEER2, 20, &[rec("x", 1)]).unwrap();
    store.put_remote(&S1, &PEER, 10, &[rec("z", 4), rec("x", 6)]).unwrap();
    assert_eq!(store.remote_state(&S1, &PEER).unwrap(), RemoteState { epoch: 10, max_seq: 6 });
    assert_eq!(paths(&store.remote_files(&S1, &PEER).unwrap()), [("x".into(), 6), ("y".into(), 5), ("z".into(), 4)]);
    // An older batch of the same epoch does not lower max_seq.
    store.put_remote(&S1, &PEER, 10, &[rec("w", 2)]).unwrap();
    assert_eq!(store.remote_state(&S1, &PEER).unwrap().max_seq, 6);

    // A new epoch: the peer's index started over, so everything it told us before is gone.
    store.put_remote(&S1, &PEER, 11, &[rec("n", 1)]).unwrap();
    assert_eq!(paths(&store.remote_files(&S1, &PEER).unwrap()), [("n".into(), 1)]);
    assert_eq!(store.remote_state(&S1, &PEER).unwrap(), RemoteState { epoch: 11, max_seq: 1 });
    assert_eq!(store.remote_file(&S1, &PEER, &p("x")).unwrap(), None);
    assert_eq!(store.remote_file(&S1, &PEER, &p("n")).unwrap(), Some(rec("n", 1)));
    // The other device is untouched.
    assert_eq!(store.remote_files(&S1, &PEER2).unwrap(), vec![rec("x", 1)]);
    assert_eq!(store.remote_state(&S1, &PEER2).unwrap(), RemoteState { epoch: 20, max_seq: 1 });

    // Many paths in one read, local and remote side by side.
    assert_eq!(store.remote_files_at(&S1, &PEER, &[p("x"), p("n")]).unwrap(), vec![None, Some(rec("n", 1))]);
    store.put_share(&share(S1)).unwrap();
    store.commit_local(&S1, &[update("n"), update("m")], &[]).unwrap();
    let both = store.local_and_remote_at(&S1, &PEER, &[p("n"), p("m"), p("q")]).unwrap();
    let seen: Vec<(Option<String>, Option<String>)> = both
        .iter()
        .map(|(l, r)| (l.as_ref().map(|l| l.path.to_string()), r.as_ref().map(|r| r.path.to_string())))
        .collect();
    assert_eq!(seen, [(Some("n".into()), Some("n".into())), (Some("m".into()), None), (None, None)]);

    store.clear_remote(&S1, &PEER).unwrap();
    assert!(store.remote_files(&S1, &PEER).unwrap().is_empty());
    assert_eq!(store.remote_state(&S1, &PEER).unwrap(), RemoteState::default());
    assert_eq!(store.remote_files(&S1, &PEER2).unwrap().len(), 1);
}

#[test]
fn versions_are_newest_first_and_per_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.put_share(&share(S1)).unwrap();
    store.put_share(&share(S2)).unwrap();
    let vs = [version(S1, "a", 10), version(S1, "a", 30), version(S1, "a/b", 40), version(S1, "ab", 50)];
    store.commit_local(&S1, &[], &vs).unwrap();
    store.commit_local(&S1, &[], &[version(S1, "a", 20), version(S1, "a", 256)]).unwrap();
    store.commit_local(&S2, &[], &[version(S2, "a", 60)]).unwrap();
    let ids = |v: Vec<VersionRecord>| v.iter().map(|v| (v.path.to_string(), v.id)).collect::<Vec<_>>();
    assert_eq!(
        ids(store.versions(&S1, &p("a")).unwrap()),
        [("a".into(), 256), ("a".into(), 30), ("a".into(), 20), ("a".into(), 10)]
    );
    assert_eq!(ids(store.versions(&S1, &p("a/b")).unwrap()), [("a/b".into(), 40)]);
    assert_eq!(ids(store.versions(&S1, &p("ab")).unwrap()), [("ab".into(), 50)]);
    assert!(store.versions(&S1, &p("b")).unwrap().is_empty());
    assert_eq!(store.versions(&S1, &p("a")).unwrap()[0], version(S1, "a", 256));
    assert_eq!(
        ids(store.share_versions(&S1).unwrap()),
        [
            ("a".into(), 256),
            ("ab".into(), 50),
            ("a/b".into(), 40),
            ("a".into(), 30),
            ("a".into(), 20),
            ("a".into(), 10)
        ]
    );
    assert_eq!(ids(store.share_versions(&S2).unwrap()), [("a".into(), 60)]);
}

#[test]
fn remove_share_removes_only_that_share() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for s in [S1, S2] {
        store.put_share(&share(s)).unwrap();
        store.commit_local(&s, &[update("a"), update("a/b")], &[version(s, "a", 1)]).unwrap();
        store.put_remote(&s, &PEER, 5, &[rec("a", 1)]).unwrap();
        store.put_remote(&s, &PEER2, 6, &[rec("q", 2)]).unwrap();
    }
    let before_s2 = keys_with_prefix(&store, &S2.0);
    assert_eq!(keys_with_prefix(&store, &S1.0), before_s2);

    store.remove_share(&S1).unwrap();
    assert_eq!(keys_with_prefix(&store, &S1.0), 0);
    assert_eq!(store.share(&S1).unwrap(), None);
    assert!(matches!(store.share_state(&S1), Err(StoreError::NotFound(_))));
    assert!(store.local_files(&S1).unwrap().is_empty());
    assert!(store.local_since(&S1, Seq(0), 10).unwrap().is_empty());
    assert!(store.remote_files(&S1, &PEER).unwrap().is_empty());
    assert_eq!(store.remote_state(&S1, &PEER2).unwrap(), RemoteState::default());
    assert!(store.share_versions(&S1).unwrap().is_empty());

    assert_eq!(keys_with_prefix(&store, &S2.0), before_s2);
    assert_eq!(store.shares().unwrap(), vec![share(S2)]);
    assert_eq!(store.share_state(&S2).unwrap().max_seq, 2);
    assert_eq!(paths(&store.local_since(&S2, Seq(0), 10).unwrap()), [("a".into(), 1), ("a/b".into(), 2)]);
    assert_eq!(store.remote_files(&S2, &PEER2).unwrap(), vec![rec("q", 2)]);
    assert_eq!(store.versions(&S2, &p("a")).unwrap(), vec![version(S2, "a", 1)]);
}

#[test]
fn unknown_or_corrupt_values_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.put_device(&device(PEER)).unwrap();
    let good = schema::encode("device", &device(PEER)).unwrap();
    let mut future = good.clone();
    future[0] = 1; // a `V2` tag this build does not know
    for bad in [future, vec![0], vec![], vec![0xFF; 5]] {
        let txn = store.db.begin_write().unwrap();
        txn.open_table(DEVICES).unwrap().insert(PEER2.0.as_slice(), bad.as_slice()).unwrap();
        txn.commit().unwrap();
        assert!(matches!(store.device(&PEER2), Err(StoreError::Decode { what: "device", .. })));
        assert!(store.devices().is_err());
        assert_eq!(store.device(&PEER).unwrap(), Some(device(PEER)), "other values still readable");
    }

    // A stored path that is not a valid RelPath is refused by deserialization, not trusted.
    store.put_share(&share(S1)).unwrap();
    store.commit_local(&S1, &[update("a")], &[]).unwrap();
    let mut evil = entry("a");
    evil.record.path = p("a");
    let mut bytes = schema::encode("local entry", &evil).unwrap();
    let pos = bytes.windows(2).position(|w| w == [1, b'a']).unwrap();
    bytes[pos + 1] = b'/'; // path "/" (absolute)
    let txn = store.db.begin_write().unwrap();
    txn.open_table(LOCAL).unwrap().insert(schema::local_key(&S1, &p("a")).as_slice(), bytes.as_slice()).unwrap();
    txn.commit().unwrap();
    assert!(matches!(store.local_files(&S1), Err(StoreError::Decode { .. })));
    assert!(store.local_since(&S1, Seq(0), 10).is_err());
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.redb");
    drop(Store::open(&path).unwrap());
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert(META_SCHEMA_VERSION.as_bytes(), 99u32.to_be_bytes().as_slice()).unwrap();
        txn.commit().unwrap();
    }
    match Store::open(&path) {
        Err(StoreError::TooNew { found: 99, supported: schema::SCHEMA_VERSION }) => {}
        Err(e) => panic!("expected TooNew, got {e}"),
        Ok(_) => panic!("expected TooNew, opened fine"),
    }
}

#[test]
fn fresh_database_is_at_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert_eq!(store.get_meta(META_SCHEMA_VERSION).unwrap(), Some(schema::SCHEMA_VERSION.to_be_bytes().to_vec()));
    assert!(matches!(store.set_meta(META_SCHEMA_VERSION, b"x"), Err(StoreError::Invalid(_))));
    store.set_meta("k", b"1").unwrap();
    store.set_meta("k", b"2").unwrap();
    assert_eq!(store.get_meta("k").unwrap(), Some(b"2".to_vec()));
}

#[test]
fn prompts_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = store.next_prompt_id().unwrap();
    let b = store.next_prompt_id().unwrap();
    assert!(b > a);
    let pair = PromptRecord {
        id: b,
        device: PEER,
        created_ms: 1,
        kind: PromptKind::Pair { name: "n".into(), owner: "o".into(), code: "123".into() },
    };
    let offer = PromptRecord {
        id: a,
        device: PEER2,
        created_ms: 2,
        kind: PromptKind::ShareOffer { share: S1, label: "docs".into() },
    };
    store.put_prompt(&pair).unwrap();
    store.put_prompt(&offer).unwrap();
    assert_eq!(store.prompts().unwrap(), vec![offer.clone(), pair.clone()]);
    assert_eq!(store.prompt(b).unwrap(), Some(pair));
    store.remove_prompt(b).unwrap();
    assert_eq!(store.prompt(b).unwrap(), None);
    assert_eq!(store.prompts().unwrap(), vec![offer]);
}

#[test]
fn remove_device() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.put_device(&device(PEER)).unwrap();
    store.put_device(&device(PEER2)).unwrap();
    store.remove_device(&PEER).unwrap();
    assert_eq!(store.device(&PEER).unwrap(), None);
    assert_eq!(store.devices().unwrap(), vec![device(PEER2)]);
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

#[test]
fn notes_keep_conversation_order_and_dedupe_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let (a, b) = (DeviceId([1; 32]), DeviceId([2; 32]));
    for i in [9u8, 3, 7] {
        assert!(store.add_note(&note(i, a, true)).unwrap());
    }
    assert!(store.add_note(&note(5, b, false)).unwrap());
    // A redelivery stores nothing and keeps the first copy.
    let mut again = note(3, a, true);
    again.text = "changed".into();
    assert!(!store.add_note(&again).unwrap());
    let conv: Vec<u8> = store.notes(Some(&a)).unwrap().iter().map(|n| n.id.0[0]).collect();
    assert_eq!(conv, vec![9, 3, 7]);
    assert_eq!(store.note(&NoteId([3; 16])).unwrap().unwrap().text, "note 3");
    assert_eq!(store.notes(None).unwrap().len(), 4);
    assert_eq!(store.notes(Some(&b)).unwrap().len(), 1);
    assert!(matches!(store.set_meta(schema::META_NEXT_NOTE_ORDER, b"x"), Err(StoreError::Invalid(_))));
}

#[test]
fn note_state_changes_persist_and_unknown_note_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let a = DeviceId([1; 32]);
    {
        let store = open(&dir);
        store.add_note(&note(1, a, false)).unwrap();
        let rec = store.set_note_state(&NoteId([1; 16]), NoteState::Read, true).unwrap();
        assert_eq!((rec.state, rec.receipt_pending), (NoteState::Read, true));
        assert!(matches!(store.set_note_state(&NoteId([2; 16]), NoteState::Read, false), Err(StoreError::NotFound(_))));
        store.set_muted(&a, true).unwrap();
    }
    let store = open(&dir);
    let rec = store.note(&NoteId([1; 16])).unwrap().unwrap();
    assert_eq!((rec.state, rec.receipt_pending), (NoteState::Read, true));
    assert!(store.is_muted(&a).unwrap());
    store.set_muted(&a, false).unwrap();
    assert!(!store.is_muted(&a).unwrap());
}

fn transfer(id: u8, outgoing: bool) -> TransferRecord {
    let data = b"hello world";
    TransferRecord {
        id: TransferId([id; 16]),
        peer: PEER,
        outgoing,
        created_ms: 5,
        files: vec![ferry_proto::wire::SendFile {
            path: p("dir/a.txt"),
            size: data.len() as u64,
            mtime_ns: 7,
            executable: false,
            hash: ChunkHash::of(data),
            chunks: vec![ferry_proto::ChunkInfo { hash: ChunkHash::of(data), len: data.len() as u32 }],
        }],
        dirs: vec![p("dir")],
        sources: if outgoing { vec!["/src/dir/a.txt".into()] } else { vec![] },
        state: TransferState::Queued,
        done_bytes: 0,
        notify: None,
        placed: vec![],
        finished_ms: None,
    }
}

#[test]
fn transfers_persist_dedupe_and_update() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        assert!(store.add_transfer(&transfer(1, true)).unwrap());
        assert!(!store.add_transfer(&transfer(1, false)).unwrap(), "a redelivered offer is not stored twice");
        assert!(store.add_transfer(&transfer(2, false)).unwrap());
        let t = store
            .update_transfer(&TransferId([1; 16]), |t| {
                t.state = TransferState::Active;
                t.done_bytes = 4;
                true
            })
            .unwrap();
        assert_eq!((t.state, t.done_bytes), (TransferState::Active, 4));
        assert!(matches!(store.update_transfer(&TransferId([9; 16]), |_| true), Err(StoreError::NotFound(_))));
        store.set_auto_accept(&PEER, true).unwrap();
    }
    let store = open(&dir);
    let all = store.transfers().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].state, TransferState::Active);
    assert!(all[0].outgoing && !all[1].outgoing);
    assert_eq!(all[0].total_bytes(), 11);
    assert!(store.auto_accept(&PEER).unwrap());
    assert!(!store.auto_accept(&PEER2).unwrap());
    store.set_auto_accept(&PEER, false).unwrap();
    assert!(!store.auto_accept(&PEER).unwrap());
}

#[test]
fn v2_database_migrates_to_v3_keeping_notes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.redb");
    {
        // A v2 database: every table but the v3 ones, version 2, one note.
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        for t in schema::ALL_TABLES
            .iter()
            .filter(|t| !matches!(t.to_string().as_str(), "transfers" | "auto_accept" | "share_settings"))
        {
            txn.open_table(*t).unwrap();
        }
        txn.open_table(META).unwrap().insert(META_SCHEMA_VERSION.as_bytes(), 2u32.to_be_bytes().as_slice()).unwrap();
        txn.commit().unwrap();
    }
    {
        let store = Store::open(&path).unwrap();
        store.add_note(&note(4, PEER, true)).unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.get_meta(META_SCHEMA_VERSION).unwrap(), Some(3u32.to_be_bytes().to_vec()));
    assert_eq!(store.notes(None).unwrap().len(), 1);
    assert!(store.transfers().unwrap().is_empty());
    assert!(!store.auto_accept(&PEER).unwrap());
}

#[test]
fn share_settings_default_update_and_go_with_the_share() {
    use ferry_proto::{ConflictPolicy, Retention};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("ferry.redb")).unwrap();
    let id = ShareId([7; 10]);
    assert_eq!(store.share_settings(&id).unwrap(), ShareSettings::default());
    let s = store
        .update_share_settings(&id, |s| {
            s.conflict_policy = ConflictPolicy::NewestWins;
            s.retention = Retention::TrashCan { days: 3 };
            s.attention = Some("look".into());
        })
        .unwrap();
    assert_eq!(store.share_settings(&id).unwrap(), s);
    store.remove_share(&id).unwrap();
    assert_eq!(store.share_settings(&id).unwrap(), ShareSettings::default());
}

/// The paths `walk_share` visits, with which sources held each (local, then one per device).
fn walk(store: &Store, share: &ShareId, devices: &[DeviceId]) -> (Vec<(String, Vec<bool>)>, WalkStates) {
    let mut seen = Vec::new();
    let states = store
        .walk_share(share, devices, |local, remotes| {
            let path = local
                .as_ref()
                .map(|e| e.record.path.clone())
                .or_else(|| remotes.iter().flatten().next().map(|r| r.path.clone()));
            // Every record handed over together is of the same path.
            for r in remotes.iter().flatten() {
                assert_eq!(Some(&r.path), path.as_ref());
            }
            let mut held = vec![local.is_some()];
            held.extend(remotes.iter().map(Option::is_some));
            seen.push((path.unwrap().to_string(), held));
            Ok(())
        })
        .unwrap();
    (seen, states)
}

#[test]
fn walk_share_merges_local_and_remote_indexes_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.put_share(&share(S1)).unwrap();
    store.put_share(&share(S2)).unwrap();
    store.commit_local(&S1, &[update("a"), update("c"), update("d/e")], &[]).unwrap();
    // The adjacent share and a device not walked must not leak into the walk.
    store.commit_local(&S2, &[update("b")], &[]).unwrap();
    store.put_remote(&S2, &PEER, 1, &[rec("b", 1)]).unwrap();
    store.put_remote(&S1, &PEER, 7, &[rec("a", 1), rec("b", 2), rec("d/e", 3), rec("z", 4)]).unwrap();
    store.put_remote(&S1, &PEER2, 8, &[rec("c", 9), rec("d", 1)]).unwrap();
    store.put_remote(&S1, &ME, 9, &[rec("y", 1)]).unwrap();

    let (seen, states) = walk(&store, &S1, &[PEER, PEER2]);
    let want: Vec<(String, Vec<bool>)> = vec![
        ("a".into(), vec![true, true, false]),
        ("b".into(), vec![false, true, false]),
        ("c".into(), vec![true, false, true]),
        ("d".into(), vec![false, false, true]),
        ("d/e".into(), vec![true, true, false]),
        ("z".into(), vec![false, true, false]),
    ];
    assert_eq!(seen, want);
    assert_eq!(states.local, store.share_state(&S1).unwrap());
    assert_eq!(
        states.remotes,
        vec![(PEER, RemoteState { epoch: 7, max_seq: 4 }), (PEER2, RemoteState { epoch: 8, max_seq: 9 })]
    );
    assert_eq!(states, store.walk_states(&S1, &[PEER, PEER2]).unwrap());

    // No devices: the local index alone; a device we hold nothing of: its state is {0, 0}.
    let (seen, _) = walk(&store, &S1, &[]);
    assert_eq!(seen.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), ["a", "c", "d/e"]);
    let stranger = DeviceId([7; 32]);
    assert_eq!(store.walk_states(&S1, &[stranger]).unwrap().remotes, vec![(stranger, RemoteState::default())]);
    assert!(matches!(store.walk_states(&ShareId([5; 10]), &[]), Err(StoreError::NotFound(_))));
}

#[test]
fn index_generation_moves_with_index_writes_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.put_share(&share(S1)).unwrap();
    let g = store.index_generation();
    let before = store.walk_states(&S1, &[PEER]).unwrap();
    store.put_device(&device(PEER)).unwrap();
    store.update_share_settings(&S1, |s| s.mass_delete_percent = Some(10)).unwrap();
    assert_eq!(store.index_generation(), g, "device and settings writes are not index writes");
    assert_eq!(store.walk_states(&S1, &[PEER]).unwrap(), before);

    store.put_remote(&S1, &PEER, 3, &[rec("x", 1)]).unwrap();
    let after_remote = store.walk_states(&S1, &[PEER]).unwrap();
    assert_ne!(after_remote, before);
    store.commit_local(&S1, &[update("x")], &[]).unwrap();
    let after_local = store.walk_states(&S1, &[PEER]).unwrap();
    assert_ne!(after_local, after_remote);
    // A metadata-only commit keeps every seq, and still moves the generation.
    let mut e = store.local_file(&S1, &p("x")).unwrap().unwrap();
    e.record.version = Default::default();
    store.commit_local(&S1, &[LocalUpdate { entry: e, new_seq: false }], &[]).unwrap();
    let kept = store.walk_states(&S1, &[PEER]).unwrap();
    assert_eq!(kept.local, after_local.local);
    assert_ne!(kept, after_local);
    store.clear_remote(&S1, &PEER).unwrap();
    assert_ne!(store.walk_states(&S1, &[PEER]).unwrap(), kept);
}

#[test]
fn for_each_local_and_local_reader_read_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.put_share(&share(S1)).unwrap();
    store.put_share(&share(S2)).unwrap();
    store.commit_local(&S1, &[update("b"), update("a"), update("c")], &[]).unwrap();
    store.commit_local(&S2, &[update("a0")], &[]).unwrap();
    let mut all = Vec::new();
    store
        .for_each_local(&S1, |e| {
            all.push(e.record.path.to_string());
            Ok(true)
        })
        .unwrap();
    assert_eq!(all, ["a", "b", "c"]);
    let mut first = Vec::new();
    store
        .for_each_local(&S1, |e| {
            first.push(e.record.path.to_string());
            Ok(first.len() < 2)
        })
        .unwrap();
    assert_eq!(first, ["a", "b"], "stops when asked");

    let reader = store.local_reader(&S1).unwrap();
    assert_eq!(reader.get(&p("b")).unwrap(), store.local_file(&S1, &p("b")).unwrap());
    assert_eq!(reader.get(&p("a0")).unwrap(), None, "another share's entry");
    // The reader keeps the snapshot it was made with.
    store.commit_local(&S1, &[update("d")], &[]).unwrap();
    assert_eq!(reader.get(&p("d")).unwrap(), None);
    assert!(store.local_reader(&S1).unwrap().get(&p("d")).unwrap().is_some());
}
