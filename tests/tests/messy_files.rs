//! Messy files: a sparse file past 4 GiB arrives byte-identical and sparse; a file appended to
//! while it syncs ends with exactly the sender's final content, and the receiver never shows
//! content the sender never had.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

use ferry_e2e::messy::{disk_usage, free_bytes};
use ferry_e2e::*;

const MIB: u64 = 1 << 20;
/// The big file's length: past the 4 GiB boundary, where 32-bit offsets and sizes wrap.
const BIG: u64 = (4 << 30) + (512 << 20);
/// Free space the big-file test needs: both copies keep their holes (12 MiB of data each), so
/// this is room for the tests running beside it, not for 4.5 GiB (it was 12 GiB while the
/// receiver wrote zeros out; with less free the test skips).
const BIG_FREE: u64 = 1 << 30;
/// Most the receiver may allocate for the big file: its 12 MiB of data, rounded up generously
/// (a zero run written out instead of left as a hole would take far more).
const BIG_ALLOCATED: u64 = 64 * MIB;
/// How long the big file may take to arrive: the sender hashes 4.5 GiB and the receiver writes
/// and hashes it, in a debug build of the node on a shared 2-core machine.
const BIG_WAIT: std::time::Duration = std::time::Duration::from_secs(900);

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
    // Minutes, not seconds, on a debug build: bounded by BIG_WAIT, checked every second.
    let arrived = async {
        while !(fs::metadata(&target).is_ok_and(|m| m.len() == BIG) && in_sync(&b, &share).await) {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    };
    tokio::time::timeout(BIG_WAIT, arrived).await.expect("the big file on b within BIG_WAIT");
    let took = started.elapsed();
    assert_eq!(file_hash(&target), sent_hash, "byte-identical");
    assert!(disk_usage(&target) < BIG_ALLOCATED, "{} bytes allocated on b: holes written out", disk_usage(&target));
    let st = b.node.status().await.unwrap().shares.into_iter().find(|s| s.id == share).unwrap();
    eprintln!(
        "big file: {:.1} s to arrive; receiver uses {} MiB on disk for it; fetched {} MiB, reused {} MiB",
        took.as_secs_f64(),
        disk_usage(&target) / MIB,
        st.fetched_bytes / MIB,
        st.reused_bytes / MIB
    );
    a.node.shutdown().await;
    b.node.shutdown().await;
    drop((da, db));
}

/// Bytes appended per write, writes per burst, the most bursts, and the pause between bursts:
/// the file grows in bursts (a program writing its log), with pauses long enough for the
/// sender to index a version between them (a file that changes while it is read is read
/// again later, so one never quiet would wait for its writer to stop).
const APPEND: usize = 4096;
const BURST: usize = 64;
const MAX_BURSTS: usize = 20;
const PAUSE: std::time::Duration = std::time::Duration::from_millis(300);
/// Lengths the receiver must have shown before the writer stops early.
const LENGTHS_SEEN: usize = 4;
const START: usize = 24 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_appended_to_while_it_syncs_ends_with_the_final_content() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (a, b, da, db, share) = two_sharing().await;
    let path = da.path().join("app.log");
    // Every length the file can have is a prefix of this (each block distinct, so a mix of
    // two versions would show).
    let mut most = random_bytes(100, START);
    for i in 0..MAX_BURSTS * BURST {
        most.extend_from_slice(&random_bytes(1000 + i as u64, APPEND));
    }
    let most = Arc::new(most);
    fs::write(&path, &most[..START]).unwrap();

    let mut events = a.node.subscribe();
    let enough = Arc::new(AtomicBool::new(false));
    let writer = {
        let (path, most, enough) = (path.clone(), most.clone(), enough.clone());
        std::thread::spawn(move || {
            let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
            let mut n = 0;
            for _ in 0..MAX_BURSTS {
                if enough.load(Ordering::Relaxed) {
                    break;
                }
                for _ in 0..BURST {
                    let at = START + n * APPEND;
                    f.write_all(&most[at..at + APPEND]).unwrap();
                    n += 1;
                }
                // Load, not synchronisation: the writer's rhythm.
                std::thread::sleep(PAUSE);
            }
            n
        })
    };
    // Whatever b shows at the path, at any time, is content a had: the start plus whole blocks.
    let target = db.path().join("app.log");
    let mut seen = std::collections::BTreeSet::new();
    let check = |seen: &mut std::collections::BTreeSet<usize>| {
        if let Ok(got) = fs::read(&target) {
            let whole_blocks = got.len() >= START && (got.len() - START).is_multiple_of(APPEND);
            assert!(whole_blocks && most.starts_with(&got), "b shows content a never had ({} bytes)", got.len());
            seen.insert(got.len());
        }
    };
    while !writer.is_finished() {
        check(&mut seen);
        if seen.len() >= LENGTHS_SEEN {
            enough.store(true, Ordering::Relaxed);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let appends = writer.join().unwrap();
    let scans = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, ferry_node::Event::ScanFinished { .. }))
        .count();
    let final_content = most[..START + appends * APPEND].to_vec();
    assert_eq!(fs::read(&path).unwrap(), final_content);
    wait_for(&[&a, &b], "b has the final content", || async {
        check(&mut seen.clone());
        fs::read(&target).ok().is_some_and(|got| got == final_content)
            && in_sync(&a, &share).await
            && in_sync(&b, &share).await
    })
    .await;
    check(&mut seen);
    eprintln!("{appends} appends; a scanned {scans} times meanwhile; b showed {} lengths of the file", seen.len());
    // The sync ran while the file grew: a looked at it between bursts. (Whether b got a
    // version before the end depends on the machine's speed: the sender serves blocks of a
    // file only while it is as indexed, and reads a file that changed while it was read again
    // later, so a file that keeps growing syncs once its writer pauses long enough.)
    assert!(scans >= 2, "a scanned while the file grew");
    assert_eq!(tree(da.path()), tree(db.path()));
    a.node.shutdown().await;
    b.node.shutdown().await;
}
