//! Two and three in-process nodes on loopback: pairing, sharing, and every kind of change
//! arriving byte-identical, with deletes and replaced content archived as versions.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use ferry_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pair_share_and_sync_every_kind_of_change() {
    let a = TestNode::start("alpha").await;
    let b = TestNode::start("beta").await;
    pair(&a, &b).await;

    let da = tempfile::tempdir().unwrap();
    let db = tempfile::tempdir().unwrap();
    // Content present on both sides before sharing is merged, never deleted.
    fs::write(da.path().join("from-a.txt"), b"a was here").unwrap();
    fs::write(db.path().join("from-b.txt"), b"b was here").unwrap();
    let share = share(&a, da.path(), &b, db.path(), None).await;
    wait_for(&[&a, &b], "initial merge", || async {
        db.path().join("from-a.txt").exists() && da.path().join("from-b.txt").exists()
    })
    .await;

    // A nested tree, an empty dir, an executable, a symlink and a multi-chunk file.
    for i in 0..200 {
        let d = da.path().join(format!("tree/d{}/e{}", i % 10, i % 3));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("f{i}.txt")), format!("file {i}").repeat(i + 1)).unwrap();
    }
    fs::create_dir_all(da.path().join("empty/dir")).unwrap();
    fs::write(da.path().join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(da.path().join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("tree/d1", da.path().join("link")).unwrap();
    let big = random_bytes(1, 6 << 20);
    fs::write(da.path().join("big.bin"), &big).unwrap();

    wait_for(&[&a, &b], "tree on b", || async { tree(da.path()) == tree(db.path()) }).await;
    wait_for(&[&a, &b], "in_sync on both", || async { in_sync(&a, &share).await && in_sync(&b, &share).await }).await;
    assert_eq!(fs::read(db.path().join("big.bin")).unwrap(), big);
    assert_eq!(fs::read_link(db.path().join("link")).unwrap().to_str(), Some("tree/d1"));
    let mode = fs::metadata(db.path().join("run.sh")).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "executable bit synced");
    let mt_a = fs::metadata(da.path().join("big.bin")).unwrap().modified().unwrap();
    let mt_b = fs::metadata(db.path().join("big.bin")).unwrap().modified().unwrap();
    assert_eq!(mt_a, mt_b, "mtime synced");

    // Rename of a large file: content is reused from disk, nothing fetched.
    let before = b.node.status().await.unwrap().shares[0].fetched_bytes;
    fs::rename(da.path().join("big.bin"), da.path().join("moved.bin")).unwrap();
    wait_for(&[&a, &b], "rename on b", || async {
        !db.path().join("big.bin").exists()
            && db.path().join("moved.bin").exists()
            && tree(da.path()) == tree(db.path())
    })
    .await;
    let after = b.node.status().await.unwrap().shares[0].fetched_bytes;
    assert_eq!(after - before, 0, "a rename must not transfer content");
    assert_eq!(fs::read(db.path().join("moved.bin")).unwrap(), big);

    // Edit on B flows back to A; the replaced content is archived on A.
    fs::write(db.path().join("from-a.txt"), b"edited on b").unwrap();
    wait_for(&[&a, &b], "edit on a", || async {
        fs::read(da.path().join("from-a.txt")).unwrap_or_default() == b"edited on b"
    })
    .await;
    let versions = a.node.versions(&da.path().join("from-a.txt").display().to_string()).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].reason, "replaced");
    assert_eq!(fs::read(&versions[0].file).unwrap(), b"a was here");

    // Delete on A: gone on B, archived there with its content.
    fs::remove_file(da.path().join("from-b.txt")).unwrap();
    fs::remove_dir_all(da.path().join("tree/d3")).unwrap();
    wait_for(&[&a, &b], "delete on b", || async { tree(da.path()) == tree(db.path()) }).await;
    assert!(!db.path().join("from-b.txt").exists());
    let versions = b.node.versions(&db.path().join("from-b.txt").display().to_string()).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].reason, "deleted");
    assert_eq!(fs::read(&versions[0].file).unwrap(), b"b was here");

    // Ping works and reports a round trip.
    let p = a.node.ping("beta").await.unwrap();
    assert!(p.rtt_ms >= 0.0 && p.rtt_ms < 5000.0);

    a.node.shutdown().await;
    b.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_edits_keep_both_and_peers_reconnect_after_restart() {
    let (a, b, da, db, share) = two_sharing().await;
    fs::write(da.path().join("notes.txt"), b"base").unwrap();
    wait_for(&[&a, &b], "base on b", || async {
        fs::read(db.path().join("notes.txt")).ok().as_deref() == Some(b"base")
    })
    .await;
    let a_short = a.id()[..7].to_string();

    // B goes away; both edit the same file; B's edit is later, so B's wins everywhere and
    // A's edit survives as a conflict copy on both.
    let (home_b, guard_b) = b.stop().await;
    let t0 = std::time::SystemTime::now();
    let set = |p: &std::path::Path, data: &[u8], t: std::time::SystemTime| {
        fs::write(p, data).unwrap();
        fs::File::options().write(true).open(p).unwrap().set_modified(t).unwrap();
    };
    set(&da.path().join("notes.txt"), b"edited on alpha", t0);
    set(&db.path().join("notes.txt"), b"edited on beta", t0 + std::time::Duration::from_secs(10));
    // Wait until A has indexed its edit, so it is a real concurrent version.
    wait_for(&[&a], "a indexed its edit", || async {
        a.node.status().await.unwrap().shares[0].state == "idle"
            && fs::read(da.path().join("notes.txt")).unwrap() == b"edited on alpha"
    })
    .await;

    let b = TestNode::start_at("beta", &home_b).await;
    let _keep = guard_b;
    wait_for(&[&a, &b], "reconnected", || async { connected(&a, &b.id()).await && connected(&b, &a.id()).await }).await;
    let conflict_files = |root: &std::path::Path| -> Vec<String> {
        tree(root).into_keys().filter(|k| k.contains(".sync-conflict-")).collect()
    };
    wait_for(&[&a, &b], "conflict resolved identically on both", || async {
        tree(da.path()) == tree(db.path()) && conflict_files(da.path()).len() == 1
    })
    .await;
    assert_eq!(fs::read(da.path().join("notes.txt")).unwrap(), b"edited on beta");
    let copy = &conflict_files(da.path())[0];
    assert!(copy.starts_with("notes.sync-conflict-") && copy.ends_with(&format!("-{a_short}.txt")), "{copy}");
    assert_eq!(fs::read(da.path().join(copy)).unwrap(), b"edited on alpha");
    assert_eq!(fs::read(db.path().join(copy)).unwrap(), b"edited on alpha");
    wait_for(&[&a, &b], "in sync", || async { in_sync(&a, &share).await && in_sync(&b, &share).await }).await;

    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// Regression: a conflict whose copy name is already taken (the same copy, made elsewhere,
/// arrived first) blocked the path forever: the losing device could not rename its file onto
/// the name and failed the pull of that path on every pass. Now its content is kept as a
/// version instead and the devices converge (`ferry_engine::pull::copy_name_taken`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conflict_copy_that_arrived_first_does_not_block_the_path() {
    let (a, b, da, db, share) = two_sharing().await;
    fs::write(da.path().join("notes.txt"), b"base").unwrap();
    wait_for(&[&a, &b], "base on b", || async {
        fs::read(db.path().join("notes.txt")).ok().as_deref() == Some(b"base")
    })
    .await;
    let set = |p: &std::path::Path, data: &[u8], t: std::time::SystemTime| {
        fs::write(p, data).unwrap();
        fs::File::options().write(true).open(p).unwrap().set_modified(t).unwrap();
    };
    // A whole second, so the copy's name (stamped to the second) is known here.
    let t0 = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let stamp = time::OffsetDateTime::from(t0)
        .format(time::macros::format_description!("[year][month][day]-[hour][minute][second]"))
        .unwrap();
    let copy = format!("notes.sync-conflict-{stamp}-{}.txt", &a.id()[..7]);

    // B goes away; A edits (and will lose: B's edit is later).
    let (home_b, guard_b) = b.stop().await;
    set(&da.path().join("notes.txt"), b"edited on alpha", t0);
    wait_for(&[&a], "a indexed its edit", || async {
        a.node.status().await.unwrap().shares[0].state == "idle"
            && fs::read(da.path().join("notes.txt")).unwrap() == b"edited on alpha"
    })
    .await;
    // Meanwhile B edits too, and already holds the copy A's loss will make (as if another
    // device had made it first): both reach A in one index update, the copy first.
    set(&db.path().join("notes.txt"), b"edited on beta", t0 + std::time::Duration::from_secs(10));
    fs::write(db.path().join(&copy), b"edited on alpha").unwrap();

    let b = TestNode::start_at("beta", &home_b).await;
    let _keep = guard_b;
    wait_for(&[&a, &b], "converged, the copy's name taken", || async {
        fs::read(da.path().join("notes.txt")).ok().as_deref() == Some(b"edited on beta")
            && tree(da.path()) == tree(db.path())
            && in_sync(&a, &share).await
            && in_sync(&b, &share).await
    })
    .await;
    assert_eq!(fs::read(da.path().join(&copy)).unwrap(), b"edited on alpha");
    let conflicts: Vec<String> = tree(da.path()).into_keys().filter(|k| k.contains(".sync-conflict-")).collect();
    assert_eq!(conflicts, vec![copy], "no second copy");
    // A's losing content is kept in its history.
    let kept = a.node.versions(&da.path().join("notes.txt").display().to_string()).await.unwrap();
    assert!(kept.iter().any(|v| fs::read(&v.file).ok().as_deref() == Some(b"edited on alpha")), "{kept:?}");

    a.node.shutdown().await;
    b.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_devices_converge() {
    let a = TestNode::start("alpha").await;
    let b = TestNode::start("beta").await;
    let c = TestNode::start("gamma").await;
    pair(&a, &b).await;
    pair(&a, &c).await;
    let (da, db, dc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let id = share(&a, da.path(), &b, db.path(), None).await;
    accept_share_offer(&a, &c, &id, dc.path()).await;
    fs::write(da.path().join("hello.txt"), b"to everyone").unwrap();
    fs::write(db.path().join("from-b.txt"), b"b to everyone").unwrap();
    wait_for(&[&a, &b, &c], "all three identical", || async {
        let t = tree(da.path());
        t.len() == 2 && t == tree(db.path()) && t == tree(dc.path())
    })
    .await;
    for n in [&a, &b, &c] {
        n.node.shutdown().await;
    }
}
