//! Messy names, as users make them: a case-only rename, two names that differ only by case
//! arriving at a case-insensitive folder, one word in Unicode NFC and NFD, names of 255 bytes
//! of multi-byte UTF-8, paths 40 folders deep, and a path the receiver cannot hold.

use std::fs;
use std::path::Path;

use ferry_e2e::messy::{Mount, failed};
use ferry_e2e::*;

/// Both nodes in sync and the two trees byte-identical.
async fn settled(a: &TestNode, b: &TestNode, share: &str, da: &Path, db: &Path) -> bool {
    in_sync(a, share).await && in_sync(b, share).await && tree(da) == tree(db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_case_only_rename_syncs_as_a_rename() {
    let (a, b, da, db, share) = two_sharing().await;
    let data = random_bytes(1, 300_000);
    fs::write(da.path().join("a.txt"), &data).unwrap();
    wait_for(&[&a, &b], "a.txt on b", || async { settled(&a, &b, &share, da.path(), db.path()).await }).await;
    let fetched = b.node.status().await.unwrap().shares[0].fetched_bytes;

    fs::rename(da.path().join("a.txt"), da.path().join("A.txt")).unwrap();
    wait_for(&[&a, &b], "only A.txt on b", || async {
        settled(&a, &b, &share, da.path(), db.path()).await && !db.path().join("a.txt").exists()
    })
    .await;
    assert_eq!(fs::read(db.path().join("A.txt")).unwrap(), data);
    let names: Vec<String> = tree(db.path()).into_keys().collect();
    assert_eq!(names, vec!["A.txt".to_string()], "no conflict copy, no leftover");
    // A rename moves no content: b reused what it had.
    assert_eq!(b.node.status().await.unwrap().shares[0].fetched_bytes, fetched, "the rename fetched nothing");
    a.node.shutdown().await;
    b.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nfc_and_nfd_names_stay_two_distinct_files() {
    let (a, b, da, db, share) = two_sharing().await;
    let nfc = "caf\u{e9}.txt"; // é as one code point
    let nfd = "cafe\u{301}.txt"; // e + combining acute accent
    assert_ne!(nfc.as_bytes(), nfd.as_bytes());
    fs::write(da.path().join(nfc), b"composed").unwrap();
    fs::write(da.path().join(nfd), b"decomposed").unwrap();
    // Folders too: the same word in both forms names two folders.
    for (dir, text) in [("r\u{e9}sum\u{e9}", "NFC folder"), ("re\u{301}sume\u{301}", "NFD folder")] {
        fs::create_dir(da.path().join(dir)).unwrap();
        fs::write(da.path().join(dir).join("cv.txt"), text).unwrap();
    }
    wait_for(&[&a, &b], "both names on b", || async { settled(&a, &b, &share, da.path(), db.path()).await }).await;
    assert_eq!(fs::read(db.path().join(nfc)).unwrap(), b"composed");
    assert_eq!(fs::read(db.path().join(nfd)).unwrap(), b"decomposed");
    // An edit of one on b reaches a and leaves the other alone, with no renames back and forth.
    fs::write(db.path().join(nfd), b"decomposed, edited on b").unwrap();
    wait_for(&[&a, &b], "the edit on a", || async {
        fs::read(da.path().join(nfd)).ok().as_deref() == Some(b"decomposed, edited on b".as_slice())
            && settled(&a, &b, &share, da.path(), db.path()).await
    })
    .await;
    assert_eq!(fs::read(da.path().join(nfc)).unwrap(), b"composed");
    // Settled means settled: a full rescan on both changes nothing and sends nothing.
    let before = (counts(&a).await, counts(&b).await);
    full_rescan(&a).await;
    full_rescan(&b).await;
    wait_for(&[&a, &b], "still settled", || async { settled(&a, &b, &share, da.path(), db.path()).await }).await;
    assert_eq!((counts(&a).await, counts(&b).await), before, "no new change after the rescans");
    assert_eq!(tree(da.path()).len(), 6, "{:?}", tree(da.path()));
    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// What a node counted since it started (adds, changes, deletes, both ways).
async fn counts(n: &TestNode) -> serde_json::Value {
    serde_json::to_value(&n.node.status().await.unwrap().shares[0].summary.since_start).unwrap()
}

/// Runs a full rescan of every share of `n` and waits until one has finished.
async fn full_rescan(n: &TestNode) {
    let mut events = n.node.subscribe();
    n.node.rescan_all();
    let done = async { while !matches!(events.recv().await, Ok(ferry_node::Event::ScanFinished { .. })) {} };
    tokio::time::timeout(WAIT, done).await.expect("a full rescan");
}

/// A name of exactly `bytes` bytes from `c` (a multi-byte character) and ASCII padding.
fn long_name(c: char, bytes: usize, ext: &str) -> String {
    let mut s = String::new();
    while s.len() + c.len_utf8() + ext.len() <= bytes {
        s.push(c);
    }
    while s.len() + ext.len() < bytes {
        s.push('x');
    }
    s + ext
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn long_names_and_deep_paths_sync_or_are_listed_on_the_receiver() {
    let a = TestNode::start("alpha").await;
    let b = TestNode::start("beta").await;
    pair(&a, &b).await;
    let da = tempfile::tempdir().unwrap();
    // b's folder sits deeper than a's by about 1,000 bytes: a path that fits on a within
    // PATH_MAX (4,096 bytes with the folder) does not fit on b.
    let base = tempfile::tempdir().unwrap();
    let mut b_root = base.path().to_path_buf();
    for i in 0..4 {
        b_root.push(format!("{i}{}", "d".repeat(240)));
    }
    fs::create_dir_all(&b_root).unwrap();
    let share = share(&a, da.path(), &b, &b_root, None).await;

    // 255-byte names: 3-byte (CJK), 4-byte (emoji) and 2-byte (Cyrillic) characters.
    let names = [long_name('漢', 255, ".txt"), long_name('🦀', 255, ""), long_name('ж', 255, ".md")];
    for (i, n) in names.iter().enumerate() {
        assert_eq!(n.len(), 255);
        fs::write(da.path().join(n), random_bytes(i as u64, 10_000)).unwrap();
    }
    // 40 folders deep, about 3,000 bytes: fits on both.
    let deep: String = (0..40).map(|i| format!("{i:02}{}", "é".repeat(35))).collect::<Vec<_>>().join("/");
    fs::create_dir_all(da.path().join(&deep)).unwrap();
    fs::write(da.path().join(&deep).join("bottom.txt"), b"40 levels down").unwrap();
    // About 3,700 bytes: fits on a, not under b's deeper folder.
    let too_deep: String = (0..15).map(|i| format!("{i:02}{}", "z".repeat(240))).collect::<Vec<_>>().join("/");
    fs::create_dir_all(da.path().join(&too_deep)).unwrap();
    fs::write(da.path().join(&too_deep).join("far.txt"), b"too far for b").unwrap();
    assert!(b_root.join(&too_deep).as_os_str().len() > 4096 && da.path().join(&too_deep).as_os_str().len() < 4000);

    wait_for(&[&a, &b], "b holds what fits and lists what does not", || async {
        let items = failed(&b, &share).await;
        let listed = items.iter().any(|(p, r)| p.starts_with("00z") && r.contains("too long for this device"));
        listed
            && names.iter().all(|n| b_root.join(n).is_file())
            && fs::read(b_root.join(&deep).join("bottom.txt")).ok().as_deref() == Some(b"40 levels down".as_slice())
    })
    .await;
    for (i, n) in names.iter().enumerate() {
        assert_eq!(fs::read(b_root.join(n)).unwrap(), random_bytes(i as u64, 10_000), "{n}");
    }
    eprintln!("b lists {} items it cannot hold", failed(&b, &share).await.len());
    assert!(failed(&a, &share).await.is_empty(), "a holds everything it has");
    // Nothing lost on a; b is still up and serves: an edit on b reaches a.
    assert_eq!(fs::read(da.path().join(&too_deep).join("far.txt")).unwrap(), b"too far for b");
    fs::write(b_root.join(&names[0]), b"edited on b").unwrap();
    wait_for(&[&a, &b], "the edit on a", || async {
        fs::read(da.path().join(&names[0])).ok().as_deref() == Some(b"edited on b".as_slice())
    })
    .await;
    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// Makes a case-insensitive file system at `dir`: vfat, or ext4 with casefold (then the
/// folder gets `chattr +F`). Returns the mount and the folder to use, or every reason it could
/// not.
fn case_insensitive_mount(scratch: &Path) -> Result<(Mount, std::path::PathBuf), String> {
    let run = |cmd: &str, args: &[&str]| -> Result<(), String> {
        let out = std::process::Command::new(cmd).args(args).output().map_err(|e| format!("{cmd}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{cmd}: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    };
    let mut why = Vec::new();
    let dir = scratch.join("mnt");
    let img = scratch.join("vfat.img");
    let vfat = (|| {
        run("truncate", &["-s", "64M", img.to_str().unwrap()])?;
        run("mkfs.vfat", &[img.to_str().unwrap()])?;
        Mount::new(&["-o", "loop", img.to_str().unwrap()], &dir)
    })();
    match vfat {
        Ok(m) => return Ok((m, dir)),
        Err(e) => why.push(e),
    }
    let img = scratch.join("casefold.img");
    let ext4 = (|| {
        run("truncate", &["-s", "64M", img.to_str().unwrap()])?;
        run("mkfs.ext4", &["-q", "-O", "casefold", img.to_str().unwrap()])?;
        let m = Mount::new(&["-o", "loop", img.to_str().unwrap()], &dir)?;
        let folder = dir.join("ci");
        fs::create_dir(&folder).map_err(|e| e.to_string())?;
        run("chattr", &["+F", folder.to_str().unwrap()])?;
        Ok((m, folder))
    })();
    ext4.map_err(|e| {
        why.push(e);
        why.join("; ")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn names_differing_by_case_never_overwrite_each_other_on_a_case_insensitive_folder() {
    let scratch = tempfile::tempdir().unwrap();
    let (mount, folder) = match case_insensitive_mount(scratch.path()) {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED (case-insensitive folder): this machine cannot make one: {why}");
            return;
        }
    };
    let a = TestNode::start("alpha").await;
    let b = TestNode::start("beta").await;
    pair(&a, &b).await;
    let da = tempfile::tempdir().unwrap();
    fs::write(da.path().join("Report.txt"), b"upper").unwrap();
    fs::write(da.path().join("report.txt"), b"lower").unwrap();
    let share = share(&a, da.path(), &b, &folder, None).await;
    wait_for(&[&a, &b], "b holds one and a conflict copy or a failed item", || async {
        let names: Vec<String> = tree(&folder).into_keys().collect();
        let contents: Vec<Vec<u8>> = names.iter().map(|n| fs::read(folder.join(n)).unwrap_or_default()).collect();
        let both = contents.iter().any(|c| c == b"upper") && contents.iter().any(|c| c == b"lower");
        let one_listed = !failed(&b, &share).await.is_empty() && !names.is_empty();
        both || one_listed
    })
    .await;
    // Nothing lost on a, whatever b could hold.
    assert_eq!(fs::read(da.path().join("Report.txt")).unwrap(), b"upper");
    assert_eq!(fs::read(da.path().join("report.txt")).unwrap(), b"lower");
    a.node.shutdown().await;
    b.node.shutdown().await;
    drop(mount);
}
