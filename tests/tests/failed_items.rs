//! What cannot be synced is visible: FIFOs, sockets, names that are not UTF-8 and files Ferry
//! may not read are listed in status with their reason (and the share is not in sync) while the
//! rest syncs; a FIFO is never opened; fixing the cause clears the item. A change a pull cannot
//! apply here (a folder Ferry may not write, a FIFO in the way) is listed on the receiver. A
//! name with a backslash syncs between two Linux devices.
//!
//! The tests drop the DAC override capability (as root, CI's case, file modes would not apply
//! otherwise), so each runs its own runtime on threads that inherit that.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ferry_e2e::unsyncable::{OpenWatch, mkfifo, raw_name, runtime, without_dac_override};
use ferry_e2e::*;
use ferry_node::Event;
use ferry_node::api::ShareStatusDto;

async fn share_status(n: &TestNode, share: &str) -> ShareStatusDto {
    n.node.status().await.unwrap().shares.into_iter().find(|s| s.id == share).expect("the share")
}

/// The share's failed items as path -> reason.
async fn failed(n: &TestNode, share: &str) -> BTreeMap<String, String> {
    share_status(n, share).await.failed_items.into_iter().map(|i| (i.path, i.reason)).collect()
}

fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// How many `FailedItems` events `rx` holds now.
fn failed_events(rx: &mut ferry_node::Subscription) -> usize {
    std::iter::from_fn(|| rx.try_recv().ok()).filter(|e| matches!(e, Event::FailedItems { .. })).count()
}

#[test]
fn what_cannot_be_synced_is_listed_and_the_rest_syncs() {
    without_dac_override();
    runtime().block_on(async {
        let (a, b, da, db, share) = two_sharing().await;
        let mut events = a.node.subscribe();
        let a_dir = da.path();
        fs::create_dir(a_dir.join("docs")).unwrap();
        // Watched before anything can look at it: a FIFO with no writer, which a blocking open
        // would hang on and any open would show.
        mkfifo(&a_dir.join("docs/pipe"));
        let pipe_opened = OpenWatch::new(&a_dir.join("docs/pipe"));
        let sock = std::os::unix::net::UnixListener::bind(a_dir.join("agent.sock")).unwrap();
        fs::write(raw_name(a_dir, b"caf\xe9.txt"), b"latin-1 name").unwrap();
        // Mode 000 from its creation: no scan can catch it readable (a mode change alone does
        // not make a scan read an indexed file again).
        let mut secret =
            fs::OpenOptions::new().write(true).create_new(true).mode(0o000).open(a_dir.join("secret.txt")).unwrap();
        std::io::Write::write_all(&mut secret, b"only for its owner").unwrap();
        drop(secret);
        fs::write(a_dir.join("docs/plan.txt"), b"the rest syncs").unwrap();
        fs::write(a_dir.join("notes.txt"), b"and this too").unwrap();

        let want = |items: &BTreeMap<String, String>| {
            let has = |p: &str, why: &str| items.get(p).is_some_and(|r| r.contains(why));
            has("docs/pipe", "a FIFO (named pipe)")
                && has("agent.sock", "a socket")
                && has("caf\u{fffd}.txt", "not valid UTF-8")
                && has("secret.txt", "permission denied")
        };
        wait_for(&[&a, &b], "a lists the four items and b has the rest", || async {
            want(&failed(&a, &share).await)
                && fs::read(db.path().join("docs/plan.txt")).ok().as_deref() == Some(b"the rest syncs".as_slice())
                && fs::read(db.path().join("notes.txt")).ok().as_deref() == Some(b"and this too".as_slice())
        })
        .await;
        let st = share_status(&a, &share).await;
        assert_eq!(st.failed_items.len(), 4, "{:?}", st.failed_items);
        assert!(!st.in_sync, "a share with items that cannot be synced is not in sync");
        assert!(failed(&b, &share).await.is_empty());
        assert!(!db.path().join("docs/pipe").exists() && !db.path().join("secret.txt").exists());

        // Told once: a full rescan that finds the same items is no news. (A full scan looks at
        // all six entries with valid names; a scan of a few paths at fewer.)
        let mut news = failed_events(&mut events);
        assert!(news >= 1, "a FailedItems event was sent");
        a.node.rescan_all();
        news = 0;
        let full_scan = async {
            loop {
                match events.recv().await {
                    Ok(Event::ScanFinished { seen, .. }) if seen >= 6 => break,
                    Ok(Event::FailedItems { .. }) => news += 1,
                    _ => {}
                }
            }
        };
        tokio::time::timeout(WAIT, full_scan).await.expect("a full rescan of a");
        news += failed_events(&mut events);
        assert_eq!(news, 0, "the same items again sent no new event");
        assert!(want(&failed(&a, &share).await));

        // Scanned twice, synced, listed: the FIFO was never opened. (The watch works: our own
        // non-blocking open shows.)
        assert!(!pipe_opened.opened(), "Ferry opened the FIFO");
        let mine = fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(a_dir.join("docs/pipe"))
            .unwrap();
        drop(mine);
        assert!(pipe_opened.opened(), "the watch sees an open");

        // Fixing each cause clears its item; the file that becomes readable syncs.
        fs::remove_file(a_dir.join("docs/pipe")).unwrap();
        wait_for(&[&a], "the FIFO's item gone", || async { !failed(&a, &share).await.contains_key("docs/pipe") }).await;
        drop(sock);
        fs::remove_file(a_dir.join("agent.sock")).unwrap();
        fs::rename(raw_name(a_dir, b"caf\xe9.txt"), a_dir.join("café.txt")).unwrap();
        set_mode(&a_dir.join("secret.txt"), 0o644);
        wait_for(&[&a, &b], "no items left, everything on b, both in sync", || async {
            failed(&a, &share).await.is_empty()
                && in_sync(&a, &share).await
                && in_sync(&b, &share).await
                && fs::read(db.path().join("secret.txt")).ok().as_deref() == Some(b"only for its owner".as_slice())
                && fs::read(db.path().join("café.txt")).ok().as_deref() == Some(b"latin-1 name".as_slice())
        })
        .await;
        assert_eq!(tree(a_dir), tree(db.path()));
        a.node.shutdown().await;
        b.node.shutdown().await;
    });
}

#[test]
fn a_change_this_device_cannot_apply_is_listed_on_it() {
    without_dac_override();
    runtime().block_on(async {
        let (a, b, da, db, share) = two_sharing().await;
        // On b: a folder Ferry may not write into, and a FIFO where a's file will arrive.
        fs::create_dir(da.path().join("locked")).unwrap();
        wait_for(&[&b], "the folder on b", || async { db.path().join("locked").is_dir() }).await;
        set_mode(&db.path().join("locked"), 0o555);
        mkfifo(&db.path().join("clash"));
        let clash_opened = OpenWatch::new(&db.path().join("clash"));
        fs::write(da.path().join("locked/new.txt"), b"cannot land").unwrap();
        fs::write(da.path().join("clash"), b"a file here").unwrap();
        fs::write(da.path().join("fine.txt"), b"lands").unwrap();

        wait_for(&[&a, &b], "b lists both and has the rest", || async {
            let items = failed(&b, &share).await;
            items.get("locked/new.txt").is_some_and(|r| r.contains("may not write it here"))
                && items.get("clash").is_some_and(|r| r.contains("is at this path here"))
                && fs::read(db.path().join("fine.txt")).ok().as_deref() == Some(b"lands".as_slice())
        })
        .await;
        let st = share_status(&b, &share).await;
        assert!(!st.in_sync);
        // The FIFO is both: left out by b's scan, and in the way of a's file.
        assert!(st.failed_items.iter().any(|i| i.path == "clash" && i.reason.contains("a FIFO (named pipe)")));
        assert!(!clash_opened.opened(), "Ferry opened the FIFO");

        // Fixed on b: the retry applies them (no new change needed) and the items go.
        set_mode(&db.path().join("locked"), 0o755);
        fs::remove_file(db.path().join("clash")).unwrap();
        wait_for(&[&a, &b], "b took both", || async {
            failed(&b, &share).await.is_empty()
                && in_sync(&b, &share).await
                && fs::read(db.path().join("locked/new.txt")).ok().as_deref() == Some(b"cannot land".as_slice())
                && fs::read(db.path().join("clash")).ok().as_deref() == Some(b"a file here".as_slice())
        })
        .await;
        assert_eq!(tree(da.path()), tree(db.path()));
        a.node.shutdown().await;
        b.node.shutdown().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backslash_name_syncs_between_two_linux_devices() {
    let (a, b, da, db, share) = two_sharing().await;
    fs::create_dir(da.path().join("C:\\old")).unwrap();
    fs::write(da.path().join("C:\\old/report\\2024.txt"), random_bytes(7, 100_000)).unwrap();
    fs::write(da.path().join("a\\b"), b"one name, not two").unwrap();
    wait_synced(&a, &b, da.path(), db.path(), &share, "the backslash names on b").await;
    assert_eq!(fs::read(db.path().join("a\\b")).unwrap(), b"one name, not two");
    assert!(failed(&a, &share).await.is_empty() && failed(&b, &share).await.is_empty());
    // And back: an edit on b reaches a.
    fs::write(db.path().join("a\\b"), b"edited on b").unwrap();
    wait_for(&[&a, &b], "the edit on a", || async {
        fs::read(da.path().join("a\\b")).ok().as_deref() == Some(b"edited on b".as_slice())
    })
    .await;
    a.node.shutdown().await;
    b.node.shutdown().await;
}
