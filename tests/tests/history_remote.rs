//! History that never takes a file away, and that spans the devices of a share: a file
//! appended to in place (`echo more >> f`) keeps no old copy on the device where it was edited
//! (its snapshot link is the same inode), but the device that received the change archived
//! the old content. A rewind on the editing device fetches it from there; with that device out
//! of reach, the rewind says so and leaves the file as it is, never removing it.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use ferry_e2e::*;
use ferry_node::api::{ErrorCode, RestoreDto, RewindDto, RewindReqDto, VersionDto};

const OLD: &[u8] = b"line one\n";
const APPENDED: &[u8] = b"line one\nmore\n";

async fn versions(n: &TestNode, path: &Path) -> Vec<VersionDto> {
    n.node.versions(&path.display().to_string()).await.unwrap()
}

async fn rewind(n: &TestNode, share: &str, t: i64, dry_run: bool) -> RewindDto {
    n.node.rewind(RewindReqDto { target: share.into(), to: rfc3339(t), dry_run }).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rewind_fetches_old_content_only_another_device_kept_and_never_removes_a_file() {
    let (a, b, da, db, share) = two_sharing().await;
    let (fa, fb) = (da.path().join("f.txt"), db.path().join("f.txt"));
    fs::write(&fa, OLD).unwrap();
    fs::write(da.path().join("other.txt"), b"untouched").unwrap();
    wait_synced(&a, &b, da.path(), db.path(), &share, "initial sync").await;
    let t = now_ms();
    // Keep the append strictly after `t` on the millisecond clock the history uses.
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Appended in place: the same inode, so a's snapshot changes with it and a keeps no copy.
    fs::OpenOptions::new().append(true).open(&fa).unwrap().write_all(b"more\n").unwrap();
    wait_for(&[&a, &b], "the append on b, b's copy of the old content, a's record of it", || async {
        let a_knows = versions(&a, &fa).await.iter().any(|v| !v.kept_here && v.file.is_empty());
        let b_kept =
            versions(&b, &fb).await.iter().any(|v| v.kept_here && fs::read(&v.file).ok().as_deref() == Some(OLD));
        fs::read(&fb).ok().as_deref() == Some(APPENDED) && a_knows && b_kept && in_sync(&a, &share).await
    })
    .await;

    // b out of reach: nothing can produce the old content, so the file stays as it is.
    let b_id = b.id();
    let (home_b, _guard_b) = b.stop().await;
    wait_for(&[&a], "a sees b gone", || async { !connected(&a, &b_id).await }).await;
    let plan = rewind(&a, &share, t, true).await;
    let step = plan.steps.iter().find(|s| s.path == "f.txt").expect("a step for f.txt");
    assert_eq!(step.action, "keep", "{:?}", plan.steps);
    assert!(step.note.as_deref().unwrap_or_default().contains("no connected device"), "{step:?}");
    let done = rewind(&a, &share, t, false).await;
    assert!(done.errors.is_empty(), "{:?}", done.errors);
    assert_eq!(fs::read(&fa).unwrap(), APPENDED, "a rewind never takes away a file it cannot bring back");
    let v = versions(&a, &fa).await.into_iter().find(|v| !v.kept_here).unwrap();
    let e = a.node.restore(RestoreDto { path: fa.display().to_string(), version: Some(v.id), at: None }).await;
    let e = e.unwrap_err();
    assert_eq!(e.code, ErrorCode::Unreachable, "{e:?}");
    assert!(e.message.contains("no connected device keeps it"), "{e:?}");
    assert_eq!(fs::read(&fa).unwrap(), APPENDED);

    // b back: the plan names it as the source, and the rewind brings the old bytes back.
    let b = TestNode::start_at("beta", &home_b).await;
    wait_for(&[&a, &b], "a and b connected", || async { connected(&a, &b.id()).await }).await;
    let plan = rewind(&a, &share, t, true).await;
    let step = plan.steps.iter().find(|s| s.path == "f.txt").expect("a step for f.txt");
    assert_eq!((step.action.as_str(), step.from.as_deref()), ("restore", Some("beta")), "{:?}", plan.steps);
    assert!(plan.steps.iter().all(|s| s.path != "other.txt"), "{:?}", plan.steps);
    let done = rewind(&a, &share, t, false).await;
    assert!(done.errors.is_empty(), "{:?}", done.errors);
    wait_for(&[&a, &b], "both back at t", || async {
        fs::read(&fa).ok().as_deref() == Some(OLD)
            && fs::read(&fb).ok().as_deref() == Some(OLD)
            && in_sync(&a, &share).await
            && in_sync(&b, &share).await
    })
    .await;
    // a now keeps its own copy of the fetched version, and the appended content as a version.
    let kept: Vec<Vec<u8>> =
        versions(&a, &fa).await.into_iter().filter(|v| v.kept_here).map(|v| fs::read(&v.file).unwrap()).collect();
    assert!(kept.contains(&OLD.to_vec()) && kept.contains(&APPENDED.to_vec()), "{kept:?}");
    assert_eq!(fs::read(da.path().join("other.txt")).unwrap(), b"untouched");

    a.node.shutdown().await;
    b.node.shutdown().await;
}
