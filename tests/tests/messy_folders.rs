//! A share folder that vanishes (renamed away, deleted, its drive unmounted) stops the share as
//! "folder missing": nothing is sent as deleted, nothing is written where the folder was, and the
//! share resumes by itself when the folder comes back. A read-only folder lists what cannot be
//! written, loses nothing, and recovers when it is writable again.
//!
//! The mounts are the test's own (a tmpfs, a bind mount of it, a read-only remount) and are
//! unmounted when it ends, failing or not. The read-only test drops the DAC override
//! capability (as root, CI's case, modes would not apply otherwise), so it runs its own
//! runtime on threads that inherit that.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ferry_e2e::messy::{Mount, failed, share_status};
use ferry_e2e::unsyncable::{runtime, without_dac_override};
use ferry_e2e::*;

/// Files a share starts with: a few, in folders.
fn fill(dir: &Path) {
    fs::create_dir_all(dir.join("photos/2024")).unwrap();
    for i in 0..6u64 {
        fs::write(dir.join(format!("photos/2024/img{i}.jpg")), random_bytes(i, 20_000)).unwrap();
    }
    fs::write(dir.join("notes.txt"), b"do not lose me").unwrap();
}

async fn state(n: &TestNode, share: &str) -> String {
    share_status(n, share).await.state
}

/// Waits until `n` shows the share as missing, with a reason that says so.
async fn wait_missing(n: &TestNode, share: &str) {
    wait_for(&[n], "the share stops as folder missing", || async {
        let st = share_status(n, share).await;
        st.state == "folder-missing" && !st.in_sync && st.last_error.as_deref().is_some_and(|e| e.contains("missing"))
    })
    .await;
}

/// The files under `dir` (Ferry's folder left out) as path -> fingerprint.
fn files(dir: &Path) -> BTreeMap<String, String> {
    tree(dir)
}

#[test]
fn a_vanished_share_folder_stops_the_share_and_sends_no_deletes() {
    let guard = tempfile::tempdir().unwrap();
    // The "drive": a tmpfs, bound at the share's path (unmounting the bind is pulling the
    // drive; binding it again is plugging it back in, with its content).
    let drive = match Mount::tmpfs(&guard.path().join("drive"), "64m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED (folder on a drive): cannot mount: {why}");
            return;
        }
    };
    let at = guard.path().join("Pictures");
    let drive_dir = drive.dir.clone();
    let mut bind = Mount::new(&["--bind", drive_dir.to_str().unwrap()], &at).expect("bind mount");
    runtime().block_on(async {
        let a = TestNode::start("alpha").await;
        let b = TestNode::start("beta").await;
        pair(&a, &b).await;
        fill(&at);
        let db = tempfile::tempdir().unwrap();
        let share = share(&a, &at, &b, db.path(), None).await;
        wait_for(&[&a, &b], "in sync", || async {
            in_sync(&a, &share).await && in_sync(&b, &share).await && files(&at) == files(db.path())
        })
        .await;
        let all = files(db.path());
        assert_eq!(all.len(), 9);

        // 1. The drive is pulled: the mount point is an empty folder.
        bind.unmount().unwrap();
        a.node.rescan_all();
        wait_missing(&a, &share).await;
        // Meanwhile b edits: a must not write into the empty mount point.
        fs::write(db.path().join("notes.txt"), b"edited on b while a's drive was away").unwrap();
        wait_for(&[&a, &b], "b indexed its edit", || async {
            share_status(&b, &share).await.summary.since_start.local_changes >= 1
        })
        .await;
        a.node.rescan_all();
        assert_eq!(state(&a, &share).await, "folder-missing");
        assert_eq!(fs::read_dir(&at).unwrap().count(), 0, "nothing written where the drive was");
        assert!(files(db.path()).len() == 9, "b keeps every file: {:?}", files(db.path()));

        // Plugged back in: resumes by itself, takes b's edit, and syncs new files again.
        bind = Mount::new(&["--bind", drive_dir.to_str().unwrap()], &at).expect("bind mount again");
        wait_for(&[&a, &b], "a resumed and took b's edit", || async {
            fs::read(at.join("notes.txt")).ok().as_deref() == Some(b"edited on b while a's drive was away".as_slice())
                && in_sync(&a, &share).await
        })
        .await;
        fs::write(at.join("after.txt"), b"the watcher works again").unwrap();
        wait_for(&[&a, &b], "a new file reaches b", || async {
            fs::read(db.path().join("after.txt")).ok().as_deref() == Some(b"the watcher works again".as_slice())
        })
        .await;

        // 2. The drive's content copied to a plain folder at the same place (while a watches
        // the folder come back); then that folder renamed away: missing; renamed back: resumes.
        bind.unmount().unwrap();
        wait_missing(&a, &share).await;
        let copied = std::process::Command::new("cp").arg("-a").arg(drive_dir.join(".")).arg(&at).status().unwrap();
        assert!(copied.success());
        wait_for(&[&a], "resumed on the copy", || async { state(&a, &share).await != "folder-missing" }).await;
        let away = guard.path().join("moved-away");
        fs::rename(&at, &away).unwrap();
        a.node.rescan_all();
        wait_missing(&a, &share).await;
        assert_eq!(files(db.path()).len(), 10, "b keeps every file");
        fs::rename(&away, &at).unwrap();
        wait_for(&[&a], "resumed after the rename back", || async { state(&a, &share).await != "folder-missing" })
            .await;
        fs::write(at.join("back.txt"), b"back").unwrap();
        wait_for(&[&a, &b], "a new file reaches b", || async { db.path().join("back.txt").is_file() }).await;

        // 3. Deleted (and an empty folder made in its place): still missing, nothing deleted.
        let kept = files(db.path());
        fs::rename(&at, &away).unwrap(); // "deleted": out of reach, kept by the test to compare
        fs::create_dir(&at).unwrap();
        a.node.rescan_all();
        wait_missing(&a, &share).await;
        fs::write(db.path().join("late.txt"), b"b goes on").unwrap();
        wait_for(&[&b], "b indexed its new file", || async {
            share_status(&b, &share).await.summary.since_start.local_adds >= 1
        })
        .await;
        a.node.rescan_all();
        assert_eq!(state(&a, &share).await, "folder-missing");
        assert_eq!(fs::read_dir(&at).unwrap().count(), 0, "nothing written into the new empty folder");
        let mut now = files(db.path());
        now.remove("late.txt");
        assert_eq!(now, kept, "b lost nothing");
        assert_eq!(files(&away), kept, "a's moved folder untouched");
        a.node.shutdown().await;
        b.node.shutdown().await;
        drop(db);
    });
    drop(bind);
    drop(drive);
}

#[test]
fn a_read_only_share_folder_lists_what_it_cannot_write_and_recovers() {
    without_dac_override();
    let guard = tempfile::tempdir().unwrap();
    let mounted = Mount::tmpfs(&guard.path().join("ro"), "64m");
    runtime().block_on(async {
        let (a, b, da, db, share) = two_sharing().await;
        fill(da.path());
        wait_for(&[&a, &b], "in sync", || async { files(da.path()) == files(db.path()) && in_sync(&b, &share).await })
            .await;
        let before = files(db.path());

        // chmod 555 on b's folder and one of its folders: new files and edits there cannot land.
        fs::set_permissions(db.path(), fs::Permissions::from_mode(0o555)).unwrap();
        fs::set_permissions(db.path().join("photos/2024"), fs::Permissions::from_mode(0o555)).unwrap();
        fs::write(da.path().join("new.txt"), b"new").unwrap();
        fs::write(da.path().join("photos/2024/img9.jpg"), b"new photo").unwrap();
        fs::write(da.path().join("notes.txt"), b"edited on a").unwrap();
        wait_for(&[&a, &b], "b lists what it cannot write", || async {
            let items = failed(&b, &share).await;
            ["new.txt", "photos/2024/img9.jpg", "notes.txt"]
                .iter()
                .all(|p| items.get(*p).is_some_and(|r| r.contains("permission denied")))
        })
        .await;
        // Nothing lost: b's files as they were (the edit not half-applied).
        assert_eq!(files(db.path()), before);
        assert!(!share_status(&b, &share).await.in_sync);
        fs::set_permissions(db.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(db.path().join("photos/2024"), fs::Permissions::from_mode(0o755)).unwrap();
        wait_for(&[&a, &b], "b recovers by itself", || async {
            files(da.path()) == files(db.path()) && failed(&b, &share).await.is_empty() && in_sync(&b, &share).await
        })
        .await;

        // A read-only file system (a tmpfs remounted read-only) as a second share of b's.
        match mounted {
            Ok(mut ro) => {
                let dc = tempfile::tempdir().unwrap();
                fill(dc.path());
                let s2 = ferry_e2e::share(&a, dc.path(), &b, &ro.dir, None).await;
                wait_for(&[&a, &b], "second share in sync", || async { files(dc.path()) == files(&ro.dir) }).await;
                let before = files(&ro.dir);
                let ok = std::process::Command::new("mount").args(["-o", "remount,ro"]).arg(&ro.dir).status().unwrap();
                assert!(ok.success());
                fs::write(dc.path().join("notes.txt"), b"edited while b is read-only").unwrap();
                wait_for(&[&a, &b], "b lists the file system as read-only", || async {
                    failed(&b, &s2).await.get("notes.txt").is_some_and(|r| r.contains("read-only"))
                })
                .await;
                assert_eq!(files(&ro.dir), before, "nothing changed on the read-only folder");
                let ok = std::process::Command::new("mount").args(["-o", "remount,rw"]).arg(&ro.dir).status().unwrap();
                assert!(ok.success());
                wait_for(&[&a, &b], "b recovers", || async {
                    files(dc.path()) == files(&ro.dir) && failed(&b, &s2).await.is_empty()
                })
                .await;
                a.node.shutdown().await;
                b.node.shutdown().await;
                ro.unmount().ok();
            }
            Err(why) => {
                eprintln!("SKIPPED (read-only file system): cannot mount: {why}");
                a.node.shutdown().await;
                b.node.shutdown().await;
            }
        }
    });
}
