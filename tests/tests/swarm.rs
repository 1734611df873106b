//! Devices fetching the same file serve each other the chunks they already hold (issue 17's
//! W10, `crates/ferry-node/src/swarm.rs`): the device that made the file does not send it whole
//! to every other member.
//!
//! Its own test binary: it arms a process-wide fault point.

use std::fs;
use std::time::Duration;

use ferry_e2e::*;

/// Chunks `n` heard that other devices hold of files of the share they are still downloading.
async fn peer_chunks(n: &TestNode, share: &str) -> u64 {
    n.node.status().await.unwrap().shares.iter().find(|s| s.id == share).map_or(0, |s| s.peer_chunks)
}

/// Origin alpha, receivers beta (first) and gamma, delta (later). Alpha serves a few blocks and
/// is then held (a fault point on serving live files), so beta is stuck part-way with some
/// chunks written; gamma and delta, resumed once they heard of beta's chunks, must get those
/// from beta. Then alpha is let go and everyone must end with alpha's exact bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receivers_serve_each_other_chunks_of_a_file_they_are_still_fetching() {
    let (nodes, dirs, share) = mesh(&["alpha", "beta", "gamma", "delta"]).await;
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let (a, b, late) = (&nodes[0], &nodes[1], &nodes[2..]);
    for n in late {
        n.node.set_paused(true).await.unwrap();
    }
    // More blocks than beta asks for at once (16), so its first chunk is among them and it
    // writes some; far fewer than the file has (~128 of 256 KiB on average), so it cannot end.
    let held = ferry_node::fault::hold_after("serve.live_block", 24);
    let content = random_bytes(17, 32 << 20);
    fs::write(dirs[0].path().join("big.bin"), &content).unwrap();
    assert!(held.reached(Duration::from_secs(60)).await, "alpha served its blocks and is held");
    wait_for(&refs, "the late devices heard of beta's chunks", || async {
        for n in late {
            if peer_chunks(n, &share).await == 0 {
                return false;
            }
        }
        true
    })
    .await;
    assert_eq!(served_bytes(b, &share).await, 0, "nobody asked beta yet");
    for n in late {
        n.node.set_paused(false).await.unwrap();
    }
    // Alpha serves nothing now: whatever the late devices get comes from beta's download.
    wait_for(&refs, "beta served chunks of its download", || async { served_bytes(b, &share).await > 0 }).await;
    held.release();
    let want = blake3::hash(&content);
    wait_for(&refs, "every device has the file", || async {
        dirs.iter().all(|d| fs::read(d.path().join("big.bin")).is_ok_and(|got| blake3::hash(&got) == want))
    })
    .await;
    let mut others = 0;
    for n in &nodes[1..] {
        others += served_bytes(n, &share).await;
    }
    let origin = served_bytes(a, &share).await;
    eprintln!("file {} bytes: alpha served {origin}, the receivers {others}", content.len());
    assert!(others > 0);
    for n in nodes {
        n.node.shutdown().await;
    }
}
