//! A pull that failed on this device's side (here: the disk refused the temp file, as a full
//! disk does) is tried again by itself, without any new change or connection to wake it: the
//! share finishes once the disk takes writes again. Before, such a share stayed "need N" until
//! the next change or the hourly rescan.
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
