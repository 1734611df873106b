//! ferry-fs's durable writes on a file system where `syncfs` is no barrier (FUSE, through
//! `ferry_e2e::powercut`): what they report committed must survive a power cut whole.

use std::fs;
use std::io::Write;
use std::path::Path;

use ferry_e2e::powercut::{self, PowerFs};
use ferry_fs::{PendingFile, commit_temps, create_temp};
use ferry_proto::RelPath;

fn mounted() -> Option<(tempfile::TempDir, PowerFs)> {
    if !powercut::available() {
        eprintln!("skipped: needs root and /dev/fuse to mount");
        return None;
    }
    let d = tempfile::tempdir().unwrap();
    let mnt = d.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let p = PowerFs::mount(&d.path().join("backing"), &mnt).unwrap();
    Some((d, p))
}

fn pending(root: &Path, path: &str, content: &[u8]) -> PendingFile {
    let rel = RelPath::new(path).unwrap();
    let mut temp = create_temp(root, &rel).unwrap();
    temp.file.write_all(content).unwrap();
    PendingFile { temp, rel, mtime_ns: 1_000_000_000, executable: false }
}

/// A group big enough for the one-`syncfs` path (62 files, as in the LazyFS report): before the
/// fix every file came back with 0 bytes at its final name.
#[test]
fn a_big_group_of_committed_files_survives_a_cut_whole() {
    let Some((_d, mut p)) = mounted() else { return };
    let root = p.path().to_path_buf();
    let items: Vec<PendingFile> = (0..62)
        .map(|i| pending(&root, &format!("tree/d{}/f{i}.txt", i % 4), format!("file {i}\n").repeat(50).as_bytes()))
        .collect();
    let res = commit_temps(&root, items, &[true; 62]);
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
    // The folders the files went into were made by ferry-fs too, and made durable by it.
    p.cut().unwrap();
    let mut empty = Vec::new();
    for i in 0..62 {
        let got = fs::read(root.join(format!("tree/d{}/f{i}.txt", i % 4))).unwrap_or_else(|e| panic!("f{i}: {e}"));
        if got.is_empty() {
            empty.push(i);
        }
        assert!(got.is_empty() || got == format!("file {i}\n").repeat(50).as_bytes(), "f{i} is torn");
    }
    assert!(empty.is_empty(), "{} of 62 committed files came back empty: {empty:?}", empty.len());
}

/// The small-group path (an fsync per temp) and a single commit, each into folders that did
/// not exist: before the fix the folders' names were never made durable, so the cut took the
/// committed files away with them.
#[test]
fn files_committed_into_new_folders_survive_a_cut() {
    let Some((_d, mut p)) = mounted() else { return };
    let root = p.path().to_path_buf();
    let items: Vec<PendingFile> =
        (0..5).map(|i| pending(&root, &format!("small/s{i}"), format!("small {i}").as_bytes())).collect();
    assert!(commit_temps(&root, items, &[true; 5]).iter().all(|r| r.is_ok()));
    let one = pending(&root, "new/deep/one", b"one");
    ferry_fs::commit_temp(one.temp, &root, &one.rel, 0, false).unwrap();
    p.cut().unwrap();
    for i in 0..5 {
        assert_eq!(fs::read(root.join(format!("small/s{i}"))).ok(), Some(format!("small {i}").into_bytes()), "s{i}");
    }
    assert_eq!(fs::read(root.join("new/deep/one")).ok(), Some(b"one".to_vec()));
}

/// A node's first start on a new home, a share added, a clean stop, then a cut: before the fix
/// the home's folder and the database's name were never made durable (`create_dir_all`, and
/// redb fsyncs its file, never its folder), so the node came back as a new device with no
/// share, or not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_home_and_its_database_survive_a_cut() {
    let Some((_d, mut p)) = mounted() else { return };
    let home = p.path().join("homes/beta");
    let share = p.path().join("Shared/docs");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("a.txt"), b"a").unwrap();
    let n = ferry_e2e::TestNode::start_at("beta", &home).await;
    let id = n.id();
    let dto = ferry_node::api::ShareAddDto { path: share.display().to_string(), label: None, mode: None };
    let added = n.node.share_add(dto).await.expect("share add");
    n.stop().await;
    // The share folder itself was the test's (not made durable): make it so, as a user's
    // long-standing folder would be, so that only Ferry's own files are at stake.
    for d in [share.as_path(), share.parent().unwrap(), p.path()] {
        std::fs::File::open(d).and_then(|f| f.sync_all()).unwrap();
    }
    p.cut().unwrap();
    let n = ferry_e2e::TestNode::start_at("beta", &home).await;
    assert_eq!(n.id(), id, "the same device after the cut");
    let shares = n.node.share_list().await.unwrap();
    assert!(shares.iter().any(|s| s.id == added.id), "the share survives: {shares:?}");
    n.stop().await;
}
