//! Remote indexes: records per (share, device) and their epochs.

use super::*;

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
