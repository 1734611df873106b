//! Ferry's own inotify watcher (Linux): one thread, one inotify instance, a watch on each folder
//! of the share (see [`tree`]), events debounced into bursts.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::pipe::PipeFlags;

use super::{MAX_HOLD, Sink, WatchEvent};
use crate::error::FsError;

#[cfg(test)]
mod tests;
mod tree;

use tree::{Burst, Tree};

/// inotify's read buffer: ~2,000 events of short names per read.
const EVENT_BUFFER: usize = 64 * 1024;

/// What the share's watcher holds: the write end of a pipe whose read end the thread polls
/// along with inotify. Dropping it closes the pipe, which wakes the thread (`POLLHUP`) and
/// ends it, closing the inotify instance and its watches.
pub(super) struct Live {
    _stop: OwnedFd,
}

/// Linux's side of [`super::watch`]: the folders are watched before this returns.
pub(super) fn start(root: &Path, debounce: Duration, sink: Sink) -> Result<Live, FsError> {
    let started = std::time::Instant::now();
    let tree = Tree::new(root)?;
    tracing::debug!(millis = started.elapsed().as_millis() as u64, "watching");
    let (stop_rx, stop_tx) =
        rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| FsError::io("pipe for the watcher", root, e.into()))?;
    std::thread::Builder::new()
        .name("ferry-watch".into())
        .spawn(move || run(tree, &stop_rx, debounce, &sink))
        .map_err(|e| FsError::io("spawn watcher thread", root, e))?;
    Ok(Live { _stop: stop_tx })
}

/// The watcher's thread: blocks in `poll` until events come (an idle share costs no wakeups),
/// then gathers them until they have been quiet for `debounce`, or the burst has been held for
/// [`MAX_HOLD`] periods, and hands the burst to `sink`. Ends when the [`Live`] is dropped.
fn run(mut tree: Tree, stop: &OwnedFd, debounce: Duration, sink: &Sink) {
    let mut buf = vec![0u8; EVENT_BUFFER];
    let mut burst = Burst::default();
    // When the burst's first and latest events were read.
    let mut held: Option<(Instant, Instant)> = None;
    loop {
        let wait = held.map(|(first, last)| {
            let due = (first + debounce * MAX_HOLD).min(last + debounce);
            due.saturating_duration_since(Instant::now())
        });
        if wait == Some(Duration::ZERO) {
            deliver(&mut tree, std::mem::take(&mut burst), sink);
            held = None;
            continue;
        }
        let timeout = wait.map(|w| Timespec { tv_sec: w.as_secs() as i64, tv_nsec: w.subsec_nanos().into() });
        let (events, stopped) = {
            let mut fds = [PollFd::new(&tree.inotify, PollFlags::IN), PollFd::new(stop, PollFlags::IN)];
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => {
                    tracing::warn!("watcher: poll failed: {e}; watching stops, the periodic rescan goes on");
                    return;
                }
            }
            (!fds[0].revents().is_empty(), !fds[1].revents().is_empty())
        };
        if stopped {
            return;
        }
        if events {
            match tree.read(&mut buf, &mut burst) {
                Ok(false) => {}
                Ok(true) => {
                    let now = Instant::now();
                    held = Some((held.map_or(now, |h| h.0), now));
                }
                Err(e) => {
                    tracing::warn!("watcher: reading events failed: {e}; asking for a full scan");
                    burst.rescan = true;
                    burst.renew = true;
                    let now = Instant::now();
                    held = Some((held.map_or(now, |h| h.0), now));
                }
            }
        }
    }
}

/// Hands a burst to the sink, first watching the tree anew if events were lost.
fn deliver(tree: &mut Tree, burst: Burst, sink: &Sink) {
    if burst.renew {
        tree.renew();
    }
    if burst.rescan {
        sink(WatchEvent::Rescan);
    } else if !burst.paths.is_empty() {
        sink(WatchEvent::Paths(burst.paths.into_iter().collect()));
    }
}
