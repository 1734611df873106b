//! Version records: ordering per path and per share.

use super::*;

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
