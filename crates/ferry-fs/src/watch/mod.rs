//! The watcher: debounced, recursive file system events turned into share-relative paths.
//!
//! On Linux Ferry runs its own inotify watcher ([`linux`]): it watches folders only (found by
//! `readdir`'s entry types, no `stat` of files), never `.ferry/`, and never asks for open or
//! access events, so neither a restart's walk nor the scan's own reads and snapshot links cost
//! events (notify's recursive watch stat'ed every entry and always subscribed to `IN_OPEN`:
//! ~29% of a 1M-file first index's CPU and most of its restart, BENCHMARKS.md "Issue 17").
//! Elsewhere notify's recursive watcher does the work ([`notify_impl`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_proto::{FERRY_DIR, RelPath, TEMP_PREFIX};

use crate::error::FsError;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod notify_impl;
#[cfg(test)]
mod tests;

#[cfg(target_os = "linux")]
use linux as imp;
#[cfg(not(target_os = "linux"))]
use notify_impl as imp;

/// What the watcher tells its sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// These paths (deduplicated, sorted; both sides of renames) may have changed: scan them.
    Paths(Vec<RelPath>),
    /// The OS dropped events or reported an error: do a full scan.
    Rescan,
}

/// A running watcher; dropping it stops watching (and ends its thread).
pub struct ShareWatcher {
    _live: imp::Live,
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

/// Watches `root` recursively and calls `sink` from the watcher's thread with deduplicated
/// relative paths once events have been quiet for `debounce` (or a burst has been held for
/// [`MAX_HOLD`] periods). The thread blocks while nothing happens: an idle share costs no
/// wakeups. Paths under `.ferry/`, temp files and the root itself are dropped, a name that is
/// not a valid [`RelPath`] stands for the folder above it (see [`classify`]); pure reads are
/// not events; a queue overflow or a watcher error asks for a full scan. Nothing is ever
/// watched through a symlink: Ferry syncs a link as a link and never reads what it points at,
/// and a link to a big folder elsewhere would spend the watch budget on it and flood the share
/// with events from outside (tests/tests/hostile_sequences.rs).
///
/// The watches are in place when this returns: a change made afterwards is reported.
pub fn watch(
    root: &Path,
    debounce: Duration,
    sink: impl Fn(WatchEvent) + Send + 'static,
) -> Result<ShareWatcher, FsError> {
    let debounce = debounce.max(Duration::from_millis(1));
    let live = imp::start(root, debounce, Box::new(sink))?;
    Ok(ShareWatcher { _live: live, root: root.to_path_buf() })
}

/// The sink, boxed once so the platform code is not generic.
type Sink = Box<dyn Fn(WatchEvent) + Send + 'static>;

/// What an event's path asks the scanner to look at.
#[derive(Debug, PartialEq, Eq)]
enum Look {
    Path(RelPath),
    /// The whole share (a top-level name that is not a valid share path).
    Everything,
    Nothing,
}

/// `p` relative to the root (as given or canonical), if it is a path we sync: see [`classify`].
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn relative(root: &Path, canonical: &Path, p: &Path) -> Look {
    let Ok(rel) = p.strip_prefix(root).or_else(|_| p.strip_prefix(canonical)) else { return Look::Nothing };
    classify(rel)
}

/// A share-relative path from an event, if it is a path we sync. The root itself, `.ferry/`
/// and temp names are not. A name Ferry cannot sync (not UTF-8, too long) is the nearest folder
/// above it that is a valid path (the whole share at the top): that folder's scan reports the
/// name as an item that cannot be synced, or, once it is gone, drops the item.
fn classify(rel: &Path) -> Look {
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
