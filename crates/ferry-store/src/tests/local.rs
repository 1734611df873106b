//! The local index: seq assignment, the seq index, all-or-nothing commits and the readers.

use super::*;
use ferry_proto::ChunkInfo;

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
    // Up to a seq: the entries not written since (c was written again after, a is another
    // share's seq range).
    let upto = store.share_state(&S1).unwrap().max_seq;
    store.commit_local(&S1, &[update("c"), update("e")], &[]).unwrap();
    let mut old = Vec::new();
    store
        .for_each_local_upto(&S1, Seq(upto), |e| {
            old.push(e.record.path.to_string());
            Ok(true)
        })
        .unwrap();
    assert_eq!(old, ["b", "a"], "in seq order, without what was written after");

    let reader = store.local_reader(&S1).unwrap();
    assert_eq!(reader.get(&p("b")).unwrap(), store.local_file(&S1, &p("b")).unwrap());
    assert_eq!(reader.get(&p("a0")).unwrap(), None, "another share's entry");
    // The reader keeps the snapshot it was made with.
    store.commit_local(&S1, &[update("d")], &[]).unwrap();
    assert_eq!(reader.get(&p("d")).unwrap(), None);
    assert!(store.local_reader(&S1).unwrap().get(&p("d")).unwrap().is_some());
}

/// The lean reads (`lean.rs`) skip fields of the stored entry: they must land on the same
/// values as the full decode, whatever the skipped fields hold.
#[test]
fn lean_reads_agree_with_the_full_decode() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.put_share(&share(S1)).unwrap();
    let mut file = entry("d/file");
    file.record.size = 300_000;
    file.record.mtime_ns = -5;
    file.record.executable = true;
    file.record.version = VersionVector::new().bumped(ME).bumped(PEER).bumped(PEER);
    file.record.chunks = (0..40).map(|i| ChunkInfo { hash: ChunkHash::of(&[i]), len: 7_500 + u32::from(i) }).collect();
    file.meta = LocalMeta { inode: u64::MAX - 3, local_change: true };
    let mut link = entry("d/link");
    link.record.kind = FileKind::Symlink { target: "../elsewhere ü".into() };
    link.meta.inode = 1 << 40;
    let mut dir_entry = entry("d");
    dir_entry.record.kind = FileKind::Dir;
    let mut gone = entry("gone");
    gone.record.deleted = true;
    let all = [dir_entry, file, link, gone];
    let updates: Vec<LocalUpdate> = all.iter().map(|e| LocalUpdate { entry: e.clone(), new_seq: true }).collect();
    store.commit_local(&S1, &updates, &[]).unwrap();

    let reader = store.local_reader(&S1).unwrap();
    for e in &all {
        let full = reader.get(&e.record.path).unwrap().unwrap();
        let r = &full.record;
        let stat = reader.stat(&e.record.path).unwrap().unwrap();
        let want = LocalStat {
            kind: r.kind.clone(),
            deleted: r.deleted,
            size: r.size,
            mtime_ns: r.mtime_ns,
            executable: r.executable,
            inode: full.meta.inode,
        };
        assert_eq!(stat, want, "{}", r.path);
    }
    assert_eq!(reader.stat(&p("nowhere")).unwrap(), None);
    let mut live = Vec::new();
    reader
        .for_each_live_path(None, |p| {
            live.push(p.to_string());
            true
        })
        .unwrap();
    assert_eq!(live, ["d", "d/file", "d/link"], "tombstones left out");
}
