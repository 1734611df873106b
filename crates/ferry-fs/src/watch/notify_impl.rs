//! notify's recursive watcher, for the platforms without Ferry's own (see [`super::linux`]).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use ferry_proto::RelPath;
use notify::event::{AccessKind, AccessMode, CreateKind, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use super::{Look, MAX_HOLD, Sink, WatchEvent, relative};
use crate::error::FsError;

/// What the share's watcher holds: the notify watcher in use. The debounce thread holds only a
/// weak reference (it replaces the watcher, see [`watched_through_link`]), so dropping this
/// ends the watching.
pub(super) type Live = Arc<Mutex<LiveWatcher>>;

/// An event from notify, tagged with the generation of the watcher that saw it: events of a
/// replaced watcher are dropped (the full scan asked for with its replacement covers them).
type Tagged = (u64, notify::Result<notify::Event>);

/// The notify watcher of one generation, and the sender its successor will use.
pub(super) struct LiveWatcher {
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
        .map_err(|e| FsError::Watch { path: root.to_path_buf(), source: std::io::Error::other(e) })?;
    watcher
        .watch(root, RecursiveMode::Recursive)
        .map_err(|e| FsError::Watch { path: root.to_path_buf(), source: std::io::Error::other(e) })?;
    Ok(watcher)
}

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

/// notify's side of [`super::watch`]. A burst that shows the watcher may be watching through a
/// symlink ([`watched_through_link`]) replaces it with a fresh one and asks for a full scan.
pub(super) fn start(root: &Path, debounce: Duration, sink: Sink) -> Result<Live, FsError> {
    let root = root.to_path_buf();
    let canonical = std::fs::canonicalize(&root).unwrap_or_else(|_| root.clone());
    let (tx, rx) = mpsc::channel::<Tagged>();
    let watcher = start_notify(&root, 0, tx.clone())?;
    let live = Arc::new(Mutex::new(LiveWatcher { watcher: Some(watcher), generation: 0, tx }));
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
    Ok(live)
}

/// Replaces the watcher with a fresh one (a new inotify instance, its folders walked again
/// without following links) and returns its generation. The old one goes first, so the two
/// never hold watches at once. Should the new one fail, the share goes on without one (the
/// periodic rescan still syncs), as when none could be started.
fn renew(live: &Mutex<LiveWatcher>, root: &Path, why: &str) -> u64 {
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
