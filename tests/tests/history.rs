//! File history, conflicts and sync modes with real nodes on loopback: versions of local and
//! remote changes, restore, rewind, conflict policies, resolve, override / revert, the
//! mass-delete guard, retention pruning with a fake clock, and the sync summary.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ferry_e2e::*;
use ferry_node::api::{ConflictsQuery, ResolveDto, RestoreDto, RewindReqDto, SharePolicyDto, VersionDto};

/// Saves like an editor: a new file renamed over the old one (written outside the share, on
/// the same file system, so the scanner never sees a half-written temp file).
fn save(path: &Path, data: &[u8]) {
    let mut tmp = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut tmp, data).unwrap();
    tmp.persist(path).unwrap();
}

async fn versions(n: &TestNode, path: &Path) -> Vec<VersionDto> {
    n.node.versions(&path.display().to_string()).await.unwrap()
}

/// The contents of every version of `path` on `n`.
async fn version_contents(n: &TestNode, path: &Path) -> Vec<Vec<u8>> {
    versions(n, path).await.iter().map(|v| fs::read(&v.file).unwrap()).collect()
}

/// Waits until `n` keeps a version of `path` with exactly `content` (version records are
/// committed with the batch that applied the change, a moment after the file moved).
async fn wait_version(n: &TestNode, path: &Path, content: &[u8]) -> VersionDto {
    wait_some(&[n], &format!("a version of {} on {}", path.display(), n.name), || async {
        versions(n, path).await.into_iter().find(|v| fs::read(&v.file).ok().as_deref() == Some(content))
    })
    .await
}

async fn set_policy(n: &TestNode, share: &str, policy: Option<&str>, retention: Option<&str>) {
    n.node
        .share_policy(SharePolicyDto {
            share: share.into(),
            conflict_policy: policy.map(String::from),
            retention: retention.map(String::from),
            mass_delete_percent: None,
        })
        .await
        .unwrap();
}

async fn two_nodes() -> (TestNode, TestNode, tempfile::TempDir, tempfile::TempDir) {
    let a = TestNode::start("alpha").await;
    let b = TestNode::start("beta").await;
    pair(&a, &b).await;
    (a, b, tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap())
}

async fn synced(a: &TestNode, b: &TestNode, da: &Path, db: &Path, share: &str, what: &str) {
    wait_for(&[a, b], what, || async { tree(da) == tree(db) && in_sync(a, share).await && in_sync(b, share).await })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_on_a_is_a_version_on_b_and_restore_brings_it_back_everywhere() {
    let (a, b, da, db) = two_nodes().await;
    let share = share(&a, da.path(), &b, db.path(), None).await;
    fs::create_dir(da.path().join("docs")).unwrap();
    let doc_a = da.path().join("docs/plan.txt");
    let doc_b = db.path().join("docs/plan.txt");
    fs::write(&doc_a, b"version one").unwrap();
    synced(&a, &b, da.path(), db.path(), &share, "plan on b").await;

    // A local edit (saved by rename) keeps the old content as a version on A itself.
    save(&doc_a, b"version two");
    wait_for(&[&a, &b], "edit on b", || async { fs::read(&doc_b).ok().as_deref() == Some(b"version two") }).await;
    assert_eq!(version_contents(&a, &doc_a).await, vec![b"version one".to_vec()], "local edit versioned on a");
    let v = wait_version(&b, &doc_b, b"version one").await;
    assert_eq!((v.reason.as_str(), v.replaced_by.as_str()), ("replaced", a.id().as_str()));
    assert_eq!(versions(&b, &doc_b).await.len(), 1);

    // Delete on A: B archives its copy; A keeps its own deleted content too.
    fs::remove_file(&doc_a).unwrap();
    wait_for(&[&a, &b], "delete reaches b", || async { !doc_b.exists() }).await;
    let v = wait_version(&b, &doc_b, b"version two").await;
    assert_eq!(v.reason, "deleted");
    let vb = versions(&b, &doc_b).await;
    assert_eq!(vb[0].id, v.id, "newest first");
    let va = versions(&a, &doc_a).await;
    assert_eq!(va[0].reason, "deleted", "a local delete is a version too");
    assert_eq!(fs::read(&va[0].file).unwrap(), b"version two");
    // The share-wide listing shows the deleted file.
    assert!(versions(&b, db.path()).await.iter().any(|v| v.path == "docs/plan.txt"));

    // Restore on B: a new change that comes back on both.
    let r = b.node.restore(RestoreDto { path: doc_b.display().to_string(), version: None, at: None }).await.unwrap();
    assert_eq!(r.version, vb[0].id);
    assert_eq!(r.current_archived_as, None, "nothing was there to archive");
    wait_for(&[&a, &b], "restored on both", || async {
        fs::read(&doc_a).ok().as_deref() == Some(b"version two")
            && fs::read(&doc_b).ok().as_deref() == Some(b"version two")
    })
    .await;

    // Restore the older content by version id: the current content becomes a version.
    let first = versions(&b, &doc_b).await.into_iter().find(|v| fs::read(&v.file).unwrap() == b"version one").unwrap();
    let r = b
        .node
        .restore(RestoreDto { path: doc_b.display().to_string(), version: Some(first.id), at: None })
        .await
        .unwrap();
    assert!(r.current_archived_as.is_some());
    wait_for(&[&a, &b], "older content on both", || async {
        fs::read(&doc_a).ok().as_deref() == Some(b"version one")
            && fs::read(&doc_b).ok().as_deref() == Some(b"version one")
    })
    .await;
    assert!(version_contents(&b, &doc_b).await.iter().filter(|c| c.as_slice() == b"version two").count() >= 2);
    synced(&a, &b, da.path(), db.path(), &share, "in sync").await;

    // Bad input is a clear error.
    let e =
        b.node.restore(RestoreDto { path: doc_b.display().to_string(), version: Some(1), at: None }).await.unwrap_err();
    assert!(e.message.contains("no version 1"), "{e}");
    let e = b
        .node
        .restore(RestoreDto { path: doc_b.display().to_string(), version: None, at: Some("yesterday".into()) })
        .await
        .unwrap_err();
    assert!(e.message.contains("not a time"), "{e}");

    // The summary counts what happened.
    let sa = &a.node.status().await.unwrap().shares[0].summary.since_start;
    let sb = &b.node.status().await.unwrap().shares[0].summary.since_start;
    assert!(sa.local_adds >= 1 && sa.local_changes >= 1 && sa.local_deletes >= 1, "{sa:?}");
    assert!(sa.remote_adds >= 1 || sa.remote_changes >= 1, "b's restores applied on a: {sa:?}");
    assert!(sb.remote_adds >= 1 && sb.remote_changes >= 1 && sb.remote_deletes >= 1, "{sb:?}");

    a.node.shutdown().await;
    b.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rewind_after_a_burst_gives_the_old_tree_and_destroys_nothing() {
    let (a, b, da, db) = two_nodes().await;
    let share = share(&a, da.path(), &b, db.path(), None).await;
    fs::create_dir(da.path().join("sub")).unwrap();
    for i in 0..8 {
        fs::write(da.path().join(format!("f{i}.txt")), random_bytes(i, 1000 + i as usize * 300)).unwrap();
    }
    for i in 0..3 {
        fs::write(da.path().join(format!("sub/g{i}.bin")), random_bytes(100 + i, 70_000)).unwrap();
    }
    synced(&a, &b, da.path(), db.path(), &share, "initial sync").await;
    let snapshot = tree(da.path());
    let t = now_ms();
    // Keep every later change strictly after `t` on the millisecond clock the history uses.
    tokio::time::sleep(Duration::from_millis(20)).await;

    // The burst: edits on both devices (one file twice), deletes, new files.
    let f0_final = random_bytes(900, 5000);
    save(&da.path().join("f0.txt"), b"first edit");
    wait_for(&[&a, &b], "first edit on b", || async {
        fs::read(db.path().join("f0.txt")).ok().as_deref() == Some(b"first edit")
    })
    .await;
    save(&da.path().join("f0.txt"), &f0_final);
    save(&db.path().join("f1.txt"), b"edited on beta");
    save(&da.path().join("sub/g1.bin"), &random_bytes(901, 80_000));
    fs::remove_file(da.path().join("f2.txt")).unwrap();
    fs::remove_file(db.path().join("f3.txt")).unwrap();
    fs::remove_file(da.path().join("sub/g0.bin")).unwrap();
    let new_content = random_bytes(902, 3000);
    fs::write(da.path().join("new.txt"), &new_content).unwrap();
    fs::create_dir(db.path().join("later")).unwrap();
    fs::write(db.path().join("later/n.txt"), b"made after t").unwrap();
    wait_for(&[&a, &b], "burst synced", || async {
        let ta = tree(da.path());
        ta.contains_key("later/n.txt")
            && !ta.contains_key("f3.txt")
            && ta.get("f1.txt") == tree(db.path()).get("f1.txt")
            && ta == tree(db.path())
            && in_sync(&a, &share).await
            && in_sync(&b, &share).await
            && fs::read(db.path().join("f0.txt")).ok() == Some(f0_final.clone())
    })
    .await;

    // The plan first.
    let req = |dry_run| RewindReqDto { target: share.clone(), to: rfc3339(t), dry_run };
    let plan = a.node.rewind(req(true)).await.unwrap();
    let steps: BTreeSet<(String, String)> = plan.steps.iter().map(|s| (s.action.clone(), s.path.clone())).collect();
    let want: BTreeSet<(String, String)> = [
        ("restore", "f0.txt"),
        ("restore", "f1.txt"),
        ("restore", "sub/g1.bin"),
        ("undelete", "f2.txt"),
        ("undelete", "f3.txt"),
        ("undelete", "sub/g0.bin"),
        ("remove", "new.txt"),
        ("remove", "later/n.txt"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(steps, want);
    assert!(tree(da.path()).contains_key("new.txt"), "a dry run changes nothing");

    let done = a.node.rewind(req(false)).await.unwrap();
    assert!(done.errors.is_empty(), "{:?}", done.errors);
    let mut old = snapshot.clone();
    old.insert("later".into(), "dir".into()); // folders made since stay (empty)
    wait_for(&[&a, &b], "both back at t", || async {
        tree(da.path()) == old && tree(db.path()) == old && in_sync(&a, &share).await && in_sync(&b, &share).await
    })
    .await;

    // Nothing destroyed: the burst's contents are versions.
    assert!(version_contents(&a, &da.path().join("new.txt")).await.contains(&new_content));
    assert!(version_contents(&a, &da.path().join("f0.txt")).await.contains(&f0_final));
    assert!(version_contents(&a, &da.path().join("later/n.txt")).await.contains(&b"made after t".to_vec()));
    assert!(version_contents(&b, &db.path().join("f1.txt")).await.contains(&b"edited on beta".to_vec()));

    // A subfolder alone, and bad times.
    let e = a.node.rewind(RewindReqDto { target: format!("{share}/sub"), to: "3x".into(), dry_run: true }).await;
    assert!(e.unwrap_err().message.contains("unknown unit"));
    let p =
        a.node.rewind(RewindReqDto { target: format!("{share}/sub"), to: "1s".into(), dry_run: true }).await.unwrap();
    assert!(p.steps.iter().all(|s| s.path.starts_with("sub/")), "{:?}", p.steps);

    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// Makes a conflict on `notes.txt`: B goes away, both edit (B's edit `b_later` or earlier),
/// B comes back. Returns the restarted B.
async fn conflict(
    a: &TestNode,
    b: TestNode,
    da: &Path,
    db: &Path,
    share: &str,
    b_later: bool,
    tag: &str,
) -> (TestNode, Option<tempfile::TempDir>) {
    let changes = |a: &TestNode| {
        let n = a.node.clone();
        let share = share.to_string();
        async move {
            let s = n.status().await.unwrap();
            s.shares
                .into_iter()
                .find(|x| x.id == share && x.state == "idle")
                .map(|x| x.summary.since_start.local_changes)
        }
    };
    let before = wait_some(&[a], "a idle", || changes(a)).await;
    let (home_b, guard_b) = b.stop().await;
    let t0 = SystemTime::now();
    let (ta, tb) = if b_later { (t0, t0 + Duration::from_secs(10)) } else { (t0 + Duration::from_secs(10), t0) };
    let set = |p: PathBuf, data: &[u8], t: SystemTime| {
        save(&p, data);
        fs::File::options().write(true).open(&p).unwrap().set_modified(t).unwrap();
    };
    set(da.join("notes.txt"), format!("edited on alpha{tag}").as_bytes(), ta);
    set(db.join("notes.txt"), format!("edited on beta{tag}").as_bytes(), tb);
    wait_for(&[a], "a indexed its edit", || async { changes(a).await.is_some_and(|n| n > before) }).await;
    let b = TestNode::start_at("beta", &home_b).await;
    wait_for(&[a, &b], "reconnected", || async { connected(a, &b.id()).await && connected(&b, &a.id()).await }).await;
    (b, guard_b)
}

fn conflict_copies(root: &Path) -> Vec<String> {
    tree(root).into_keys().filter(|k| k.contains(".sync-conflict-")).collect()
}

async fn base(a: &TestNode, b: &TestNode, da: &Path, db: &Path, share: &str) {
    fs::write(da.join("notes.txt"), b"base").unwrap();
    synced(a, b, da, db, share, "base on both").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn newest_wins_keeps_the_loser_in_history_only() {
    let (a, b, da, db) = two_nodes().await;
    let share = share(&a, da.path(), &b, db.path(), None).await;
    set_policy(&a, &share, Some("newest-wins"), None).await;
    set_policy(&b, &share, Some("newest-wins"), None).await;
    base(&a, &b, da.path(), db.path(), &share).await;
    let (b, _g) = conflict(&a, b, da.path(), db.path(), &share, true, "").await;
    synced(&a, &b, da.path(), db.path(), &share, "settled").await;
    assert_eq!(fs::read(da.path().join("notes.txt")).unwrap(), b"edited on beta");
    assert!(conflict_copies(da.path()).is_empty() && conflict_copies(db.path()).is_empty());
    let va = versions(&a, &da.path().join("notes.txt")).await;
    let lost = va.iter().find(|v| v.reason == "conflict").expect("a's losing edit is a version");
    assert_eq!(fs::read(&lost.file).unwrap(), b"edited on alpha");
    assert!(a.node.status().await.unwrap().shares[0].summary.since_start.conflicts >= 1);
    a.node.shutdown().await;
    b.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn this_device_wins_even_when_older() {
    let (a, b, da, db) = two_nodes().await;
    let share = share(&a, da.path(), &b, db.path(), None).await;
    set_policy(&a, &share, Some("this-device-wins"), None).await;
    base(&a, &b, da.path(), db.path(), &share).await;
    // B's edit is newer, so by the default rule B would win; A's policy says A wins.
    let (b, _g) = conflict(&a, b, da.path(), db.path(), &share, true, "").await;
    synced(&a, &b, da.path(), db.path(), &share, "settled").await;
    assert_eq!(fs::read(db.path().join("notes.txt")).unwrap(), b"edited on alpha");
    assert!(conflict_copies(da.path()).is_empty() && conflict_copies(db.path()).is_empty());
    assert!(version_contents(&b, &db.path().join("notes.txt")).await.contains(&b"edited on beta".to_vec()));
    a.node.shutdown().await;
    b.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keep_both_then_resolve_choices_propagate() {
    let (a, b, da, db) = two_nodes().await;
    let share = share(&a, da.path(), &b, db.path(), None).await;
    base(&a, &b, da.path(), db.path(), &share).await;
    let notes_a = da.path().join("notes.txt");

    // Round 1: B's newer edit wins by default, A's edit is the copy; A keeps its own (local).
    let (b, _g1) = conflict(&a, b, da.path(), db.path(), &share, true, "").await;
    // Both indexes hold the copy too (index after disk: wait for it, not only for the files).
    wait_for(&[&a, &b], "copy on both", || async {
        conflict_copies(da.path()).len() == 1
            && tree(da.path()) == tree(db.path())
            && a.node.conflicts(ConflictsQuery { share: None }).await.unwrap().len() == 1
            && b.node.conflicts(ConflictsQuery { share: Some(share.clone()) }).await.unwrap().len() == 1
    })
    .await;
    let list = a.node.conflicts(ConflictsQuery { share: None }).await.unwrap();
    assert_eq!(list.len(), 1);
    let c = &list[0];
    assert_eq!((c.path.as_str(), c.copy_device.as_str()), ("notes.txt", a.id().as_str()));
    assert_eq!(c.current_device.as_deref(), Some(b.id().as_str()));
    assert_eq!((c.copy_size, c.current_size), (15, Some(14)));
    assert_eq!(b.node.conflicts(ConflictsQuery { share: Some(share.clone()) }).await.unwrap().len(), 1);
    let bad = a.node.resolve(ResolveDto { path: notes_a.display().to_string(), keep: "mine".into() }).await;
    assert!(bad.unwrap_err().message.contains("--keep must be"));
    let r = a.node.resolve(ResolveDto { path: notes_a.display().to_string(), keep: "local".into() }).await.unwrap();
    assert_eq!(r.archived, 1);
    // B's index records the copy's removal just after its disk does (index after disk): wait
    // for both rather than reading the index the moment the disk changed.
    wait_for(&[&a, &b], "a's choice on both", || async {
        fs::read(db.path().join("notes.txt")).ok().as_deref() == Some(b"edited on alpha")
            && conflict_copies(db.path()).is_empty()
            && tree(da.path()) == tree(db.path())
            && b.node.conflicts(ConflictsQuery { share: None }).await.unwrap().is_empty()
    })
    .await;
    assert!(version_contents(&a, &notes_a).await.contains(&b"edited on beta".to_vec()), "the loser is kept");

    // Round 2: keep both; B settles it, the copy gets a plain name everywhere.
    let (b, _g2) = conflict(&a, b, da.path(), db.path(), &share, true, " again").await;
    wait_for(&[&a, &b], "copy on both", || async {
        conflict_copies(db.path()).len() == 1 && tree(da.path()) == tree(db.path())
    })
    .await;
    let copy = db.path().join(&conflict_copies(db.path())[0]);
    let r = b.node.resolve(ResolveDto { path: copy.display().to_string(), keep: "both".into() }).await.unwrap();
    assert_eq!(r.renamed.len(), 1);
    assert!(r.renamed[0].starts_with("notes (from alpha "), "{:?}", r.renamed);
    let renamed = r.renamed[0].clone();
    wait_for(&[&a, &b], "both kept on both", || async {
        conflict_copies(da.path()).is_empty()
            && fs::read(da.path().join(&renamed)).ok().as_deref() == Some(b"edited on alpha again")
            && fs::read(&notes_a).ok().as_deref() == Some(b"edited on beta again")
            && tree(da.path()) == tree(db.path())
    })
    .await;
    a.node.shutdown().await;
    b.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn override_and_revert() {
    let (a, b, da, db) = two_nodes().await;
    // Override: A is the send-only master.
    let s1 = share(&a, da.path(), &b, db.path(), Some("send-only")).await;
    fs::write(da.path().join("x.txt"), b"master copy").unwrap();
    fs::write(da.path().join("keep.txt"), b"same").unwrap();
    wait_for(&[&a, &b], "x on b", || async { tree(da.path()) == tree(db.path()) }).await;
    save(&db.path().join("x.txt"), b"changed on beta");
    fs::write(db.path().join("extra.txt"), b"only on beta").unwrap();
    // Override until both of B's changes (which travel with B's index) have been overridden.
    let total = std::sync::atomic::AtomicU64::new(0);
    wait_for(&[&a, &b], "b's changes overridden", || async {
        let n = a.node.share_override(&s1).await.unwrap().changed;
        total.fetch_add(n, std::sync::atomic::Ordering::SeqCst) + n >= 2
    })
    .await;
    wait_for(&[&a, &b], "b matches a", || async { tree(da.path()) == tree(db.path()) }).await;
    assert_eq!(fs::read(db.path().join("x.txt")).unwrap(), b"master copy");
    wait_version(&b, &db.path().join("extra.txt"), b"only on beta").await;
    wait_version(&b, &db.path().join("x.txt"), b"changed on beta").await;
    let e = b.node.share_override(&s1).await.unwrap_err();
    assert!(e.message.contains("send-only"), "{e}");

    // Revert: B is a receive-only mirror of a second share.
    let (da2, db2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for n in ["p.txt", "q.txt", "r.txt"] {
        fs::write(da2.path().join(n), format!("{n} from alpha")).unwrap();
    }
    // B adds the share as receive-only and offers it to A, which has the files.
    let s2 = share(&b, db2.path(), &a, da2.path(), Some("receive-only")).await;
    wait_for(&[&a, &b], "mirror filled", || async { tree(da2.path()) == tree(db2.path()) }).await;
    save(&db2.path().join("p.txt"), b"local edit");
    fs::remove_file(db2.path().join("q.txt")).unwrap();
    fs::write(db2.path().join("mine.txt"), b"local file").unwrap();
    let local_changes = |n: &TestNode| {
        let n = n.node.clone();
        let s2 = s2.clone();
        async move { n.status().await.unwrap().shares.into_iter().find(|s| s.id == s2).unwrap().local_changes }
    };
    // The watcher can miss a delete of a file that was written a moment ago (see the report);
    // a rescan makes the test independent of that.
    b.node.rescan_all();
    wait_for(&[&b], "local changes shown", || async { local_changes(&b).await == 3 }).await;
    assert_eq!(tree(da2.path()).len(), 3, "a receive-only share sends nothing");
    let r = b.node.share_revert(&s2).await.unwrap();
    assert_eq!(r.changed, 3);
    wait_for(&[&a, &b], "mirror matches again", || async {
        tree(da2.path()) == tree(db2.path()) && local_changes(&b).await == 0
    })
    .await;
    assert!(version_contents(&b, &db2.path().join("p.txt")).await.contains(&b"local edit".to_vec()));
    assert!(version_contents(&b, &db2.path().join("mine.txt")).await.contains(&b"local file".to_vec()));
    assert!(b.node.share_revert(&s1).await.is_err(), "revert is for receive-only shares");
    a.node.shutdown().await;
    b.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mass_delete_is_held_then_refused_then_allowed() {
    let (a, b, da, db) = two_nodes().await;
    let share = share(&a, da.path(), &b, db.path(), None).await;
    for i in 0..20 {
        fs::write(da.path().join(format!("file{i:02}.txt")), format!("content {i}")).unwrap();
    }
    synced(&a, &b, da.path(), db.path(), &share, "20 files on b").await;
    let full = tree(db.path());

    let delete_15 = || {
        for i in 0..15 {
            fs::remove_file(da.path().join(format!("file{i:02}.txt"))).unwrap();
        }
    };
    let (b, _keep) = delete_while_away(&a, b, 15, delete_15).await;
    let p = wait_some(&[&a, &b], "mass-delete prompt on b", || mass_delete_prompt(&b)).await;
    assert_eq!((p.deletes, p.files), (Some(15), Some(20)));
    assert_eq!(p.device, a.id());
    assert_eq!(tree(db.path()), full, "held: nothing deleted on b");

    // Refuse: b keeps its files, sends them back to a, and needs attention.
    b.node.reject(p.id).await.unwrap();
    wait_for(&[&a, &b], "files back on a", || async { tree(da.path()) == full && tree(db.path()) == full }).await;
    let st = b.node.status().await.unwrap();
    assert!(st.shares[0].attention.as_deref().unwrap_or("").contains("refused"), "{:?}", st.shares[0].attention);
    b.node.share_ack(&share).await.unwrap();
    assert_eq!(b.node.status().await.unwrap().shares[0].attention, None);

    // Again, and allow it this time.
    wait_for(&[&a, &b], "in sync before the second delete", || async {
        in_sync(&a, &share).await && in_sync(&b, &share).await
    })
    .await;
    // Live this time: even if the burst arrives in slices, the guard adds them up.
    delete_15();
    a.node.rescan_all();
    let p = wait_some(&[&a, &b], "second prompt", || mass_delete_prompt(&b)).await;
    assert!(tree(db.path()).len() >= 10, "at most the threshold's worth goes before the hold");
    b.node.accept(ferry_node::api::AcceptDto { id: p.id, path: None }).await.unwrap();
    wait_for(&[&a, &b], "deletes applied", || async {
        tree(db.path()).len() == 5 && tree(da.path()) == tree(db.path())
    })
    .await;
    assert_eq!(wait_version(&b, &db.path().join("file03.txt"), b"content 3").await.reason, "deleted");
    a.node.shutdown().await;
    b.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_prunes_by_policy_with_a_fake_clock() {
    let a = TestNode::start("alpha").await;
    let dir = tempfile::tempdir().unwrap();
    let s = a
        .node
        .share_add(ferry_node::api::ShareAddDto { path: dir.path().display().to_string(), label: None, mode: None })
        .await
        .unwrap();
    let f = dir.path().join("log.txt");
    fs::write(&f, b"v0").unwrap();
    for i in 1..=3u8 {
        // The index must hold v{i-1} whole before it is replaced: a scan can catch the file
        // between its creation and its write (0 bytes), and a save over an entry whose
        // recorded content is not what the snapshot holds keeps no version (in-place rewrite).
        wait_for(&[&a], "indexed", || async {
            let st = a.node.status().await.unwrap();
            st.shares[0].summary.since_start.local_adds >= 1
                && st.shares[0].bytes == 2
                && versions(&a, &f).await.len() == i as usize - 1
        })
        .await;
        save(&f, format!("v{i}").as_bytes());
    }
    wait_for(&[&a], "three versions", || async { versions(&a, &f).await.len() == 3 }).await;
    let files: Vec<String> = versions(&a, &f).await.into_iter().map(|v| v.file).collect();
    let now = now_ms();
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    // Default (30 days of everything): nothing goes, today or in 29 days.
    assert_eq!(a.node.prune_versions(Some(now + 29 * DAY)).await.unwrap()[0].removed, 0);
    // Staggered without a keep-all window: an hour later, the three share one hourly bucket.
    set_policy(&a, &s.id, None, Some("staggered:0:0")).await;
    let r = a.node.prune_versions(Some(now + HOUR)).await.unwrap();
    assert_eq!(r[0].removed, 2);
    let left = versions(&a, &f).await;
    assert_eq!(left.len(), 1);
    assert_eq!(fs::read(&left[0].file).unwrap(), b"v2", "the newest of the bucket stays");
    assert_eq!(files.iter().filter(|p| Path::new(p).exists()).count(), 1, "pruned files are gone");
    // Trash can: kept for its days, then gone.
    set_policy(&a, &s.id, None, Some("trash-can:7")).await;
    assert_eq!(a.node.prune_versions(Some(now + 6 * DAY)).await.unwrap()[0].removed, 0);
    assert_eq!(a.node.prune_versions(Some(now + 8 * DAY)).await.unwrap()[0].removed, 1);
    assert!(versions(&a, &f).await.is_empty());
    // Off: the next prune drops everything.
    save(&f, b"v4");
    wait_for(&[&a], "a new version", || async { versions(&a, &f).await.len() == 1 }).await;
    set_policy(&a, &s.id, None, Some("off")).await;
    assert_eq!(a.node.prune_versions(None).await.unwrap()[0].removed, 1);
    assert!(
        a.node
            .share_policy(SharePolicyDto {
                share: s.id.clone(),
                retention: Some("forever".into()),
                ..Default::default()
            })
            .await
            .is_err()
    );
    a.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_rescan_rehashes_what_size_and_mtime_hide() {
    let a = TestNode::start("alpha").await;
    let dir = tempfile::tempdir().unwrap();
    let s = a
        .node
        .share_add(ferry_node::api::ShareAddDto { path: dir.path().display().to_string(), label: None, mode: None })
        .await
        .unwrap();
    let f = dir.path().join("data.bin");
    fs::write(&f, b"0123456789").unwrap();
    // Indexed with its whole content: a scan can catch the file between its creation and its
    // write (size 0), and the next one must have recorded the 10 bytes before the node stops,
    // or the restart's scan rightly sees a change.
    wait_for(&[&a], "indexed", || async {
        let st = a.node.status().await.unwrap();
        st.shares[0].bytes == 10 && st.shares[0].state == "idle"
    })
    .await;
    // Same size, same mtime, same inode, changed while the node was down: only reading the
    // bytes can tell.
    let (home, guard) = a.stop().await;
    let mtime = fs::metadata(&f).unwrap().modified().unwrap();
    fs::write(&f, b"9876543210").unwrap();
    fs::File::options().write(true).open(&f).unwrap().set_modified(mtime).unwrap();
    let a = TestNode::start_at("alpha", &home).await;
    let _keep = guard;
    let summary = || async { a.node.status().await.unwrap().shares[0].summary.since_start.clone() };
    wait_for(&[&a], "start-up scan done", || async { a.node.status().await.unwrap().shares[0].state == "idle" }).await;
    assert_eq!(summary().await.local_changes, 0, "a normal scan trusts size, mtime and inode");
    a.node.rescan(ferry_node::api::RescanDto { share: Some(s.id.clone()), full: true }).await.unwrap();
    wait_for(&[&a], "the full rescan finds the change", || async { summary().await.local_changes == 1 }).await;
    // ... and nothing else: a re-hash scan once reported every file it read again as deleted
    // too (it keeps the file's record live, with its new content).
    wait_for(&[&a], "idle after the full rescan", || async {
        a.node.status().await.unwrap().shares[0].state == "idle"
    })
    .await;
    assert_eq!(summary().await.local_deletes, 0, "a re-hash deletes nothing");
    let st = a.node.status().await.unwrap();
    assert_eq!((st.shares[0].files, st.shares[0].bytes), (1, 10), "data.bin is still live in the index");
    a.node.shutdown().await;
}

/// Files that arrived from a peer (new files, applied in groups, and renamed files) are
/// versioned like local ones when they are then edited or deleted on this device: the received
/// content is kept as a version before the local change replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn received_files_keep_versions_of_local_edits() {
    let (a, b, da, db) = two_nodes().await;
    let share = share(&a, da.path(), &b, db.path(), None).await;
    for i in 0..40 {
        fs::write(da.path().join(format!("r{i}.txt")), format!("received {i}")).unwrap();
    }
    fs::write(da.path().join("before-move.txt"), b"moved content").unwrap();
    synced(&a, &b, da.path(), db.path(), &share, "files on b").await;
    fs::rename(da.path().join("before-move.txt"), da.path().join("after-move.txt")).unwrap();
    synced(&a, &b, da.path(), db.path(), &share, "rename on b").await;

    // Edited on B like an editor saves (rename over), one deleted on B.
    save(&db.path().join("r3.txt"), b"edited on beta");
    save(&db.path().join("after-move.txt"), b"moved, then edited");
    fs::remove_file(db.path().join("r7.txt")).unwrap();
    synced(&a, &b, da.path(), db.path(), &share, "b's edits on a").await;
    assert_eq!(version_contents(&b, &db.path().join("r3.txt")).await, vec![b"received 3".to_vec()]);
    assert_eq!(version_contents(&b, &db.path().join("after-move.txt")).await, vec![b"moved content".to_vec()]);
    assert_eq!(version_contents(&b, &db.path().join("r7.txt")).await, vec![b"received 7".to_vec()]);
    // A, which replaced its copies with B's changes, kept its own versions too.
    assert_eq!(version_contents(&a, &da.path().join("r3.txt")).await, vec![b"received 3".to_vec()]);

    a.node.shutdown().await;
    b.node.shutdown().await;
}
