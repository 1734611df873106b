//! Messy files: a sparse file past 4 GiB arrives byte-identical; a file appended to while it
//! syncs ends with exactly the sender's final content, and the receiver never shows content
//! the sender never had.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

use ferry_e2e::messy::{disk_usage, free_bytes};
use ferry_e2e::*;

const MIB: u64 = 1 << 20;
/// The big file's length: past the 4 GiB boundary, where 32-bit offsets and sizes wrap.
const BIG: u64 = (4 << 30) + (512 << 20);
/// Free space the big-file test needs: the receiver writes the file whole (holes are not kept
/// yet), with room for a temp file and for other tests running beside it.
const BIG_FREE: u64 = 12 << 30;

/// BLAKE3 of a file, read in 8 MiB pieces (not loaded whole).
fn file_hash(p: &Path) -> blake3::Hash {
    let mut f = fs::File::open(p).unwrap();
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 8 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sparse_file_past_4_gib_arrives_byte_identical() {
    let scratch = std::env::temp_dir();
    let free = free_bytes(&scratch);
    if free < BIG_FREE {
        eprintln!(
            "SKIPPED (file > 4 GiB): {} GiB free under {}, {} GiB needed",
            free >> 30,
            scratch.display(),
            BIG_FREE >> 30
        );
        return;
    }
    let (a, b, da, db, share) = two_sharing().await;
    // Written beside the share, then moved in: the scan sees it whole.
    let staging = da.path().join(".ferry").join("big-staging");
    {
        let mut f = fs::File::create(&staging).unwrap();
        // 4 MiB of data at the start, across the 4 GiB boundary, and at the end; holes between.
        for (seed, at) in [(1, 0), (2, (4 << 30) - 2 * MIB), (3, BIG - 4 * MIB)] {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&random_bytes(seed, (4 * MIB) as usize)).unwrap();
        }
        f.set_len(BIG).unwrap();
    }
    let sent_hash = file_hash(&staging);
    eprintln!("sender: {} bytes long, {} MiB on disk", BIG, disk_usage(&staging) / MIB);
    let started = Instant::now();
    fs::rename(&staging, da.path().join("disk.img")).unwrap();
    let target = db.path().join("disk.img");
    wait_for(&[&a, &b], "the big file on b", || async {
        fs::metadata(&target).is_ok_and(|m| m.len() == BIG) && in_sync(&b, &share).await
    })
    .await;
    let took = started.elapsed();
    assert_eq!(file_hash(&target), sent_hash, "byte-identical");
    let st = b.node.status().await.unwrap().shares.into_iter().find(|s| s.id == share).unwrap();
    eprintln!(
        "big file: {:.1} s to arrive; receiver uses {} MiB on disk for it; fetched {} MiB, reused {} MiB",
        took.as_secs_f64(),
        disk_usage(&target) / MIB,
        st.fetched_bytes / MIB,
        st.reused_bytes / MIB
    );
    // The zeros are one chunk repeated: fetched once, copied locally after that.
    assert!(st.fetched_bytes < 64 * MIB, "fetched {} bytes", st.fetched_bytes);
    a.node.shutdown().await;
    b.node.shutdown().await;
    drop((da, db));
}

/// Bytes appended per write, and writes: the file grows by 2 MiB while it syncs.
const APPEND: usize = 4096;
const APPENDS: u64 = 512;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_appended_to_while_it_syncs_ends_with_the_final_content() {
    let (a, b, da, db, share) = two_sharing().await;
    let path = da.path().join("app.log");
    // Big enough that the first sync is still going when the appends start.
    let start = random_bytes(100, 24 << 20);
    fs::write(&path, &start).unwrap();
    let mut final_content = start.clone();
    for i in 0..APPENDS {
        final_content.extend_from_slice(&random_bytes(1000 + i, APPEND));
    }
    let final_content = std::sync::Arc::new(final_content);

    // The writer appends (each block distinct, so a mix would show), then stops.
    let writer = {
        let path = path.clone();
        let fc = final_content.clone();
        std::thread::spawn(move || {
            let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
            for i in 0..APPENDS as usize {
                let at = start.len() + i * APPEND;
                f.write_all(&fc[at..at + APPEND]).unwrap();
                // Spread over about a second: load, not synchronisation.
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    // Whatever b shows at the path, at any time, is content a had: a prefix of the final
    // content at one of its lengths (the start, plus whole appended blocks).
    let target = db.path().join("app.log");
    let mut seen = std::collections::BTreeSet::new();
    let check = |seen: &mut std::collections::BTreeSet<usize>| {
        if let Ok(got) = fs::read(&target) {
            let whole_blocks = got.len() >= 24 << 20 && (got.len() - (24 << 20)) % APPEND == 0;
            assert!(
                whole_blocks && final_content.starts_with(&got),
                "b shows content a never had ({} bytes)",
                got.len()
            );
            seen.insert(got.len());
        }
    };
    while !writer.is_finished() {
        check(&mut seen);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    writer.join().unwrap();
    wait_for(&[&a, &b], "b has the final content", || async {
        check(&mut seen.clone());
        fs::read(&target).ok().is_some_and(|got| got == *final_content)
            && in_sync(&a, &share).await
            && in_sync(&b, &share).await
    })
    .await;
    check(&mut seen);
    eprintln!("lengths b showed: {}", seen.len());
    assert_eq!(fs::read(&path).unwrap(), *final_content);
    assert_eq!(tree(da.path()), tree(db.path()));
    a.node.shutdown().await;
    b.node.shutdown().await;
}
