//! Unit tests of the share actor's index-side logic (status counts, the pull plan and its mark).

use super::plan::{PullScope, Round, plan_pull};
use super::*;
use ferry_engine::plans::is_dropped_change;
use ferry_proto::{ChunkInfo, ConflictPolicy, Seq, ShareMode, VersionVector};
use ferry_store::{RemoteState, Store};

const ME: DeviceId = DeviceId([9; 32]);
const PEER: DeviceId = DeviceId([1; 32]);
const PEER2: DeviceId = DeviceId([2; 32]);
const S: ShareId = ShareId([3; 10]);

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("ferry.redb")).unwrap();
    let share = ShareRecord {
        id: S,
        label: "s".into(),
        path: "/tmp/s".into(),
        mode: ShareMode::SendReceive,
        devices: vec![PEER, PEER2],
        paused: false,
    };
    store.put_share(&share).unwrap();
    (dir, store)
}

fn rec(path: &str, content: &str, by: DeviceId) -> FileRecord {
    let hash = ChunkHash::of(content.as_bytes());
    FileRecord {
        path: RelPath::new(path).unwrap(),
        kind: FileKind::File,
        deleted: false,
        size: content.len() as u64,
        mtime_ns: 1_000,
        executable: false,
        version: VersionVector::new().bumped(by),
        seq: Seq(0),
        hash,
        chunks: vec![ChunkInfo { hash, len: content.len() as u32 }],
        modified_by: by,
    }
}

fn local(store: &Store, records: Vec<(FileRecord, bool)>) {
    let updates: Vec<LocalUpdate> = records
        .into_iter()
        .map(|(record, local_change)| LocalUpdate {
            entry: LocalEntry { record, meta: LocalMeta { inode: 1, local_change } },
            new_seq: true,
        })
        .collect();
    store.commit_local(&S, &updates, &[]).unwrap();
}

fn remote(store: &Store, device: DeviceId, records: Vec<FileRecord>) {
    let max = store.remote_state(&S, &device).unwrap().max_seq;
    let records: Vec<FileRecord> =
        records.into_iter().enumerate().map(|(i, r)| FileRecord { seq: Seq(max + 1 + i as u64), ..r }).collect();
    store.put_remote(&S, &device, 5, &records).unwrap();
}

/// The status counts the way they were computed before the streaming walk: both indexes
/// loaded whole.
fn full_counts(store: &Store, connected: &[DeviceId]) -> StatusCounts {
    let local = store.local_files(&S).unwrap();
    let live: Vec<&LocalEntry> = local.iter().filter(|e| !e.record.deleted).collect();
    let mut peers_have_all = true;
    for d in connected {
        let remote: HashMap<RelPath, FileRecord> =
            store.remote_files(&S, d).unwrap().into_iter().map(|r| (r.path.clone(), r)).collect();
        for e in local.iter().filter(|e| !e.meta.local_change) {
            peers_have_all &= match remote.get(&e.record.path) {
                Some(r) => r.version == e.record.version,
                None => e.record.deleted,
            };
        }
    }
    StatusCounts {
        files: live.iter().filter(|e| e.record.kind == FileKind::File).count() as u64,
        bytes: live.iter().map(|e| e.record.size).sum(),
        local_changes: local
            .iter()
            .filter(|e| e.meta.local_change && !is_dropped_change(&crate::records::entry(e)))
            .count() as u64,
        peers_have_all,
    }
}

#[test]
fn status_counts_match_a_full_computation() {
    let (_dir, store) = open();
    let mut dir = rec("d", "", ME);
    dir.kind = FileKind::Dir;
    dir.chunks.clear();
    let mut gone = rec("d/gone", "old", ME);
    gone.deleted = true;
    let mut dropped = rec("d/dropped", "x", ME);
    dropped.deleted = true;
    dropped.version = VersionVector::new();
    local(
        &store,
        vec![
            (rec("a", "aaa", ME), false),
            (dir, false),
            (rec("d/b", "bbbbb", ME), false),
            (gone, false),
            (rec("d/mine", "here only", ME), true),
            (dropped, true),
        ],
    );
    let check = |connected: &[DeviceId]| {
        assert_eq!(status_counts(&store, &S, connected).unwrap().0, full_counts(&store, connected));
    };
    check(&[]);
    check(&[PEER]);
    let mine = store.local_files(&S).unwrap();
    let sent: Vec<FileRecord> = mine.iter().filter(|e| !e.meta.local_change).map(|e| e.record.clone()).collect();
    remote(&store, PEER, sent.clone());
    remote(&store, PEER, vec![rec("theirs only", "t", PEER)]);
    check(&[PEER]);
    assert!(status_counts(&store, &S, &[PEER]).unwrap().0.peers_have_all);
    // The second peer lacks one of our files, then has an older version of it.
    remote(&store, PEER2, sent.iter().filter(|r| r.path.as_str() != "d/b").cloned().collect());
    check(&[PEER, PEER2]);
    assert!(!status_counts(&store, &S, &[PEER, PEER2]).unwrap().0.peers_have_all);
    remote(&store, PEER2, vec![rec("d/b", "older", PEER2)]);
    check(&[PEER, PEER2]);
    let c = status_counts(&store, &S, &[PEER]).unwrap().0;
    assert_eq!((c.files, c.bytes, c.local_changes), (3, 3 + 5 + 9, 1));
}

#[test]
fn pull_plan_wants_newer_records_and_its_mark_follows_every_index_write() {
    let (_dir, store) = open();
    let policy = ConflictPolicy::default();
    let members = [PEER, PEER2];
    let a = rec("a", "aaa", ME);
    local(&store, vec![(a.clone(), false)]);
    remote(&store, PEER, vec![a.clone()]);
    let plan = plan_pull(&store, &S, &members, policy, &PullScope::ALL).unwrap();
    assert!(plan.wanted.is_empty());
    assert_eq!(plan.live_files, 1);
    let mark = PullMark { states: plan.states, policy };
    let current = |store: &Store| PullMark { states: store.walk_states(&S, &members).unwrap(), policy };
    assert!(mark == current(&store), "nothing written: the next pass is skipped");
    assert!(mark != PullMark { policy: ConflictPolicy::NewestWins, ..current(&store) });

    // A peer's new file: the mark no longer holds, and the pass wants the file from both
    // peers that have its content.
    let b = rec("b", "bbb", PEER);
    remote(&store, PEER, vec![b.clone()]);
    assert!(mark != current(&store));
    remote(&store, PEER2, vec![b.clone(), rec("c", "other", PEER2)]);
    let plan = plan_pull(&store, &S, &members, policy, &PullScope::ALL).unwrap();
    assert_eq!(plan.wanted.keys().map(|p| p.as_str()).collect::<BTreeSet<_>>(), BTreeSet::from(["b", "c"]));
    assert_eq!(plan.wanted[&b.path].1, Action::Apply);
    assert_eq!(plan.holders[&b.path], vec![PEER, PEER2]);
    assert_eq!(plan.holders[&RelPath::new("c").unwrap()], vec![PEER2]);
    assert!(plan.local.is_empty(), "no local entry at the wanted paths");

    // A newer version of `a` on one peer: wanted, with our entry, from that peer only.
    let a2 = FileRecord { version: a.version.bumped(PEER), hash: ChunkHash::of(b"a2"), ..a.clone() };
    remote(&store, PEER2, vec![a2.clone()]);
    let plan = plan_pull(&store, &S, &members, policy, &PullScope::ALL).unwrap();
    assert_eq!(plan.wanted[&a.path].0.version, a2.version);
    assert_eq!(plan.holders[&a.path], vec![PEER2]);
    assert_eq!(plan.local[&a.path].record, store.local_file(&S, &a.path).unwrap().unwrap().record);

    // Everything applied: nothing wanted, and a mark taken now holds until the next write,
    // even one that keeps every seq (a revert rewrites entries in place).
    let applied: Vec<(FileRecord, bool)> = vec![(a2, false), (b, false), (rec("c", "other", PEER2), false)];
    local(&store, applied);
    let plan = plan_pull(&store, &S, &members, policy, &PullScope::ALL).unwrap();
    assert!(plan.wanted.is_empty(), "{:?}", plan.wanted.keys().collect::<Vec<_>>());
    let mark = PullMark { states: plan.states, policy };
    assert!(mark == current(&store));
    let mut e = store.local_file(&S, &a.path).unwrap().unwrap();
    e.record.version = VersionVector::new();
    store.commit_local(&S, &[LocalUpdate { entry: e, new_seq: false }], &[]).unwrap();
    assert!(mark != current(&store));
    assert_eq!(plan_pull(&store, &S, &members, policy, &PullScope::ALL).unwrap().wanted.len(), 1);
    assert_eq!(store.remote_state(&S, &PEER).unwrap(), RemoteState { epoch: 5, max_seq: 2 });
}

#[test]
fn a_pull_plan_of_some_paths_is_the_full_plan_at_those_paths() {
    let (_dir, store) = open();
    let policy = ConflictPolicy::default();
    let members = [PEER, PEER2];
    let (a, b, c) = (rec("a", "aaa", ME), rec("b", "bbb", PEER), rec("c", "ccc", PEER2));
    local(&store, vec![(a.clone(), false)]);
    let a2 = FileRecord { version: a.version.bumped(PEER), hash: ChunkHash::of(b"a2"), ..a.clone() };
    remote(&store, PEER, vec![a2.clone(), b.clone()]);
    remote(&store, PEER2, vec![b.clone(), c.clone()]);
    let full = plan_pull(&store, &S, &members, policy, &PullScope::ALL).unwrap();
    assert_eq!(full.wanted.len(), 3);

    // `c` is wanted too, but not asked about; `nobody` is held by no one; `a` is asked twice.
    let only = [b.path.clone(), a.path.clone(), RelPath::new("nobody").unwrap(), a.path.clone()];
    let some = plan_pull(&store, &S, &members, policy, &PullScope::Paths(only.to_vec())).unwrap();
    assert_eq!(some.wanted.keys().map(|p| p.as_str()).collect::<BTreeSet<_>>(), BTreeSet::from(["a", "b"]));
    for p in [&a.path, &b.path] {
        assert_eq!(some.wanted[p], full.wanted[p]);
        assert_eq!(some.holders[p], full.holders[p]);
    }
    assert_eq!(some.local[&a.path].record, full.local[&a.path].record);
    assert_eq!(some.live_files, 1, "live files among the paths looked at");
    assert_eq!(some.states, full.states);
}

#[test]
fn pull_plans_in_windows_cover_the_full_plan_and_the_first_holds_every_deletion() {
    let (_dir, store) = open();
    let policy = ConflictPolicy::default();
    let members = [PEER];
    // `d` is ours and the peer deleted it; `b`, `c` and `e` are new from the peer.
    let d = rec("d", "ddd", ME);
    local(&store, vec![(d.clone(), false)]);
    let gone = FileRecord { deleted: true, version: d.version.bumped(PEER), ..d.clone() };
    remote(&store, PEER, vec![rec("b", "b", PEER), rec("c", "c", PEER), gone, rec("e", "e", PEER)]);
    let full = plan_pull(&store, &S, &members, policy, &PullScope::ALL).unwrap();
    assert!(full.whole && full.next.is_none());
    assert_eq!(full.wanted.len(), 4);

    // Windows of two live paths. The first walks on past its cap for every deletion and live
    // file (the guard counts them all; renames pair with the deletions); the later ones skip
    // deletions, and deletions do not count towards the cap.
    let mut windows = Vec::new();
    let (mut after, mut first) = (None, true);
    loop {
        let plan = plan_pull(&store, &S, &members, policy, &PullScope::Window { after: after.take(), cap: 2 }).unwrap();
        assert!(!plan.whole, "a window that reached its cap, or began after a path, does not hold every path");
        if first {
            assert_eq!(plan.live_files, 1, "the first window counts every live file");
        }
        first = false;
        windows.push(plan.wanted.keys().map(|p| p.to_string()).collect::<BTreeSet<_>>());
        for (p, w) in &plan.wanted {
            assert_eq!(w, &full.wanted[p]);
            assert_eq!(plan.holders[p], full.holders[p]);
        }
        match plan.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let expect: Vec<BTreeSet<String>> = vec![["b", "c", "d"].map(String::from).into(), ["e"].map(String::from).into()];
    assert_eq!(windows, expect);
    // A window from the start that does not reach its cap is the whole plan.
    let roomy = plan_pull(&store, &S, &members, policy, &PullScope::Window { after: None, cap: 4 }).unwrap();
    assert!(roomy.whole);
    assert_eq!(roomy.live_files, 1);
}

#[test]
fn a_round_keeps_its_deletions_back_until_its_last_window_and_never_over_a_newer_plan() {
    let (_dir, store) = open();
    let policy = ConflictPolicy::default();
    let d = rec("d", "ddd", ME);
    local(&store, vec![(d.clone(), false)]);
    let gone = FileRecord { deleted: true, version: d.version.bumped(PEER), ..d.clone() };
    remote(&store, PEER, vec![rec("b", "b", PEER), gone]);
    let full = plan_pull(&store, &S, &[PEER], policy, &PullScope::ALL).unwrap();
    let item = |p: &str| full.wanted[&RelPath::new(p).unwrap()].clone();
    let path = |p: &str| RelPath::new(p).unwrap();

    // A window that is not the round's last takes its deletions back (with our entry there).
    let mut round = Round::default();
    let (mut items, mut local) = (vec![item("b"), item("d")], full.local.clone());
    round.keep_back(&mut items, &mut local);
    assert_eq!(items.iter().map(|(t, _)| t.path.as_str()).collect::<Vec<_>>(), ["b"]);
    assert!(!local.contains_key(&path("d")));

    // The next window is offered them, with our entry.
    let (mut wanted, mut local) = (HashMap::new(), HashMap::new());
    round.offer(&mut wanted, &mut local);
    assert!(wanted[&path("d")].0.deleted);
    assert_eq!(local[&path("d")], full.local[&path("d")]);

    // A window that planned the path itself (made again since the round began) keeps its plan.
    let mut round = Round::default();
    round.keep_back(&mut vec![item("d")], &mut full.local.clone());
    let again = rec("d", "made again", PEER);
    let mut wanted = HashMap::from([(path("d"), (again.clone(), item("b").1))]);
    let mut local = HashMap::new();
    round.offer(&mut wanted, &mut local);
    assert_eq!(wanted[&path("d")].0, again, "the round's old deletion does not replace the newer plan");
    round.offer(&mut wanted, &mut local);
    assert_eq!(wanted.len(), 1, "an offer hands each deletion over once");
}

#[test]
fn failed_pulls_back_off_to_the_cap_and_a_clean_pull_resets() {
    let mut r = Retry { at: None, delay: RETRY_MIN };
    let mut waits = Vec::new();
    for _ in 0..8 {
        let before = std::time::Instant::now();
        r.after_pull(true);
        let at = r.at.expect("a retry is scheduled");
        waits.push((at - before).as_secs());
    }
    assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    r.after_pull(false);
    assert!(r.at.is_none());
    assert_eq!(r.delay, RETRY_MIN);
}
