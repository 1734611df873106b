//! After a crash, a file Ferry was applying is fetched again, never taken for the user's edit.
//! The state a power cut leaves on a disk that lost an applied file's content is made by hand:
//! B stopped with an apply intent recorded (what B was writing over `f`, and what `f` held) and
//! `f` holding neither (zeros, as a lost write reads back). Before the fix B's first scan took
//! the zeros for a new version of its own, concurrent with A's: a conflict copy of zeros on
//! both devices (the LazyFS report's 62 empty conflict copies).

use std::fs;

use ferry_e2e::{TestNode, tree, two_sharing, wait_for};
use ferry_proto::ShareId;
use ferry_store::{ApplyIntent, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_apply_is_fetched_again_without_a_conflict_copy() {
    let (a, b, da, db, id) = two_sharing().await;
    let (v1, v2) = (b"version one\n".repeat(100), b"version two, longer\n".repeat(100));
    fs::write(da.path().join("f.txt"), &v1).unwrap();
    wait_for(&[&a, &b], "f v1 on b", || async { fs::read(db.path().join("f.txt")).ok() == Some(v1.clone()) }).await;
    wait_for(&[&a, &b], "both in sync", || async {
        ferry_e2e::in_sync(&a, &id).await && ferry_e2e::in_sync(&b, &id).await
    })
    .await;

    let (home_b, _guard) = b.stop().await;
    fs::write(da.path().join("f.txt"), &v2).unwrap();
    a.node.rescan_all();
    wait_for(&[&a], "a indexed v2", || async {
        a.node.status().await.unwrap().shares[0].summary.since_start.local_changes >= 1
    })
    .await;
    // What a cut after B's rename of v2, on a disk that never got v2's bytes, leaves.
    let zeros = vec![0u8; v2.len()];
    {
        let store = Store::open(&home_b.join("ferry.redb")).unwrap();
        let share: ShareId = id.parse().unwrap();
        let intent = ApplyIntent {
            path: ferry_proto::RelPath::new("f.txt").unwrap(),
            new: ferry_proto::ChunkHash(*blake3::hash(&v2).as_bytes()),
            old: Some(ferry_proto::ChunkHash(*blake3::hash(&v1).as_bytes())),
        };
        store.record_intents(&share, &[intent]).unwrap();
    }
    fs::write(db.path().join("f.txt"), &zeros).unwrap();

    let b = TestNode::start_at("beta", &home_b).await;
    wait_for(&[&a, &b], "v2 on both", || async {
        fs::read(db.path().join("f.txt")).ok() == Some(v2.clone())
            && fs::read(da.path().join("f.txt")).ok() == Some(v2.clone())
    })
    .await;
    wait_for(&[&a, &b], "both in sync", || async {
        ferry_e2e::in_sync(&a, &id).await && ferry_e2e::in_sync(&b, &id).await
    })
    .await;
    let (ta, tb) = (tree(da.path()), tree(db.path()));
    assert_eq!(ta, tb);
    assert!(ta.keys().all(|k| !k.contains(".sync-conflict-")), "no conflict copy: {ta:?}");
    // The zeros were not thrown away: they are in B's history.
    let versions = b.node.versions(&db.path().join("f.txt").display().to_string()).await.unwrap();
    let zeros_hash = blake3::hash(&zeros).to_hex().to_string();
    assert!(versions.iter().any(|v| v.hash == zeros_hash), "what was on disk is kept as a version: {versions:?}");
}
