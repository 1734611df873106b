//! A pull that failed on this device's side (here: the disk refused the temp file, as a full
//! disk does) is tried again by itself, without any new change or connection to wake it: the
//! share finishes once the disk takes writes again. Before, such a share stayed "need N" until
//! the next change or the hourly rescan.
//!
//!
//! Likewise an index update the peer failed to store is sent again on the same connection:
//! before, the sender gave up until the devices reconnected, and the peer never heard of the
//! change (a stall CI once showed in history's `override_and_revert`).
//!
//! Its own test binary: fault points are process-wide.

use std::fs;
use std::time::Duration;

use ferry_e2e::*;

/// Far below the hourly rescan and the 60 s wait: only the retry timer can make it in time.
const FINISHED_WITHIN: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pull_that_failed_on_a_full_disk_is_retried_by_itself() {
    let (a, b, da, db, share) = two_sharing().await;
    fs::write(da.path().join("report.txt"), "first draft").unwrap();
    wait_for(&[&a, &b], "report.txt on b", || async {
        fs::read(db.path().join("report.txt")).ok().as_deref() == Some(b"first draft".as_slice())
            && in_sync(&a, &share).await
            && in_sync(&b, &share).await
    })
    .await;

    // B's disk refuses the next three temp files; then it takes writes again.
    ferry_node::fault::fail("apply.temp", 3);
    fs::write(da.path().join("report.txt"), "second draft, longer").unwrap();
    wait_for(&[&a, &b], "b failed to write the edit", || async { ferry_node::fault::failures_left("apply.temp") < 3 })
        .await;
    let started = std::time::Instant::now();
    wait_for(&[&a, &b], "the edit on b, with nothing else happening", || async {
        fs::read(db.path().join("report.txt")).ok().as_deref() == Some(b"second draft, longer".as_slice())
            && in_sync(&b, &share).await
    })
    .await;
    assert_eq!(ferry_node::fault::failures_left("apply.temp"), 0, "every armed failure happened");
    assert!(started.elapsed() < FINISHED_WITHIN, "finished after {:?}", started.elapsed());
    let st = b.node.status().await.unwrap();
    assert_eq!(st.shares[0].need, 0);
    a.node.shutdown().await;
    b.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_index_update_the_peer_failed_to_store_is_sent_again() {
    let (a, b, da, db, share) = two_sharing().await;
    fs::write(da.path().join("notes.txt"), "monday").unwrap();
    wait_for(&[&a, &b], "notes.txt on b", || async {
        fs::read(db.path().join("notes.txt")).ok().as_deref() == Some(b"monday".as_slice())
            && in_sync(&a, &share).await
            && in_sync(&b, &share).await
    })
    .await;

    // The next index update B receives fails to be stored: A's is the first, since B has
    // nothing new to tell until it hears of the edit.
    ferry_node::fault::fail("index.store", 1);
    fs::write(da.path().join("notes.txt"), "tuesday, after the refusal").unwrap();
    wait_for(&[&a, &b], "b refused an update", || async { ferry_node::fault::failures_left("index.store") == 0 }).await;
    let started = std::time::Instant::now();
    wait_for(&[&a, &b], "the edit on b over the same connection", || async {
        fs::read(db.path().join("notes.txt")).ok().as_deref() == Some(b"tuesday, after the refusal".as_slice())
            && in_sync(&a, &share).await
            && in_sync(&b, &share).await
    })
    .await;
    assert!(started.elapsed() < FINISHED_WITHIN, "finished after {:?}", started.elapsed());
    a.node.shutdown().await;
    b.node.shutdown().await;
}
