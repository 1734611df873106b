//! The inotify tree's own tests: what reaches the watcher at all, and the watches it holds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

use super::tree::{Burst, Tree};

/// How long a test waits for events it expects.
const PATIENCE: Duration = Duration::from_secs(3);

/// Reads the tree's events into one burst until `done` holds of it.
fn read_until(tree: &mut Tree, done: impl Fn(&Burst) -> bool) -> Burst {
    let mut buf = vec![0u8; 64 * 1024];
    let mut burst = Burst::default();
    let deadline = Instant::now() + PATIENCE;
    while !done(&burst) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "not done within {PATIENCE:?}; seen {:?}", tree.seen);
        let ts = Timespec { tv_sec: left.as_secs() as i64, tv_nsec: left.subsec_nanos().into() };
        rustix::event::poll(&mut [PollFd::new(&tree.inotify, PollFlags::IN)], Some(&ts)).unwrap();
        tree.read(&mut buf, &mut burst).unwrap();
    }
    burst
}

fn has(path: &str) -> impl Fn(&Burst) -> bool + '_ {
    move |b: &Burst| b.paths.iter().any(|p| p.as_str() == path)
}

fn paths(list: &[&str]) -> Vec<PathBuf> {
    list.iter().map(PathBuf::from).collect()
}

#[test]
fn reads_and_ferrys_own_folder_make_no_events() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join(".ferry/versions")).unwrap();
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.txt"), b"a").unwrap();
    std::fs::write(root.join("sub/b.txt"), b"b").unwrap();
    let mut tree = Tree::new(root).unwrap();
    assert_eq!(tree.watched(), paths(&["", "sub"]), ".ferry/ must not be watched");

    // What a first index does: read every file, snapshot it by a hard link in .ferry/, write
    // its own state there.
    assert_eq!(std::fs::read(root.join("a.txt")).unwrap(), b"a");
    assert_eq!(std::fs::read(root.join("sub/b.txt")).unwrap(), b"b");
    std::fs::hard_link(root.join("a.txt"), root.join(".ferry/versions/a")).unwrap();
    std::fs::hard_link(root.join("sub/b.txt"), root.join(".ferry/versions/b")).unwrap();
    std::fs::write(root.join(".ferry/versions/state"), b"internal").unwrap();
    // Then a change of the user's: one inotify queue keeps the order, so anything the above
    // caused would be read before it.
    std::fs::write(root.join("marker"), b"m").unwrap();
    read_until(&mut tree, has("marker"));
    assert!(tree.seen.iter().all(|p| p == Path::new("marker")), "events besides the marker's: {:?}", tree.seen);
}

#[test]
fn a_folder_moved_out_is_no_longer_watched() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("share");
    std::fs::create_dir_all(root.join("z/b")).unwrap();
    let mut tree = Tree::new(&root).unwrap();
    assert_eq!(tree.watched(), paths(&["", "z", "z/b"]));
    std::fs::rename(root.join("z"), dir.path().join("z")).unwrap();
    read_until(&mut tree, has("z"));
    assert_eq!(tree.watched(), paths(&[""]));
    tree.seen.clear();
    std::fs::write(dir.path().join("z/b/outside"), b"o").unwrap();
    std::fs::write(root.join("marker"), b"m").unwrap();
    read_until(&mut tree, has("marker"));
    assert!(tree.seen.iter().all(|p| p == Path::new("marker")), "events from outside the share: {:?}", tree.seen);
}

#[test]
fn an_overflow_asks_for_a_full_scan_and_watches_anew() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("old")).unwrap();
    let mut tree = Tree::new(root).unwrap();
    // More events than the queue holds (3 per round: create, close after writing, delete),
    // read only afterwards. A folder made meanwhile has its CREATE lost with the overflow.
    let queue: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(16384);
    for _ in 0..queue / 3 + 100 {
        std::fs::write(root.join("churn"), b"c").unwrap();
        std::fs::remove_file(root.join("churn")).unwrap();
    }
    std::fs::create_dir(root.join("new")).unwrap();
    let burst = read_until(&mut tree, |b| b.renew);
    assert!(burst.rescan);
    // Drain what is left, then watch anew: the folder whose event was lost is watched.
    let _ = read_until(&mut tree, |_| true);
    tree.renew();
    assert_eq!(tree.watched(), paths(&["", "new", "old"]));
    std::fs::write(root.join("new/after"), b"a").unwrap();
    read_until(&mut tree, has("new/after"));
}
