//! [`ShareHandle`]: how the rest of the node reaches a share's actor (`share`). The actor is
//! the only writer of its share's index and files; everyone else holds this handle, asks for
//! work (a scan, a pull) with the cheap `request_*` calls, and sends commands that change the
//! share (restore, rewind, resolve, override, revert, republish, prune) as [`ShareCommand`]s
//! with [`run_command`] (usually through `Context::share_command`), which waits for the actor's
//! reply. A leaf module: the context's registry holds these handles.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use ferry_fs::ShareWatcher;
use ferry_proto::{DeviceId, RelPath, ShareId};
use tokio::sync::{Notify, mpsc, oneshot, watch as twatch};
use tokio::task::JoinHandle;

use crate::api::{
    ApiError, ApiResult, ErrorCode, ModeActionDto, PruneDto, ResolveDto, ResolvedDto, RestoreDto, RestoredDto,
    RewindDto, RewindReqDto,
};
use crate::failed::FailedItems;

/// Commands queued per share: a user acts on one share at a time, so a short queue is plenty;
/// a full one makes the caller wait (back-pressure), never drops a command.
pub(crate) const COMMAND_QUEUE: usize = 16;

/// Where the actor sends a command's outcome.
pub(crate) type Reply<T> = oneshot::Sender<ApiResult<T>>;

/// The operations that change a share's files or index on the user's (or the guard's) behalf.
/// The share actor runs them one at a time, between its scans and pulls, so each sees the index
/// and the disk as the last write left them and no other write lands before it commits.
pub(crate) enum ShareCommand {
    /// Bring a version of a file back (`ferry restore`).
    Restore(RestoreDto, Reply<RestoredDto>),
    /// Put the share or a folder back as it was at a time (`ferry rewind`, also `--dry-run`).
    Rewind(RewindReqDto, Reply<RewindDto>),
    /// Settle a conflict (`ferry resolve`).
    Resolve(ResolveDto, Reply<ResolvedDto>),
    /// Send-only: make every other device match this one (`ferry share override`).
    Override(Reply<ModeActionDto>),
    /// Receive-only: drop local changes and match the others (`ferry share revert`).
    Revert(Reply<ModeActionDto>),
    /// A refused mass delete: give every kept file a version that supersedes the peers'
    /// deletions, so it comes back on the devices that deleted it.
    Republish(Reply<()>),
    /// Drop the versions the retention policy no longer keeps, as of this time (ms).
    Prune(i64, Reply<PruneDto>),
}

#[derive(Default)]
pub(crate) struct Pending {
    pub full: bool,
    /// With `full`: re-hash every file (`ferry rescan --full`).
    pub rehash: bool,
    /// A full pull pass: every path of every member's index compared with ours.
    pub pull: bool,
    /// Paths whose records from peers ask something of this device (see `need.rs`): without
    /// `pull`, the next pull plans these alone (see `share::pull`). Never more than
    /// [`PULL_PATHS_MAX`]: past that, `pull` is set instead.
    pub pull_paths: BTreeSet<RelPath>,
    /// Paths to scan (the watcher's, or changed under an operation): never more than
    /// [`SCAN_PATHS_MAX`] (see [`Pending::scan_paths`]); none while `full` is set.
    paths: BTreeSet<RelPath>,
}

/// Most paths a scan of listed paths may take. Each costs an `lstat` of it and its folders and
/// an index lookup, a full walk about the same per file in path order; past this many a full
/// scan is asked instead, so the list held while the actor is busy stays small: a pull that
/// writes a million files makes a million watcher paths, about 100 MiB held until it ends.
pub(crate) const SCAN_PATHS_MAX: usize = 4096;

impl Pending {
    /// A share's first work: a full scan (what changed while Ferry was not running), then a
    /// full pull pass.
    pub fn at_start() -> Pending {
        Pending { full: true, pull: true, ..Default::default() }
    }

    /// Adds paths to scan; past [`SCAN_PATHS_MAX`] (or with a full scan pending, which covers
    /// them) a full scan instead.
    pub fn scan_paths(&mut self, paths: impl IntoIterator<Item = RelPath>) {
        if self.full {
            return;
        }
        self.paths.extend(paths);
        if self.paths.len() > SCAN_PATHS_MAX {
            self.paths.clear();
            self.full = true;
        }
    }

    /// Takes what to scan: a full scan, the listed paths (empty with a full scan), or nothing.
    pub fn take_scan(&mut self) -> (bool, BTreeSet<RelPath>) {
        let paths = std::mem::take(&mut self.paths);
        let full = std::mem::take(&mut self.full);
        (full, if full { BTreeSet::new() } else { paths })
    }

    /// Whether anything waits: a scan or a pull.
    pub fn has_work(&self) -> bool {
        self.full || self.pull || !self.pull_paths.is_empty() || !self.paths.is_empty()
    }
}

/// Most paths a pull planned path by path may take. Point lookups cost a few microseconds per
/// path and member; a full pass streams every index in order, about a microsecond per record.
/// Past this many paths the update is a big one (a first sync, a mass change) whose pass does a
/// lot of work anyway, and the full pass also settles what depends on other paths (renames).
pub(crate) const PULL_PATHS_MAX: usize = 4096;

#[derive(Default, Clone)]
pub(crate) struct Runtime {
    pub state: &'static str,
    pub need: u64,
    pub last_error: Option<String>,
    /// Bytes fetched from peers / copied from local files since start.
    pub fetched_bytes: u64,
    pub reused_bytes: u64,
    /// Bytes of this share's content served to other devices since the node started.
    pub served_bytes: u64,
    /// What cannot be synced (rebuilt by scans and pulls).
    pub failed: FailedItems,
}

/// The node's handle on a share actor.
pub(crate) struct ShareHandle {
    pub(crate) id: ShareId,
    pub(crate) pending: Arc<Mutex<Pending>>,
    pub(crate) wake: Arc<Notify>,
    pub(crate) seq: twatch::Sender<u64>,
    pub(crate) members: Arc<Mutex<Vec<DeviceId>>>,
    pub(crate) runtime: Arc<Mutex<Runtime>>,
    /// The share's downloads in progress, which its members may fetch chunks of (see `swarm`).
    pub(crate) downloads: Arc<crate::swarm::Downloads>,
    pub(crate) stop: twatch::Sender<bool>,
    pub(crate) task: Option<JoinHandle<()>>,
    pub(crate) _watcher: Option<ShareWatcher>,
    /// The actor's command queue (see [`ShareCommand`]).
    pub(crate) commands: mpsc::Sender<ShareCommand>,
}

impl ShareHandle {
    pub fn request_pull(&self) {
        let mut p = self.pending.lock().unwrap();
        p.pull = true;
        p.pull_paths.clear();
        drop(p);
        self.wake.notify_one();
    }
    /// A pull of these paths (an index update named them): planned by themselves unless a
    /// full pull is due anyway or too many are waiting (see [`PULL_PATHS_MAX`]).
    pub fn request_pull_paths(&self, paths: Vec<RelPath>) {
        let mut p = self.pending.lock().unwrap();
        if !p.pull {
            p.pull_paths.extend(paths);
            if p.pull_paths.len() > PULL_PATHS_MAX {
                p.pull = true;
                p.pull_paths.clear();
            }
        }
        drop(p);
        self.wake.notify_one();
    }
    pub fn request_full_scan(&self) {
        self.pending.lock().unwrap().full = true;
        self.wake.notify_one();
    }
    /// Rescans these paths soon (after a history operation changed them).
    pub fn request_paths(&self, paths: Vec<RelPath>) {
        self.pending.lock().unwrap().scan_paths(paths);
        self.wake.notify_one();
    }
    /// A full scan that re-hashes every file.
    pub fn request_rehash(&self) {
        let mut p = self.pending.lock().unwrap();
        p.full = true;
        p.rehash = true;
        drop(p);
        self.wake.notify_one();
    }
    /// The actor's command queue, cloned out of the handle so that no lock on the registry is
    /// held while a command waits (see [`run_command`]).
    pub fn command_sender(&self) -> mpsc::Sender<ShareCommand> {
        self.commands.clone()
    }
    pub fn has_member(&self, d: &DeviceId) -> bool {
        self.members.lock().unwrap().contains(d)
    }
    pub fn set_members(&self, m: Vec<DeviceId>) {
        *self.members.lock().unwrap() = m;
    }
    pub fn seq_watch(&self) -> twatch::Receiver<u64> {
        self.seq.subscribe()
    }
    /// The sequence of the last committed change to the local index.
    pub fn current_seq(&self) -> u64 {
        *self.seq.borrow()
    }
    /// Stops the actor after the item at hand and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        self.wake.notify_one();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        tracing::debug!(share = %self.id, "worker stopped");
    }
}

/// What a share's status reads from the index: live files and bytes, files changed here and
/// not yet synced, and whether every connected member holds our versions. Walking the index
/// costs O(files); it is cached per share and reused until an index is written to (the store's
/// index generation moves: device, prompt or settings writes do not count) or the set of
/// connected devices changes, so an idle node answers status calls (the app refreshes
/// every few seconds) without decoding its whole index each time.
#[derive(Clone)]
pub(crate) struct IndexStatus {
    pub generation: u64,
    pub connected: Vec<DeviceId>,
    pub counts: StatusCounts,
    /// The index states the counts were computed from (kept with them at a stop).
    pub states: ferry_store::WalkStates,
    /// When the counts were computed, and how long that took (see `share::status`).
    pub at: std::time::Instant,
    pub took: std::time::Duration,
}

/// The index-derived part of a share's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusCounts {
    /// Live files, and their bytes (directories and links add no bytes).
    pub files: u64,
    pub bytes: u64,
    /// Changes made here in a receive-only share, not sent.
    pub local_changes: u64,
    /// Every connected member holds our version of every path we hold (sent changes only).
    pub peers_have_all: bool,
}

/// Sends a command built by `make` to a share actor and waits for its reply.
pub(crate) async fn run_command<T>(
    tx: mpsc::Sender<ShareCommand>,
    make: impl FnOnce(Reply<T>) -> ShareCommand,
) -> ApiResult<T> {
    let (reply, rx) = oneshot::channel();
    let gone = || ApiError::new(ErrorCode::Conflict, "the share is not running");
    tx.send(make(reply)).await.map_err(|_| gone())?;
    rx.await.map_err(|_| gone())?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(range: std::ops::Range<usize>) -> impl Iterator<Item = RelPath> {
        range.map(|i| RelPath::new(format!("f{i}")).unwrap())
    }

    #[test]
    fn paths_to_scan_become_a_full_scan_past_the_cap_and_are_dropped_under_one() {
        let mut p = Pending::default();
        p.scan_paths(paths(0..SCAN_PATHS_MAX));
        assert!(!p.full);
        assert_eq!(p.paths.len(), SCAN_PATHS_MAX);
        p.scan_paths(paths(SCAN_PATHS_MAX..SCAN_PATHS_MAX + 1));
        assert!(p.full, "one more path than the cap asks for a full scan");
        assert!(p.paths.is_empty(), "the list is dropped: the full scan covers it");
        p.scan_paths(paths(0..10));
        assert!(p.paths.is_empty(), "nothing is listed while a full scan is pending");
        assert_eq!(p.take_scan(), (true, BTreeSet::new()));
        assert!(!p.has_work());
        p.scan_paths(paths(0..2));
        assert_eq!(p.take_scan(), (false, paths(0..2).collect()));
        // A full scan asked directly (a rescan) takes over what was listed.
        p.scan_paths(paths(0..2));
        p.full = true;
        assert_eq!(p.take_scan(), (true, BTreeSet::new()));
    }
}
