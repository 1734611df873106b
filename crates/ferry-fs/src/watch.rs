//! The watcher: debounced, recursive file system events turned into share-relative paths.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferry_proto::{FERRY_DIR, RelPath, TEMP_PREFIX};
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use crate::error::FsError;

/// What the watcher tells its sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// These paths (deduplicated, sorted; both sides of renames) may have changed: scan them.
    Paths(Vec<RelPath>),
    /// The OS dropped events or reported an error: do a full scan.
    Rescan,
}

/// A running watcher; dropping it stops watching (and ends its debounce thread).
pub struct ShareWatcher {
    _watcher: RecommendedWatcher,
    root: PathBuf,
}

impl ShareWatcher {
    /// The watched root.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl std::fmt::Debug for ShareWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareWatcher").field("root", &self.root).finish()
    }
}

/// A burst of events is delivered at the latest after this many debounce periods, even if the
/// events keep coming (a long copy still shows progress).
const MAX_HOLD: u32 = 20;

/// Watches `root` recursively (notify) and calls `sink` from a debounce thread with
/// deduplicated relative paths once events have been quiet for `debounce` (or a burst has been
/// held for [`MAX_HOLD`] periods). The thread blocks while nothing happens: an idle share costs
/// no wakeups (a ticking debouncer woke 80 times a second per share). Paths under `.ferry/`,
/// temp files and the root itself are dropped, a name that is not a valid [`RelPath`] stands
/// for the folder above it (see [`relative`]); pure
/// reads (open/close without writing) are ignored; a queue overflow or a watcher error asks for
/// a full scan.
pub fn watch(
    root: &Path,
    debounce: Duration,
    sink: impl Fn(WatchEvent) + Send + 'static,
) -> Result<ShareWatcher, FsError> {
    let root = root.to_path_buf();
    let canonical = std::fs::canonicalize(&root).unwrap_or_else(|_| root.clone());
    let debounce = debounce.max(Duration::from_millis(1));
    let (tx, rx) = mpsc::channel::<notify::Result<notify::Event>>();
    // Never through a symlink: Ferry syncs a link as a link and never reads what it points at,
    // and notify follows links by default, so a link to a big folder elsewhere (`/tmp`, `~`,
    // whatever a peer or the user put in the share) would add a watch on every folder below it
    // and flood the share with events from outside it, until inotify's watch limit is spent
    // and changes in the share itself go unseen (found by tests/tests/hostile_sequences.rs).
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher = notify::RecommendedWatcher::new(
        move |res| {
            let _ = tx.send(res);
        },
        config,
    )
    .map_err(|source| FsError::Watch { path: root.clone(), source })?;
    watcher.watch(&root, RecursiveMode::Recursive).map_err(|source| FsError::Watch { path: root.clone(), source })?;
    let (r1, r2) = (root.clone(), canonical);
    std::thread::Builder::new()
        .name("ferry-watch".into())
        .spawn(move || {
            // Blocks until the first event of a burst; ends when the watcher is dropped.
            while let Ok(first) = rx.recv() {
                let mut rescan = false;
                let mut paths = BTreeSet::new();
                let mut take = |res: notify::Result<notify::Event>| match res {
                    Ok(ev) => {
                        if ev.need_rescan() {
                            rescan = true;
                        }
                        if matches!(ev.kind, EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write)) {
                            return;
                        }
                        for p in &ev.paths {
                            match relative(&r1, &r2, p) {
                                Look::Path(rel) => drop(paths.insert(rel)),
                                Look::Everything => rescan = true,
                                Look::Nothing => {}
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "watcher error; asking for a full scan");
                        rescan = true;
                    }
                };
                take(first);
                let deadline = Instant::now() + debounce * MAX_HOLD;
                let mut closed = false;
                loop {
                    let wait = debounce.min(deadline.saturating_duration_since(Instant::now()));
                    if wait.is_zero() {
                        break;
                    }
                    match rx.recv_timeout(wait) {
                        Ok(res) => take(res),
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
                if rescan {
                    sink(WatchEvent::Rescan);
                } else if !paths.is_empty() {
                    sink(WatchEvent::Paths(paths.into_iter().collect()));
                }
                if closed {
                    break;
                }
            }
        })
        .map_err(|e| FsError::io("spawn watcher thread", &root, e))?;
    Ok(ShareWatcher { _watcher: watcher, root })
}

/// What an event's path asks the scanner to look at.
#[derive(Debug, PartialEq, Eq)]
enum Look {
    Path(RelPath),
    /// The whole share (a top-level name that is not a valid share path).
    Everything,
    Nothing,
}

/// `p` relative to the root (as given or canonical), if it is a path we sync. A name Ferry
/// cannot sync (not UTF-8, too long) is the nearest folder above it that is a valid path (the
/// whole share at the top): that folder's scan reports the name as an item that cannot be
/// synced, or, once it is gone, drops the item.
fn relative(root: &Path, canonical: &Path, p: &Path) -> Look {
    let Ok(rel) = p.strip_prefix(root).or_else(|_| p.strip_prefix(canonical)) else { return Look::Nothing };
    let s = rel.to_string_lossy();
    if s.is_empty() || s == FERRY_DIR || s.starts_with(&format!("{FERRY_DIR}/")) {
        return Look::Nothing;
    }
    if s.split('/').any(|c| c.starts_with(TEMP_PREFIX)) {
        return Look::Nothing;
    }
    let valid = |r: &Path| r.to_str().and_then(|s| RelPath::new(s).ok());
    let mut at = Some(rel);
    while let Some(r) = at.filter(|r| !r.as_os_str().is_empty()) {
        if let Some(path) = valid(r) {
            return Look::Path(path);
        }
        at = r.parent();
    }
    Look::Everything
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    fn rel(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
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
        let (tx, rx) = mpsc::channel();
        let _w = watch(root, Duration::from_millis(50), move |ev| {
            let _ = tx.send(ev);
        })
        .unwrap();

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
        let (tx, rx) = mpsc::channel();
        let _w = watch(&root, Duration::from_millis(50), move |ev| {
            let _ = tx.send(ev);
        })
        .unwrap();
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
}
