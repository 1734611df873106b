//! Devices of a share fetching one file at the same time (issue 17's W10,
//! `crates/ferry-node/src/swarm.rs`): each ends with the exact file, and the origin sends far
//! less than one copy per receiver. (Apart from `swarm.rs`, which arms a process-wide fault
//! point.)

use std::fs;

use ferry_e2e::*;

/// Three receivers fetching one file at once, nothing held: every copy exact. Prints how much
/// the origin sent against the file's size (issue 17 W10's target: at most 3x for nine
/// receivers; without the swarm, one copy per receiver).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receivers_fetching_together_each_get_the_exact_file() {
    let (nodes, dirs, share) = mesh(&["alpha", "beta", "gamma", "delta"]).await;
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let content = random_bytes(18, 64 << 20);
    fs::write(dirs[0].path().join("big.bin"), &content).unwrap();
    let want = blake3::hash(&content);
    wait_for(&refs, "every device has the file", || async {
        dirs.iter().all(|d| fs::read(d.path().join("big.bin")).is_ok_and(|got| blake3::hash(&got) == want))
    })
    .await;
    let (origin, others) = served_then_stop(nodes, &share).await;
    eprintln!(
        "file {} MiB: the origin sent {:.2}x the file, the receivers {others:?} bytes",
        content.len() >> 20,
        origin as f64 / content.len() as f64
    );
}

/// 1,000 small new files on the origin, three receivers: every tree identical. Prints how much
/// the origin sent against the files' total size.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receivers_fetching_many_small_files_together_get_them_all() {
    let (nodes, dirs, share) = mesh(&["alpha", "beta", "gamma", "delta"]).await;
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let mut total = 0;
    for i in 0..1000u64 {
        let d = dirs[0].path().join(format!("d{}", i % 10));
        fs::create_dir_all(&d).unwrap();
        let data = random_bytes(i, 1024 + (i as usize * 97) % 8192);
        total += data.len() as u64;
        fs::write(d.join(format!("f{i}.bin")), data).unwrap();
    }
    wait_for(&refs, "every device has every file", || async {
        let want = tree(dirs[0].path());
        want.len() == 1010 && dirs[1..].iter().all(|d| tree(d.path()) == want)
    })
    .await;
    let (origin, others) = served_then_stop(nodes, &share).await;
    eprintln!(
        "{total} bytes in 1,000 files: the origin sent {:.2}x, the receivers {others:?} bytes",
        origin as f64 / total as f64
    );
}

/// What the origin (the first node) and each receiver served of `share`; then stops them all.
async fn served_then_stop(nodes: Vec<TestNode>, share: &str) -> (u64, Vec<u64>) {
    let mut others = Vec::new();
    for n in &nodes[1..] {
        others.push(served_bytes(n, share).await);
    }
    let origin = served_bytes(&nodes[0], share).await;
    for n in nodes {
        n.node.shutdown().await;
    }
    (origin, others)
}
