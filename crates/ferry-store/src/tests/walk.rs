//! Walks over the local and remote indexes, and the index generation that dates them.

use super::*;

/// The paths `walk_share` visits, with which sources held each (local, then one per device).
fn walk(store: &Store, share: &ShareId, devices: &[DeviceId]) -> (Vec<(String, Vec<bool>)>, WalkStates) {
    walk_with(store, share, devices, None)
}

/// The same, of `walk_paths` over `paths` when given.
fn walk_with(
    store: &Store,
    share: &ShareId,
    devices: &[DeviceId],
    paths: Option<&[RelPath]>,
) -> (Vec<(String, Vec<bool>)>, WalkStates) {
    let mut seen = Vec::new();
    let visit = |local: Option<LocalEntry>, remotes: Vec<Option<FileRecord>>| {
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
    };
    let states = match paths {
        None => store.walk_share(share, devices, visit),
        Some(paths) => store.walk_paths(share, devices, paths, visit),
    }
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

    // Given paths (unsorted, repeated, one nobody holds): what the full walk hands over for
    // exactly those paths, in path order, once each, with the same states.
    let paths: Vec<RelPath> = ["z", "d/e", "nobody", "a", "z", "d"].iter().map(|p| RelPath::new(*p).unwrap()).collect();
    let (some, some_states) = walk_with(&store, &S1, &[PEER, PEER2], Some(&paths));
    let (all, all_states) = walk(&store, &S1, &[PEER, PEER2]);
    let expected: Vec<_> = all.into_iter().filter(|(p, _)| ["a", "d", "d/e", "z"].contains(&p.as_str())).collect();
    assert_eq!(some, expected);
    assert_eq!(some_states, all_states);
}

#[test]
fn walk_share_from_goes_on_after_a_path_and_stops_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.put_share(&share(S1)).unwrap();
    store.put_share(&share(S2)).unwrap();
    store.commit_local(&S1, &[update("a"), update("c"), update("d/e")], &[]).unwrap();
    store.commit_local(&S2, &[update("zz")], &[]).unwrap();
    store.put_remote(&S1, &PEER, 7, &[rec("a", 1), rec("b", 2), rec("d", 3), rec("z", 4)]).unwrap();
    let (full, _) = walk(&store, &S1, &[PEER]);
    let full: Vec<String> = full.into_iter().map(|(p, _)| p).collect();

    // Windows of two paths, each going on after the last path of the one before: together,
    // the full walk, each path once. (A cursor that is no held path, "c0", starts at the next.)
    let mut windows: Vec<Vec<String>> = Vec::new();
    let mut after: Option<RelPath> = None;
    loop {
        let mut window = Vec::new();
        store
            .walk_share_from(&S1, &[PEER], after.as_ref(), |local, remotes| {
                let path =
                    local.map(|e| e.record.path).or_else(|| remotes.into_iter().flatten().next().map(|r| r.path));
                window.push(path.unwrap().to_string());
                Ok(window.len() < 2)
            })
            .unwrap();
        if window.is_empty() {
            break;
        }
        after = Some(p(window.last().unwrap()));
        windows.push(window);
    }
    assert_eq!(windows, [vec!["a", "b"], vec!["c", "d"], vec!["d/e", "z"]]);
    assert_eq!(windows.concat(), full);
    let mut rest = Vec::new();
    store
        .walk_share_from(&S1, &[PEER], Some(&p("c0")), |local, remotes| {
            rest.push(local.map(|e| e.record.path).or_else(|| remotes.into_iter().flatten().next().map(|r| r.path)));
            Ok(true)
        })
        .unwrap();
    assert_eq!(rest, [Some(p("d")), Some(p("d/e")), Some(p("z"))]);
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
fn the_index_generation_a_pull_mark_and_kept_counts_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.put_share(&share(S1)).unwrap();
    store.put_remote(&S1, &PEER, 3, &[rec("x", 1)]).unwrap();
    let states = store.walk_states(&S1, &[PEER]).unwrap();
    let mark =
        PullMark { states: states.clone(), policy: ferry_proto::ConflictPolicy::default(), planner: "test".into() };
    store.put_pull_mark(&S1, &mark).unwrap();
    let counts = KeptCounts { states: states.clone(), files: 2, bytes: 7, local_changes: 1, peers_have_all: false };
    // S2 was never added (or is gone): its counts are not kept.
    store.put_kept_counts(&[(S1, counts.clone()), (S2, counts.clone())]).unwrap();
    assert_eq!(store.walk_states(&S1, &[PEER]).unwrap(), states, "keeping a mark or counts is not an index write");
    drop(store);

    let store = open(&dir);
    assert_eq!(store.walk_states(&S1, &[PEER]).unwrap(), states, "states compare across a restart");
    assert_eq!(store.pull_mark(&S1).unwrap(), Some(mark));
    assert_eq!(store.kept_counts(&S1).unwrap(), Some(counts));
    assert_eq!(store.kept_counts(&S2).unwrap(), None);
    assert!(store.set_meta("status_counts/x", b"").is_err(), "kept counts are the store's own");
    store.commit_local(&S1, &[update("y")], &[]).unwrap();
    assert_ne!(store.walk_states(&S1, &[PEER]).unwrap(), states, "an index write after the restart moves them");
    assert!(store.set_meta("index_generation", &[0; 8]).is_err(), "the generation is the store's own");
    store.remove_share(&S1).unwrap();
    assert_eq!(store.pull_mark(&S1).unwrap(), None, "a removed share's mark goes with it");
    assert_eq!(store.kept_counts(&S1).unwrap(), None, "and its counts");
}
