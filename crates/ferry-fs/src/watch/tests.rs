//! The watcher's tests: what is reported, what is not, and never through a symlink.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferry_proto::RelPath;

use super::*;

fn rel(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

/// Folder-to-link swaps in a row: before the fix one run of 50 already broke the watch.
const SWAPS: usize = 200;
/// New files written, one after the other, until one is reported under its own path.
const MARKERS: usize = 5;

/// How long a test waits for an event it expects: far above the 50 ms debounce.
const PATIENCE: Duration = Duration::from_secs(3);

/// A watcher on `root` with a 50 ms debounce, and what it reports.
fn watched(root: &Path) -> (ShareWatcher, mpsc::Receiver<WatchEvent>) {
    let (tx, rx) = mpsc::channel();
    let w = watch(root, Duration::from_millis(50), move |ev| {
        let _ = tx.send(ev);
    })
    .unwrap();
    (w, rx)
}

/// Every path reported until (and with) the event that holds all of `want`.
fn paths_until(rx: &mpsc::Receiver<WatchEvent>, want: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut all = Vec::new();
    while !want.iter().all(|w| all.iter().any(|p| p == w)) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(WatchEvent::Paths(ps)) => all.extend(ps.iter().map(|p| p.as_str().to_owned())),
            Ok(WatchEvent::Rescan) => panic!("a full scan asked for; paths so far {all:?}"),
            Err(_) => panic!("{want:?} not all reported within {PATIENCE:?}; got {all:?}"),
        }
    }
    all
}

/// Waits until `want` shows up among reported paths, for at most `limit`.
fn wait_for(rx: &mpsc::Receiver<WatchEvent>, want: &RelPath, limit: Duration) -> Vec<WatchEvent> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(ev) => {
                let hit = matches!(&ev, WatchEvent::Paths(ps) if ps.contains(want));
                got.push(ev);
                if hit {
                    return got;
                }
            }
            Err(_) => panic!("{want} not reported within {limit:?}; got {got:?}"),
        }
    }
}

#[test]
fn reports_created_files_and_drops_internal_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join(".ferry/versions")).unwrap();
    let (_w, rx) = watched(root);

    std::fs::write(root.join(".ferry/versions/v"), b"internal").unwrap();
    std::fs::write(root.join(".ferry-tmp-x-1"), b"temp").unwrap();
    std::fs::write(root.join("hello.txt"), b"hi").unwrap();
    let events = wait_for(&rx, &rel("hello.txt"), Duration::from_secs(2));
    for ev in &events {
        if let WatchEvent::Paths(ps) = ev {
            assert!(ps.iter().all(|p| p.as_str() == "hello.txt"), "unexpected paths {ps:?}");
        }
    }

    // Renames report both sides; new directories are watched.
    std::fs::create_dir(root.join("d")).unwrap();
    wait_for(&rx, &rel("d"), Duration::from_secs(2));
    std::fs::rename(root.join("hello.txt"), root.join("d/moved.txt")).unwrap();
    let events = wait_for(&rx, &rel("d/moved.txt"), Duration::from_secs(2));
    let all: Vec<RelPath> = events
        .iter()
        .flat_map(|e| match e {
            WatchEvent::Paths(ps) => ps.clone(),
            WatchEvent::Rescan => Vec::new(),
        })
        .collect();
    assert!(all.contains(&rel("hello.txt")), "{all:?}");
}

#[test]
fn a_symlinked_folder_is_not_watched_through() {
    let dir = tempfile::tempdir().unwrap();
    let (root, outside) = (dir.path().join("share"), dir.path().join("outside"));
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
    let (_w, rx) = watched(&root);
    // Written outside first: one inotify queue keeps the order, so if the link were
    // followed its events would come before the marker's.
    std::fs::write(outside.join("sub/x"), b"outside").unwrap();
    std::fs::write(outside.join("y"), b"outside").unwrap();
    std::fs::write(root.join("marker"), b"inside").unwrap();
    let events = wait_for(&rx, &rel("marker"), Duration::from_secs(2));
    for ev in &events {
        if let WatchEvent::Paths(ps) = ev {
            assert!(ps.iter().all(|p| !p.as_str().starts_with("link/")), "watched through the link: {ps:?}");
        }
    }
}

#[test]
fn a_folder_swapped_for_a_link_is_not_watched_through() {
    // The share lies inside the folder the links point at (a share in /tmp, a link to /tmp).
    let dir = tempfile::tempdir().unwrap();
    let (base, root) = (dir.path().to_path_buf(), dir.path().join("share"));
    std::fs::create_dir_all(root.join("h")).unwrap();
    let (_w, rx) = watched(&root);
    // A folder replaced by a link before notify adds the folder's watch, many times in a
    // row: faster than notify's thread reads its events, so swaps land in that window
    // (before the fix, the watch of `h` then answered to `dN/share/h`).
    for i in 0..SWAPS {
        let d = root.join(format!("d{i}"));
        std::fs::create_dir(&d).unwrap();
        std::fs::remove_dir(&d).unwrap();
        std::os::unix::fs::symlink(&base, &d).unwrap();
    }
    // A new file in the share is reported under its own path. One written while the watcher
    // is being replaced is covered by the full scan asked for instead: then the next one.
    let mut got = Vec::new();
    for k in 0..MARKERS {
        let marker = rel(&format!("h/marker{k}"));
        std::fs::write(marker.to_fs(&root), b"inside").unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Ok(ev) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let (hit, rescan) =
                (matches!(&ev, WatchEvent::Paths(ps) if ps.contains(&marker)), ev == WatchEvent::Rescan);
            got.push(ev);
            if hit {
                return;
            }
            if rescan {
                break;
            }
        }
    }
    panic!("no marker reported under its own path; got {got:?}");
}

// Linux only: notify (the other platforms) reports the moved folder alone and the removed root
// as a removal, which the node's scan handles as well, more slowly.
#[cfg(target_os = "linux")]
#[test]
fn a_folder_moved_in_reports_what_was_already_in_it() {
    // Built outside, then moved in: its files were there before any watch could be.
    let dir = tempfile::tempdir().unwrap();
    let (root, outside) = (dir.path().join("share"), dir.path().join("outside"));
    std::fs::create_dir_all(outside.join("n/m")).unwrap();
    std::fs::write(outside.join("n/m/f.txt"), b"early").unwrap();
    std::fs::write(outside.join("n/top.txt"), b"early").unwrap();
    std::fs::create_dir_all(&root).unwrap();
    let (_w, rx) = watched(&root);
    std::fs::rename(outside.join("n"), root.join("n")).unwrap();
    paths_until(&rx, &["n", "n/m", "n/m/f.txt", "n/top.txt"]);
    // Its nested folder is watched too.
    std::fs::write(root.join("n/m/later.txt"), b"later").unwrap();
    paths_until(&rx, &["n/m/later.txt"]);
}

// Linux only: notify (the other platforms) reports the moved folder alone and the removed root
// as a removal, which the node's scan handles as well, more slowly.
#[cfg(target_os = "linux")]
#[test]
fn a_folder_moved_within_the_share_is_watched_at_its_new_place() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::write(root.join("a/b/f.txt"), b"f").unwrap();
    let (_w, rx) = watched(root);
    std::fs::rename(root.join("a"), root.join("z")).unwrap();
    paths_until(&rx, &["a", "z", "z/b/f.txt"]);
    std::fs::write(root.join("z/b/new.txt"), b"new").unwrap();
    let after = paths_until(&rx, &["z/b/new.txt"]);
    assert!(after.iter().all(|p| !p.starts_with("a/")), "reported under the old place: {after:?}");
}

// Linux only: notify (the other platforms) reports the moved folder alone and the removed root
// as a removal, which the node's scan handles as well, more slowly.
#[cfg(target_os = "linux")]
#[test]
fn a_removed_root_asks_for_a_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("share");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let (_w, rx) = watched(&root);
    std::fs::remove_dir_all(&root).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    while let Ok(ev) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if ev == WatchEvent::Rescan {
            return;
        }
        got.push(ev);
    }
    panic!("no full scan asked for after the root went; got {got:?}");
}

#[test]
fn dropping_the_watcher_ends_its_thread() {
    let dir = tempfile::tempdir().unwrap();
    let (w, rx) = watched(dir.path());
    drop(w);
    // The thread owns the sink, and with it the sender: it is gone once the thread ends.
    match rx.recv_timeout(PATIENCE) {
        Err(mpsc::RecvTimeoutError::Disconnected) => {}
        other => panic!("the watcher's thread still runs after the drop: {other:?}"),
    }
}

#[test]
fn relative_filters() {
    use std::os::unix::ffi::OsStrExt;
    let root = Path::new("/s");
    let at = |p: &str| relative(root, root, Path::new(p));
    assert_eq!(at("/s/a/b"), Look::Path(rel("a/b")));
    assert_eq!(at("/s"), Look::Nothing);
    assert_eq!(at("/s/.ferry"), Look::Nothing);
    assert_eq!(at("/s/.ferry/versions/x"), Look::Nothing);
    assert_eq!(at("/s/a/.ferry-tmp-x"), Look::Nothing);
    assert_eq!(at("/s/a/.ferry"), Look::Path(rel("a/.ferry")));
    assert_eq!(at("/other/x"), Look::Nothing);
    // A name Ferry cannot sync stands for its folder, whose scan reports it.
    let bad = std::ffi::OsStr::from_bytes(b"/s/a/b\xffc/d");
    assert_eq!(relative(root, root, Path::new(bad)), Look::Path(rel("a")));
    assert_eq!(relative(root, root, Path::new(std::ffi::OsStr::from_bytes(b"/s/\xff"))), Look::Everything);
    assert_eq!(at(&format!("/s/a/{}", "n".repeat(300))), Look::Path(rel("a")));
}
