//! Crashes leave no partial files, share modes hold, and compact index references from a peer
//! are checked (hostile peers: `safety_peer.rs`; the rogue peer is `ferry_e2e::rogue`).

use std::fs;

use ferry_e2e::rogue::*;
use ferry_e2e::*;
use ferry_node::Event;
use ferry_node::api::InviteDto;
use ferry_proto::wire::{ChunksFrom, ErrorCode, Message, ShareAnnounce};
use ferry_proto::{ChunkHash, FileKind, FileRecord, Seq};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_temp_files_are_removed_at_start_and_never_synced() {
    let a = TestNode::start("alpha").await;
    let da = tempfile::tempdir().unwrap();
    fs::create_dir_all(da.path().join("sub/deeper")).unwrap();
    fs::write(da.path().join("keep.txt"), b"keep").unwrap();
    fs::write(da.path().join("sub/real.txt"), b"real").unwrap();
    let share = add_share(&a, da.path(), None).await;
    wait_for(&[&a], "share scanned", || async {
        share_idle(&a).await && a.node.status().await.unwrap().shares[0].files == 2
    })
    .await;

    // What a crash in the middle of a transfer leaves: temp files beside their targets, one
    // of them half written. (Written while the node runs: it must neither index nor remove
    // them until it restarts.)
    let temps = [".ferry-tmp-foo-123", "sub/.ferry-tmp-real.txt-00000000deadbeef", "sub/deeper/.ferry-tmp-big.bin-1"];
    fs::write(da.path().join(temps[0]), b"").unwrap();
    fs::write(da.path().join(temps[1]), random_bytes(3, 100_000)).unwrap();
    fs::write(da.path().join(temps[2]), random_bytes(4, 10)).unwrap();
    std::os::unix::fs::symlink("/etc", da.path().join("sub/.ferry-tmp-link-2")).unwrap();
    let (home, guard) = a.stop().await;
    for t in temps {
        assert!(da.path().join(t).exists(), "{t} vanished before the restart");
    }

    let a = TestNode::start_at("alpha", &home).await;
    let _guard = guard;
    wait_for(&[&a], "temp files removed", || async {
        temps.iter().all(|t| !da.path().join(t).exists())
            && fs::symlink_metadata(da.path().join("sub/.ferry-tmp-link-2")).is_err()
    })
    .await;
    wait_for(&[&a], "rescanned", || async { share_idle(&a).await }).await;
    assert_eq!(fs::read(da.path().join("keep.txt")).unwrap(), b"keep");
    assert_eq!(fs::read(da.path().join("sub/real.txt")).unwrap(), b"real");
    assert!(da.path().join("sub/deeper").is_dir());
    assert_eq!(a.node.status().await.unwrap().shares[0].files, 2, "a temp file was indexed");

    // In a two-device share, temp files in A's folder never reach B.
    let b = TestNode::start("beta").await;
    pair(&a, &b).await;
    let db = tempfile::tempdir().unwrap();
    accept_share_offer(&a, &b, &share.to_string(), db.path()).await;
    wait_for(&[&a, &b], "initial sync", || async { db.path().join("sub/real.txt").exists() }).await;
    fs::write(da.path().join(".ferry-tmp-x"), b"not for syncing").unwrap();
    fs::write(da.path().join("sub/.ferry-tmp-y-1"), b"nor this").unwrap();
    fs::create_dir_all(da.path().join(".ferry-tmp-dir")).unwrap();
    fs::write(da.path().join(".ferry-tmp-dir/inside.txt"), b"nor this").unwrap();
    fs::write(da.path().join("after.txt"), b"later, legit").unwrap();
    let is_temp = |k: &String| k.split('/').any(|c| c.starts_with(".ferry-tmp-"));
    wait_for(&[&a, &b], "after.txt and the rest on b", || async {
        let want: std::collections::BTreeMap<_, _> = tree(da.path()).into_iter().filter(|(k, _)| !is_temp(k)).collect();
        tree(db.path()) == want
    })
    .await;
    wait_for(&[&a, &b], "in sync", || async {
        in_sync(&a, &share.to_string()).await && in_sync(&b, &share.to_string()).await
    })
    .await;
    let on_b = names(db.path());
    assert!(!on_b.iter().any(is_temp), "a temp file reached b: {on_b:?}");
    assert_eq!(b.node.status().await.unwrap().shares[0].files, 3);

    a.node.shutdown().await;
    b.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receive_only_and_send_only_modes() {
    let a = TestNode::start("alpha").await;
    let b = TestNode::start("beta").await;
    pair(&a, &b).await;

    // --- A send-only: A's changes reach B, B's never reach A.
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s1 = share(&a, da.path(), &b, db.path(), Some("send-only")).await;
    fs::write(da.path().join("a1.txt"), b"from a").unwrap();
    wait_for(&[&a, &b], "a1 on b", || async { fs::read(db.path().join("a1.txt")).ok().as_deref() == Some(b"from a") })
        .await;
    wait_for(&[&a, &b], "s1 in sync", || async { in_sync(&a, &s1).await && in_sync(&b, &s1).await }).await;
    fs::write(db.path().join("a1.txt"), b"edited on b").unwrap();
    fs::write(db.path().join("b1.txt"), b"from b").unwrap();
    // A has received B's edit once it no longer considers B up to date with it.
    wait_for(&[&a, &b], "a knows of b's edit", || async {
        let st = a.node.status().await.unwrap();
        let s = st.shares.iter().find(|s| s.id == s1).unwrap();
        s.state == "idle" && s.need == 0 && !s.in_sync
    })
    .await;
    fs::write(da.path().join("a2.txt"), b"later from a").unwrap();
    wait_for(&[&a, &b], "a2 on b", || async { db.path().join("a2.txt").exists() }).await;
    // A scanned a2 after B's index arrived, and the pull that index asked for ran no later
    // than that scan's round: once A is idle again, it has had its chance to apply.
    wait_for(&[&a], "a idle", || async { share_idle(&a).await }).await;
    assert_eq!(fs::read(da.path().join("a1.txt")).unwrap(), b"from a", "send-only share applied a remote edit");
    assert!(!da.path().join("b1.txt").exists(), "send-only share received a file");
    assert_eq!(fs::read(db.path().join("a1.txt")).unwrap(), b"edited on b", "b's edit was reverted");

    // --- A receive-only: B's changes reach A, A's never reach B.
    let (ea, eb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s2 = share(&a, ea.path(), &b, eb.path(), Some("receive-only")).await;
    fs::write(ea.path().join("a-local.txt"), b"stays on a").unwrap();
    wait_for(&[&a], "a indexed a-local", || async {
        let st = a.node.status().await.unwrap();
        st.shares.iter().any(|s| s.id == s2 && s.files == 1 && s.state == "idle")
    })
    .await;
    fs::write(eb.path().join("b1.txt"), b"from b").unwrap();
    wait_for(&[&a, &b], "b1 on a", || async { fs::read(ea.path().join("b1.txt")).ok().as_deref() == Some(b"from b") })
        .await;
    // A echoes b1 in its index (after a-local, had a-local been sent). Once B got that
    // index, a later change on B and an idle B prove B's pull of it has run.
    let mut b_events = b.node.subscribe();
    let a_id = a.id();
    wait_for(&[&a, &b], "b got a's index with b1", || async { in_sync(&b, &s2).await }).await;
    let _ = drain(&mut b_events);
    fs::write(eb.path().join("b2.txt"), b"later from b").unwrap();
    wait_for(&[&a, &b], "b2 on a", || async { ea.path().join("b2.txt").exists() }).await;
    wait_for(&[&b], "b idle", || async { share_idle(&b).await }).await;
    assert!(!eb.path().join("a-local.txt").exists(), "a receive-only share sent a local file");
    let st = b.node.status().await.unwrap();
    assert_eq!(st.shares.iter().find(|s| s.id == s2).unwrap().need, 0, "b wants something from a");
    let applied_from_a = drain(&mut b_events)
        .into_iter()
        .any(|e| matches!(&e, Event::Applied { share, from, .. } if *share == s2 && *from == a_id));
    assert!(!applied_from_a, "b applied a change made on the receive-only side");
    assert_eq!(fs::read(ea.path().join("a-local.txt")).unwrap(), b"stays on a");

    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// Index updates that leave chunk lists out (`IndexUpdateCompact`): a reference to content the
/// node holds is rebuilt from it (the file appears without a block fetched), a reference to
/// content it does not hold is answered "not found" with nothing stored, a malformed one is
/// refused; the node's own updates to us leave out what we hold, and go whole when we say we
/// do not hold it.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compact_index_references_are_checked_and_fall_back_whole() {
    let n = TestNode::start("node").await;
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("share");
    fs::create_dir_all(&root).unwrap();
    let rogue = Rogue::new();
    let conn = rogue.pair_with(&n).await;
    let share = add_share(&n, &root, None).await;
    n.node.share_invite(InviteDto { share: share.to_string(), device: rogue.id_str() }).await.expect("invite");
    let ann = ShareAnnounce { share, label: "s".into(), my_epoch: EPOCH, your_epoch: 0, your_seq: 0 };
    assert_eq!(conn.request(&Message::ClusterConfig { shares: vec![ann] }, WAIT).await.unwrap(), Message::Ack);

    // A big file on the node (at least 12 chunks: chunks are at most 1 MiB), sent to us whole.
    let big = random_bytes(4242, 12 << 20);
    fs::write(root.join("big.bin"), &big).unwrap();
    let theirs = wait_some(&[&n], "big.bin in the node's index", || async {
        rogue.index_whole.lock().unwrap().iter().find(|r| r.path.as_str() == "big.bin").cloned()
    })
    .await;
    assert!(theirs.chunks.len() >= 12, "{} chunks", theirs.chunks.len());
    assert_eq!(theirs.hash, ChunkHash::of(&big));
    let same =
        |record: u32| ChunksFrom::between(record, theirs.path.clone(), theirs.hash, &theirs.chunks, &theirs.chunks);
    let bare = |path: &str| {
        let mut r = rogue.record(path, FileKind::File, big.len() as u64, theirs.hash, vec![]);
        r.mtime_ns = MTIME;
        r
    };
    let compact = |records: Vec<FileRecord>, chunks_from: Vec<ChunksFrom>| Message::IndexUpdateCompact {
        share,
        epoch: EPOCH,
        records,
        chunks_from,
    };

    // 1. A copy by reference: built from the node's own big.bin, no block asked of us.
    assert_eq!(conn.request(&compact(vec![bare("copy.bin")], vec![same(0)]), WAIT).await.unwrap(), Message::Ack);
    wait_for(&[&n], "copy.bin on the node", || async {
        fs::metadata(root.join("copy.bin")).is_ok_and(|m| m.len() == big.len() as u64)
            && fs::read(root.join("copy.bin")).unwrap() == big
    })
    .await;
    assert!(!rogue.asked_for("copy.bin"), "the node fetched content it holds");
    // Its echo to us leaves the list out: we hold it (we just sent copy.bin).
    wait_for(&[&n], "copy.bin's echo by reference", || async {
        rogue.index_by_ref.lock().unwrap().iter().any(|p| p == "copy.bin")
    })
    .await;

    // 2. A reference to content the node does not hold: "not found", nothing stored.
    let ghost = ChunksFrom { base_hash: ChunkHash::of(b"never seen"), ..same(0) };
    match conn.request(&compact(vec![bare("ghost.bin")], vec![ghost]), WAIT).await.unwrap() {
        Message::Error { code: ErrorCode::NotFound, .. } => {}
        other => panic!("unresolvable reference answered with {other:?}"),
    }
    // 3. Malformed: keeps more chunks than the base has; a reference to a tombstone; out of range.
    let over = ChunksFrom { suffix: 1, ..same(0) };
    let mut dead = bare("dead.bin");
    dead.deleted = true;
    for (records, chunks_from) in [
        (vec![bare("over.bin")], vec![over]),
        (vec![dead], vec![same(0)]),
        (vec![bare("range.bin")], vec![same(1)]),
        (vec![bare("twice.bin")], vec![same(0), same(0)]),
    ] {
        match conn.request(&compact(records, chunks_from), WAIT).await.unwrap() {
            Message::Error { code: ErrorCode::BadRequest, .. } => {}
            other => panic!("malformed reference answered with {other:?}"),
        }
    }
    // Later than all of that, a legit file arrives; none of the refused ones ever do.
    rogue.serve_block("after.txt", b"after");
    assert_eq!(send_index(&conn, share, vec![rogue.file("after.txt", b"after")]).await, Message::Ack);
    wait_for(&[&n], "after.txt on the node", || async { root.join("after.txt").exists() }).await;
    for p in ["ghost.bin", "over.bin", "dead.bin", "range.bin", "twice.bin"] {
        assert!(fs::symlink_metadata(root.join(p)).is_err(), "{p} was written");
        assert!(!rogue.asked_for(p), "the node fetched blocks for the refused {p}");
    }

    // 4. We tell the node we hold big.bin too (its own record: nothing for it to do). It renames
    // big.bin and names our copy in its update; we say we do not hold it, so it sends the same
    // records again, whole.
    let mut ours = theirs.clone();
    ours.seq = Seq(rogue.next_seq());
    assert_eq!(send_index(&conn, share, vec![ours]).await, Message::Ack);
    rogue.refuse_compact.store(true, std::sync::atomic::Ordering::SeqCst);
    fs::rename(root.join("big.bin"), root.join("moved.bin")).unwrap();
    let moved = wait_some(&[&n], "moved.bin sent whole", || async {
        rogue.index_whole.lock().unwrap().iter().find(|r| r.path.as_str() == "moved.bin").cloned()
    })
    .await;
    assert_eq!((moved.hash, moved.chunks.clone()), (theirs.hash, theirs.chunks.clone()));
    assert!(!rogue.index_by_ref.lock().unwrap().iter().any(|p| p == "moved.bin"));
    assert!(rogue.compact_refused.load(std::sync::atomic::Ordering::SeqCst) >= 1, "the node never tried a reference");
    assert_eq!(fs::read(root.join("moved.bin")).unwrap(), big);

    n.node.shutdown().await;
}
