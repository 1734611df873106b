//! The pull fast paths (crates/ferry-node/src/share/fast.rs): many new files applied in groups
//! arrive byte-identical and indexed; a rename on one side is a rename on the other (same
//! inode, nothing fetched, nothing archived), also into another directory; a rename whose old
//! file was changed here meanwhile is not taken as a rename.

use std::fs;
use std::os::unix::fs::MetadataExt;

use ferry_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_new_files_and_renames_take_the_fast_paths() {
    let (a, b, da, db, share) = two_sharing().await;

    // More files than one group (256), in several directories, of varied sizes.
    for i in 0..700 {
        let d = da.path().join(format!("many/d{}", i % 7));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("f{i}.bin")), random_bytes(i as u64, 1 + (i * 37) % 5000)).unwrap();
    }
    let big = random_bytes(9999, 3 << 20);
    fs::write(da.path().join("big.bin"), &big).unwrap();
    wait_for(&[&a, &b], "many files on b", || async { tree(da.path()) == tree(db.path()) }).await;
    wait_for(&[&a, &b], "in sync", || async { in_sync(&a, &share).await && in_sync(&b, &share).await }).await;
    let names: Vec<String> = fs::read_dir(db.path().join("many/d3"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".ferry-tmp-")), "no temp left: {names:?}");

    // A rename into another directory: the same file on b moves (same inode), nothing fetched,
    // nothing archived.
    let inode = fs::metadata(db.path().join("big.bin")).unwrap().ino();
    let fetched = b.node.status().await.unwrap().shares[0].fetched_bytes;
    fs::create_dir_all(da.path().join("sub/deeper")).unwrap();
    fs::rename(da.path().join("big.bin"), da.path().join("sub/deeper/moved.bin")).unwrap();
    wait_for(&[&a, &b], "rename on b", || async {
        !db.path().join("big.bin").exists() && tree(da.path()) == tree(db.path())
    })
    .await;
    assert_eq!(fs::read(db.path().join("sub/deeper/moved.bin")).unwrap(), big);
    assert_eq!(fs::metadata(db.path().join("sub/deeper/moved.bin")).unwrap().ino(), inode, "renamed, not copied");
    assert_eq!(b.node.status().await.unwrap().shares[0].fetched_bytes, fetched, "nothing fetched");
    let versions = b.node.versions(&db.path().join("big.bin").display().to_string()).await.unwrap();
    assert!(versions.is_empty(), "a moved file is not archived: {versions:?}");
    wait_for(&[&a, &b], "in sync after rename", || async { in_sync(&a, &share).await && in_sync(&b, &share).await })
        .await;

    // Renaming back and forth keeps both sides identical and indexed.
    fs::rename(da.path().join("sub/deeper/moved.bin"), da.path().join("back.bin")).unwrap();
    fs::rename(da.path().join("many/d1/f1.bin"), da.path().join("many/d2/f1-moved.bin")).unwrap();
    wait_for(&[&a, &b], "second renames on b", || async { tree(da.path()) == tree(db.path()) }).await;
    assert_eq!(fs::read(db.path().join("back.bin")).unwrap(), big);
    wait_for(&[&a, &b], "in sync at the end", || async { in_sync(&a, &share).await && in_sync(&b, &share).await })
        .await;

    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// Bytes both nodes sent each other so far on their current connection.
async fn wire_bytes(a: &TestNode, b: &TestNode) -> u64 {
    let sent = |n: &TestNode, other: String| {
        let node = n.node.clone();
        async move {
            node.devices().await.unwrap().into_iter().find(|d| d.id == other).and_then(|d| d.bytes_sent).unwrap_or(0)
        }
    };
    sent(a, b.id()).await + sent(b, a.id()).await
}

/// A big file's chunk list (35 bytes per chunk: ~4.5 KiB for 32 MiB) is not sent again for a
/// rename, nor echoed back by the device that applied it; an edit sends only the changed
/// chunks' entries and fetches only the changed chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn big_files_renamed_or_edited_travel_without_their_chunk_lists() {
    let (a, b, da, db, share) = two_sharing().await;
    let mut big = random_bytes(31337, 32 << 20);
    fs::write(da.path().join("big.bin"), &big).unwrap();
    let settled =
        || async { tree(da.path()) == tree(db.path()) && in_sync(&a, &share).await && in_sync(&b, &share).await };
    wait_for(&[&a, &b], "big.bin on b", settled).await;

    // A rename: both index updates (a's, and b's echo) name the content instead of listing it.
    let before = wire_bytes(&a, &b).await;
    fs::rename(da.path().join("big.bin"), da.path().join("renamed.bin")).unwrap();
    wait_for(&[&a, &b], "rename on b, echoed to a", settled).await;
    let rename_bytes = wire_bytes(&a, &b).await - before;
    assert_eq!(fs::read(db.path().join("renamed.bin")).unwrap(), big);
    // Whole lists would be 2 x ~4.5 KiB; records by reference are a few hundred bytes.
    assert!(rename_bytes < 4096, "a rename cost {rename_bytes} bytes on the wire");

    // One byte changed in the middle, in place: b rebuilds the list from its own and fetches
    // the changed chunk(s) only (at most two 1 MiB chunks around the edit).
    let fetched = b.node.status().await.unwrap().shares[0].fetched_bytes;
    big[16 << 20] ^= 0xff;
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::OpenOptions::new().write(true).open(da.path().join("renamed.bin")).unwrap();
        f.seek(SeekFrom::Start(16 << 20)).unwrap();
        f.write_all(&big[16 << 20..(16 << 20) + 1]).unwrap();
    }
    wait_for(&[&a, &b], "edit on b, echoed to a", settled).await;
    assert_eq!(fs::read(db.path().join("renamed.bin")).unwrap(), big);
    let delta = b.node.status().await.unwrap().shares[0].fetched_bytes - fetched;
    assert!(delta > 0 && delta <= 2 << 20, "fetched {delta} bytes for a one-byte edit");

    a.node.shutdown().await;
    b.node.shutdown().await;
}
