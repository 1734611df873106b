//! A restart that changed nothing does not walk the indexes again: the mark of the last pull
//! pass that found nothing to do is kept in the store with the index generation, so the first
//! pass after a restart is skipped, and so are the status counts, so status calls answer
//! without a walk; a change made while the node was stopped moves the generation, and the pass
//! plans again and status counts again. Counts kept with a peer connected serve a start
//! without it. The `pull.plan` and `status.walk` fault points count
//! the plans and the walks (each fails the first one it sees).
//!
//! Its own test binary: fault points are process-wide, and every node reaches this one.

use std::fs;

use ferry_e2e::*;

/// Waits until every share of `n` has finished its start (its first scan and pull). A status
/// call that fails (an armed `status.walk`) counts as not yet.
async fn started(n: &TestNode) {
    wait_for(&[n], "the share idle after the start", || async {
        n.node.status().await.is_ok_and(|s| s.shares.iter().all(|s| s.state == "idle"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_that_changed_nothing_skips_its_first_walks_and_one_that_did_not_walks() {
    let (a, b, da, db, share) = two_sharing().await;
    for i in 0..20 {
        fs::write(da.path().join(format!("f{i:02}.txt")), format!("file {i}")).unwrap();
    }
    wait_synced(&a, &b, da.path(), db.path(), &share, "every file on b").await;
    // The usual restart of a device with peers: B stops with A connected (its kept counts were
    // counted with A's index) and starts before A is back. Nothing was written in between, so
    // its first status answers from the kept counts, with nobody to compare with.
    assert!(b.node.status().await.unwrap().shares[0].in_sync, "b counted with a connected");
    let (home_b, _keep_b) = b.stop().await;
    // B alone from here: A, stopped, neither plans nor sends anything.
    let (_home_a, _keep_a) = a.stop().await;
    ferry_node::fault::fail("status.walk", 1);
    // This restart also settles B's mark with nothing more arriving (an index update A sent
    // after B's last pass would make that pass's mark stale, and this start plan once).
    let b = TestNode::start_at("beta", &home_b).await;
    started(&b).await;
    assert_eq!(
        ferry_node::fault::failures_left("status.walk"),
        1,
        "b's status walked the indexes after a restart with its peer away and nothing changed"
    );
    let st = b.node.status().await.unwrap();
    assert_eq!((st.shares[0].files, st.shares[0].local_changes), (20, 0), "the kept counts are the share's");
    b.stop().await;

    ferry_node::fault::fail("pull.plan", 1);
    ferry_node::fault::fail("status.walk", 1);
    let b = TestNode::start_at("beta", &home_b).await;
    started(&b).await;
    assert_eq!(
        ferry_node::fault::failures_left("pull.plan"),
        1,
        "b planned a pull after a restart that changed nothing"
    );
    assert_eq!(
        ferry_node::fault::failures_left("status.walk"),
        1,
        "b's status walked the indexes after a restart that changed nothing"
    );
    let st = b.node.status().await.unwrap();
    assert_eq!(st.shares[0].files, 20, "the kept counts are the share's");

    // A file added while B is stopped: its scan writes the index, and the pass plans (and
    // meets the armed failure).
    b.stop().await;
    fs::write(db.path().join("made while stopped.txt"), "new").unwrap();
    let b = TestNode::start_at("beta", &home_b).await;
    wait_for(&[&b], "b planned a pull and counted again after its index changed", || async {
        let _ = b.node.status().await;
        ferry_node::fault::failures_left("pull.plan") == 0 && ferry_node::fault::failures_left("status.walk") == 0
    })
    .await;
    wait_for(&[&b], "b's status counts the new file", || async {
        b.node.status().await.is_ok_and(|s| s.shares[0].files == 21)
    })
    .await;
    b.node.shutdown().await;
}
