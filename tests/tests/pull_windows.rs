//! A big pull goes in windows of wanted paths (`share/pull.rs`: memory follows the window, not
//! the share), with the same outcome as one pass: every file arrives, renames and edits land,
//! renames move the file (whichever window the new path falls in), and a round's first window
//! collects every deletion, so the mass-delete guard still counts the whole burst against the
//! whole share. The receiver here pulls in windows of 8 paths.

use std::fs;
use std::os::unix::fs::MetadataExt;

use ferry_e2e::*;

/// Small enough that every step below takes several windows.
const WINDOW: usize = 8;
const FILES: usize = 60;

fn name(i: usize) -> String {
    format!("d{}/f{i:03}.txt", i % 4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pull_in_windows_syncs_everything_and_the_mass_delete_guard_still_counts_the_whole_share() {
    let a = TestNode::start("alpha").await;
    let b = TestNode::start_with("beta", |c| c.pull_window = WINDOW).await;
    pair(&a, &b).await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for i in 0..FILES {
        let p = da.path().join(name(i));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, random_bytes(i as u64, 100 + i * 37)).unwrap();
    }
    let share = share(&a, da.path(), &b, db.path(), None).await;
    wait_synced(&a, &b, da.path(), db.path(), &share, "every file on b").await;

    // Renames across folders, edits, new files and a few deletions in one burst while B is
    // away: B gets them in one index exchange and pulls them in windows.
    // (A rename is a deletion at its old path: 13 deletions in all.)
    let inode = |p: std::path::PathBuf| fs::metadata(p).unwrap().ino();
    let renamed_inodes: Vec<u64> = (0..10).map(|i| inode(db.path().join(name(i)))).collect();
    let (b, _keep_b) = delete_while_away(&a, b, 10 + 3, || {
        for i in 0..10 {
            fs::rename(da.path().join(name(i)), da.path().join(format!("d{}/moved{i:03}.txt", (i + 1) % 4))).unwrap();
        }
        for i in 10..15 {
            fs::write(da.path().join(name(i)), format!("edited {i}")).unwrap();
        }
        for i in 15..18 {
            fs::remove_file(da.path().join(name(i))).unwrap();
        }
        fs::create_dir_all(da.path().join("new")).unwrap();
        for i in 0..12 {
            fs::write(da.path().join(format!("new/n{i:02}")), random_bytes(1000 + i, 2000)).unwrap();
        }
    })
    .await;
    wait_synced(&a, &b, da.path(), db.path(), &share, "the burst on b").await;
    assert!(mass_delete_prompt(&b).await.is_none(), "3 deletions of 79 files are no mass delete");
    for (i, was) in renamed_inodes.iter().enumerate() {
        let now = inode(db.path().join(format!("d{}/moved{i:03}.txt", (i + 1) % 4)));
        assert_eq!(now, *was, "moved{i:03} was moved on b, not copied (the rename spans windows)");
    }

    // Deleting 45 of A's files while B is away: held on B, whose first window counts them all.
    let before = tree(db.path());
    let mut deleted = 0;
    let (b, _keep_b) = delete_while_away(&a, b, 13 + 45, || {
        for i in 18..FILES {
            fs::remove_file(da.path().join(name(i))).unwrap();
            deleted += 1;
        }
        for i in 0..3 {
            fs::remove_file(da.path().join(format!("new/n{i:02}"))).unwrap();
            deleted += 1;
        }
        fs::write(da.path().join("new/after.txt"), "made with the deletions").unwrap();
    })
    .await;
    assert_eq!(deleted, 45);
    let prompt = wait_some(&[&a, &b], "mass-delete prompt on b", || mass_delete_prompt(&b)).await;
    assert_eq!(prompt.share_id.as_deref(), Some(share.as_str()));
    wait_for(&[&a, &b], "the new file on b, beside the held deletions", || async {
        fs::read(db.path().join("new/after.txt")).ok().as_deref() == Some(b"made with the deletions".as_slice())
    })
    .await;
    let now = tree(db.path());
    for (path, hash) in &before {
        assert_eq!(now.get(path), Some(hash), "{path} kept on b while the deletion is held");
    }
    a.node.shutdown().await;
    b.node.shutdown().await;
}
