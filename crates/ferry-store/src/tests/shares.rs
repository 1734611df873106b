//! Shares: their state on creation, removal with everything they own, and their settings.

use super::*;

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
