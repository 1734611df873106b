//! One writer per share: an operation that changes a share's index (here the republish of a
//! refused mass delete) and the scan of a local edit cannot interleave, so neither loses the
//! other's update.
//!
//! The test holds the republish between its read of the index and its commit (a fault point),
//! edits a file meanwhile, then lets it go. When the republish ran beside the share's worker
//! (before the share actor), the worker indexed the edit inside that window and the republish
//! then committed the file's old record over it: the index named content that was no longer on
//! disk, the other device could never fetch it, and the edit did not reach it.
//!
//! Its own test binary: fault points are process-wide.

use std::fs;
use std::time::Duration;

use ferry_e2e::*;
use ferry_node::Event;

/// How long the edit gets to be indexed while the republish is held. With one writer it is
/// never indexed in that window (the writer is busy with the republish), so the wait runs out;
/// with two writers the scan lands within milliseconds (50 ms debounce).
const SCAN_WINDOW: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scan_cannot_slip_between_a_republish_read_and_its_commit() {
    let (a, b, da, db, share) = two_sharing().await;
    for i in 0..20 {
        fs::write(da.path().join(format!("file{i:02}.txt")), format!("content {i}")).unwrap();
    }
    wait_synced(&a, &b, da.path(), db.path(), &share, "20 files on b").await;

    // B is away while A deletes 15 files: the burst reaches B at once and is held there.
    let (b, _keep) = delete_while_away(&a, b, 15, || {
        for i in 0..15 {
            fs::remove_file(da.path().join(format!("file{i:02}.txt"))).unwrap();
        }
    })
    .await;
    let prompt = wait_some(&[&a, &b], "mass-delete prompt on b", || mass_delete_prompt(&b)).await;

    // Refuse on B, holding the republish after it read the index.
    let held = ferry_node::fault::hold("republish.after_read");
    let mut events = b.node.subscribe();
    let bn = b.node.clone();
    let reject = tokio::spawn(async move { bn.reject(prompt.id).await });
    assert!(held.reached(Duration::from_secs(30)).await, "the republish reached its hold point");

    // The user edits one of the kept files meanwhile.
    let edited = db.path().join("file03.txt");
    fs::write(&edited, "edited on b while the republish runs").unwrap();
    let indexed_in_window = tokio::time::timeout(SCAN_WINDOW, async {
        loop {
            match events.recv().await {
                Ok(Event::ScanFinished { changes, .. }) if changes > 0 => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => std::future::pending::<()>().await,
            }
        }
    })
    .await
    .is_ok();
    held.release();
    reject.await.unwrap().expect("reject succeeds");

    // Every kept file is back on A, the edit included, and both sides are in sync: B's index
    // agrees with B's disk.
    wait_synced(&a, &b, da.path(), db.path(), &share, "a has b's files and the edit, both in sync").await;
    let on_a = fs::read_to_string(da.path().join("file03.txt")).unwrap();
    assert_eq!(on_a, "edited on b while the republish runs");
    assert_eq!(tree(da.path()).len(), 20);
    assert!(!indexed_in_window, "the share's writer indexed an edit while another operation held its index");
    a.node.shutdown().await;
    b.node.shutdown().await;
}
