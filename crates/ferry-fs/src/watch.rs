//! The watcher: debounced, recursive file system events turned into share-relative paths.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use ferry_proto::{FERRY_DIR, RelPath, TEMP_PREFIX};
use notify::event::{AccessKind, AccessMode, CreateKind, EventKind};
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
    /// The notify watcher in use. The debounce thread holds only a weak reference (it replaces
    /// the watcher, see [`watched_through_link`]), so dropping this ends the watching.
    _live: Arc<Mutex<Live>>,
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

/// An event from notify, tagged with the generation of the watcher that saw it: events of a
/// replaced watcher are dropped (the full scan asked for with its replacement covers them).
type Tagged = (u64, notify::Result<notify::Event>);

/// The notify watcher of one generation, and the sender its successor will use.
struct Live {
    watcher: Option<RecommendedWatcher>,
    generation: u64,
    tx: mpsc::Sender<Tagged>,
}

/// A notify watcher on `root`, recursive, never through a symlink at the start: Ferry syncs a
/// link as a link and never reads what it points at, and notify follows links by default, so a
/// link to a big folder elsewhere (`/tmp`, `~`, whatever a peer or the user put in the share)
/// would add a watch on every folder below it and flood the share with events from outside it,
/// until inotify's watch limit is spent and changes in the share itself go unseen (found by
/// tests/tests/hostile_sequences.rs). (A folder notify adds later can still be a link by then:
/// see [`watched_through_link`].)
fn start_notify(root: &Path, generation: u64, tx: mpsc::Sender<Tagged>) -> Result<RecommendedWatcher, FsError> {
    let config = notify::Config::default().with_follow_symlinks(false);
    let handler = move |res| {
        let _ = tx.send((generation, res));
    };
    let mut watcher = notify::RecommendedWatcher::new(handler, config)
        .map_err(|source| FsError::Watch { path: root.to_path_buf(), source })?;
    watcher
        .watch(root, RecursiveMode::Recursive)
        .map_err(|source| FsError::Watch { path: root.to_path_buf(), source })?;
    Ok(watcher)
}

/// A burst of events is delivered at the latest after this many debounce periods, even if the
/// events keep coming (a long copy still shows progress).
const MAX_HOLD: u32 = 20;

/// What one burst of events asks for.
#[derive(Default)]
struct Burst {
    rescan: bool,
    paths: BTreeSet<RelPath>,
    /// Folders created in the burst: notify adds a watch on each, later (see
    /// [`watched_through_link`]).
    new_dirs: BTreeSet<RelPath>,
}

impl Burst {
    fn take(&mut self, root: &Path, canonical: &Path, res: notify::Result<notify::Event>) {
        match res {
            Ok(ev) => {
                if ev.need_rescan() {
                    self.rescan = true;
                }
                if matches!(ev.kind, EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write)) {
                    return;
                }
                let new_dir = matches!(ev.kind, EventKind::Create(CreateKind::Folder));
                for p in &ev.paths {
                    match relative(root, canonical, p) {
                        Look::Path(rel) => {
                            if new_dir {
                                self.new_dirs.insert(rel.clone());
                            }
                            self.paths.insert(rel);
                        }
                        Look::Everything => self.rescan = true,
                        Look::Nothing => {}
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "watcher error; asking for a full scan");
                self.rescan = true;
            }
        }
    }
}

/// Why the watcher may be watching through a symlink, if it may: an event came from below a
/// path that is a link (it is), or a folder created in the burst is a link now (it may be).
///
/// notify adds the watch on a new folder after it has read the events of its batch, resolving
/// the path then (it stats through links, and its directory walk follows a link given as its
/// starting point whatever the configuration). A folder replaced by a link in that window (a
/// peer's change of kind applied at once, `mkdir x; rmdir x; ln -s /tmp x`) gets the link's
/// target watched, with every folder below it. Worse, inotify gives a folder already watched
/// (the share's own root and folders, when the target holds the share) its existing watch,
/// which notify then files under the path through the link: from then on, changes in those
/// folders are reported under that path, which the scanner refuses (a link is in the way), and
/// the device stops seeing its own new files while it looks idle and in sync (shown by
/// `a_folder_swapped_for_a_link_is_not_watched_through`). The caller then replaces the watcher.
fn watched_through_link(root: &Path, burst: &Burst) -> Option<&'static str> {
    let is_link = |p: &RelPath| std::fs::symlink_metadata(p.to_fs(root)).is_ok_and(|m| m.file_type().is_symlink());
    let above: BTreeSet<RelPath> = burst.paths.iter().flat_map(|p| p.ancestors()).collect();
    if above.iter().any(is_link) {
        return Some("events came from below a symlink");
    }
    burst.new_dirs.iter().any(is_link).then_some("a new folder is a symlink now")
}

/// Watches `root` recursively (notify) and calls `sink` from a debounce thread with
/// deduplicated relative paths once events have been quiet for `debounce` (or a burst has been
/// held for [`MAX_HOLD`] periods). The thread blocks while nothing happens: an idle share costs
/// no wakeups (a ticking debouncer woke 80 times a second per share). Paths under `.ferry/`,
/// temp files and the root itself are dropped, a name that is not a valid [`RelPath`] stands
/// for the folder above it (see [`relative`]); pure
/// reads (open/close without writing) are ignored; a queue overflow or a watcher error asks for
/// a full scan. A burst that shows the watcher may be watching through a symlink
/// ([`watched_through_link`]) replaces it with a fresh one and asks for a full scan.
pub fn watch(
    root: &Path,
    debounce: Duration,
    sink: impl Fn(WatchEvent) + Send + 'static,
) -> Result<ShareWatcher, FsError> {
    let root = root.to_path_buf();
    let canonical = std::fs::canonicalize(&root).unwrap_or_else(|_| root.clone());
    let debounce = debounce.max(Duration::from_millis(1));
    let (tx, rx) = mpsc::channel::<Tagged>();
    let watcher = start_notify(&root, 0, tx.clone())?;
    let live = Arc::new(Mutex::new(Live { watcher: Some(watcher), generation: 0, tx }));
    let weak = Arc::downgrade(&live);
    let (r1, r2) = (root.clone(), canonical);
    std::thread::Builder::new()
        .name("ferry-watch".into())
        .spawn(move || {
            let mut generation = 0;
            // Blocks until the first event of a burst; ends when the watcher is dropped (the
            // last sender goes with it).
            while let Ok(first) = rx.recv() {
                let mut burst = Burst::default();
                let mut take = |(g, res): Tagged| {
                    if g == generation {
                        burst.take(&r1, &r2, res);
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
                        Ok(ev) => take(ev),
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
                if let Some(why) = watched_through_link(&r1, &burst).filter(|_| !closed) {
                    let Some(live) = weak.upgrade() else { break };
                    generation = renew(&live, &r1, why);
                    burst.rescan = true;
                }
                if burst.rescan {
                    sink(WatchEvent::Rescan);
                } else if !burst.paths.is_empty() {
                    sink(WatchEvent::Paths(burst.paths.into_iter().collect()));
                }
                if closed {
                    break;
                }
            }
        })
        .map_err(|e| FsError::io("spawn watcher thread", &root, e))?;
    Ok(ShareWatcher { _live: live, root })
}

/// Replaces the watcher with a fresh one (a new inotify instance, its folders walked again
/// without following links) and returns its generation. The old one goes first, so the two
/// never hold watches at once. Should the new one fail, the share goes on without one (the
/// periodic rescan still syncs), as when none could be started.
fn renew(live: &Mutex<Live>, root: &Path, why: &str) -> u64 {
    let mut l = live.lock().unwrap();
    l.watcher = None;
    l.generation += 1;
    tracing::info!(root = %root.display(), "{why}: watching anew, then a full scan");
    match start_notify(root, l.generation, l.tx.clone()) {
        Ok(w) => l.watcher = Some(w),
        Err(e) => tracing::warn!(root = %root.display(), "cannot watch anew: {e}"),
    }
    l.generation
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

    /// Folder-to-link swaps in a row: before the fix one run of 50 already broke the watch.
    const SWAPS: usize = 200;
    /// New files written, one after the other, until one is reported under its own path.
    const MARKERS: usize = 5;

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
    fn a_folder_swapped_for_a_link_is_not_watched_through() {
        // The share lies inside the folder the links point at (a share in /tmp, a link to /tmp).
        let dir = tempfile::tempdir().unwrap();
        let (base, root) = (dir.path().to_path_buf(), dir.path().join("share"));
        std::fs::create_dir_all(root.join("h")).unwrap();
        let (tx, rx) = mpsc::channel();
        let _w = watch(&root, Duration::from_millis(50), move |ev| {
            let _ = tx.send(ev);
        })
        .unwrap();
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
