//! A file of long zero runs and a repeated 1 MiB pattern (a disk image, in small) syncs with
//! each distinct chunk crossing the network once, and arrives sparse.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::Instant;

use ferry_e2e::*;
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;

/// Writes `mib` MiB at `path`: blocks of the same 1 MiB pseudo-random pattern and runs of zeros
/// (left as holes), ending in zeros. A quarter of it is pattern.
fn write_image(path: &Path, mib: u64) {
    let pattern = random_bytes(42, MIB as usize);
    let f = fs::File::create(path).unwrap();
    let mut at = 0;
    while at < mib {
        // 4 MiB of pattern, then 12 MiB of zeros (a hole: nothing written).
        for i in 0..4.min(mib - at) {
            f.write_all_at(&pattern, (at + i) * MIB).unwrap();
        }
        at += 16;
    }
    f.set_len(mib * MIB).unwrap();
    f.sync_all().unwrap();
}

/// The bytes of the distinct chunks of `path` that are not all zeros: what must cross.
fn distinct_data(path: &Path) -> u64 {
    let c = ferry_fs::chunk_file(path).unwrap();
    let mut seen = HashSet::new();
    let zero = |len: u32| ferry_proto::ChunkHash::of(&vec![0u8; len as usize]);
    c.chunks.iter().filter(|c| c.hash != zero(c.len) && seen.insert(c.hash)).map(|c| c.len as u64).sum()
}

fn sha256(path: &Path) -> Vec<u8> {
    Sha256::digest(fs::read(path).unwrap()).to_vec()
}

async fn sync_image(mib: u64) {
    let (a, b, da, db, share) = two_sharing().await;
    // Written beside the share and moved in whole, so the scan sees it complete.
    let staging = tempfile::tempdir_in(da.path().parent().unwrap()).unwrap();
    let src = staging.path().join("disk.img");
    write_image(&src, mib);
    let need = distinct_data(&src);
    let before = b.node.status().await.unwrap().shares[0].fetched_bytes;
    let started = Instant::now();
    fs::rename(&src, da.path().join("disk.img")).unwrap();
    let dst = db.path().join("disk.img");
    wait_for(&[&a, &b], "image on b", || async { fs::metadata(&dst).is_ok_and(|m| m.len() == mib * MIB) }).await;
    wait_for(&[&a, &b], "in sync", || async { in_sync(&a, &share).await && in_sync(&b, &share).await }).await;
    let took = started.elapsed();
    let st = b.node.status().await.unwrap().shares[0].clone();
    let fetched = st.fetched_bytes - before;
    let on_disk = fs::metadata(&dst).unwrap().blocks() * 512;
    println!(
        "{mib} MiB image: synced in {took:.2?}, fetched {:.2} MiB (distinct data {:.2} MiB), reused {} MiB, \
         {:.1} MiB allocated on b",
        fetched as f64 / MIB as f64,
        need as f64 / MIB as f64,
        st.reused_bytes / MIB,
        on_disk as f64 / MIB as f64
    );
    assert_eq!(sha256(&dst), sha256(&da.path().join("disk.img")));
    assert!(fetched <= need, "each distinct chunk crosses once: fetched {fetched}, distinct {need}");
    assert!(fetched <= 8 * MIB, "fetched {fetched} bytes");
    // A quarter of the file is data; the zeros must not be allocated (ext4 and most Linux file
    // systems keep holes).
    assert!(on_disk < mib * MIB / 2, "{on_disk} bytes allocated for {mib} MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sparse_image_with_repeats_crosses_once_and_stays_sparse() {
    sync_image(64).await;
}

/// A measurement, not a check to run every time:
/// `FERRY_IMAGE_MIB=1024 cargo test -p ferry-e2e --test sparse -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn measure_a_large_sparse_image() {
    let mib = std::env::var("FERRY_IMAGE_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    sync_image(mib).await;
}

/// The same through a one-shot send: the receiver's staged file is built by the same pipeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sparse_image_sent_crosses_once_and_stays_sparse() {
    use ferry_e2e::sends::*;
    let (a, b) = two_nodes().await;
    b.node.device_auto_accept("alpha", true).await.unwrap();
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("disk.img");
    write_image(&file, 64);
    let need = distinct_data(&file);
    let t = send(&a, &b, &[&file]).await;
    wait_state(&a, &b, &t.id, "done").await;
    let got = inbox(&b).join("disk.img");
    assert_eq!(sha256(&got), sha256(&file));
    let wire = transfer(&b, &t.id).await.unwrap().wire_bytes;
    assert!(wire <= need, "each distinct chunk crosses once: {wire} on the wire, distinct {need}");
    let on_disk = fs::metadata(&got).unwrap().blocks() * 512;
    assert!(on_disk < 32 * MIB, "{on_disk} bytes allocated for 64 MiB");
}
