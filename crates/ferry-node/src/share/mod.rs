//! The share actor: one task per share (the `Worker`) owns every change to the share's files and
//! index. It scans (from watcher events, a periodic safety-net rescan, or on request), pulls
//! (applies peers' changes, retrying by itself what failed here), and runs the commands that
//! change the share on a user's behalf (`share_handle::ShareCommand`: restore, rewind, resolve,
//! override, revert, republish, prune), one at a time. Being the only writer, it never races a
//! write of its own: no lock, no other commit between its reads and its writes.
//!
//! Applying a remote file, in order: build a temp file beside the target from chunks we
//! already have (verified) and chunks fetched from peers (verified); re-check that the target
//! is still what the index says (if not, rescan first: it may be a conflict); archive the old
//! content as a version (hard link, so the original stays in place until the rename); rename
//! the temp over the target and fsync the directory; commit the index last. A crash at any
//! point leaves either the old file or the new one at the target, never a partial one.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_engine::guard::MassDeleteGuard;
use ferry_engine::{Action, ChunkSource, plan_chunks};
use ferry_fs::{ArchiveMode, Ignore, Known, Scope, archive, conflict_name, rename_within};
use ferry_fs::{WatchEvent, watch};
use ferry_proto::{ChunkHash, DeviceId, FERRY_DIR, FileKind, FileRecord, RelPath, ShareId};
use ferry_store::{
    LocalEntry, LocalMeta, LocalUpdate, PromptRecord, ShareRecord, VersionReason, VersionRecord, WalkStates,
};
use futures::StreamExt;
use tokio::sync::{Notify, mpsc, watch as twatch};

use crate::api::ApiError;
use crate::context::{ApiResult, Context};
use crate::error::ShareError;
use crate::events::Event;
use crate::failed::FailedItems;
use crate::link::PeerLink;
use crate::share_handle::{COMMAND_QUEUE, Pending, Runtime, ShareCommand, ShareHandle};

mod apply;
mod fast;
mod intents;
mod missing;
mod plan;
mod progress;
mod pull;
mod scan;
mod status;
#[cfg(test)]
mod tests;

pub(crate) use missing::folder_missing;
pub(crate) use status::{keep_counts, share_status};
#[cfg(test)]
use {crate::share_handle::StatusCounts, status::status_counts};

/// Blocks fetched or copied at once per file: enough to fill a LAN link (each request is a
/// round trip), few enough to bound memory (16 x 1 MiB max chunk).
const PARALLEL_BLOCKS: usize = 16;
/// Minimum interval between progress events for one file.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// Pull rounds per wake-up (a round walks every path: one pass, or a big pass's windows):
/// applying one change can make another applicable (a parent dir, a second peer's newer
/// version), and windows put deletions off to the next round; bounded so a flapping peer
/// cannot spin us.
const MAX_PULL_PASSES: usize = 4;
/// First wait before a pull that failed here (a full or failing disk, a file in use) is tried
/// again while a device that has the data is connected. Doubles on each failure up to
/// [`RETRY_MAX`]; a pass with no failure resets it. Failures with no device to fetch from are
/// not retried on a timer: a connection wakes the pull anyway.
const RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest wait between retries: a share whose disk filled up finishes within this long after
/// space comes back, and a failure that lasts costs one pull pass (a walk of the indexes) per
/// this period.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// New items named in one `FailedItems` event: enough for a notification and the activity
/// list; status has the whole list.
const NEW_ITEMS_EVENT: usize = 10;

struct Worker {
    inner: Arc<Context>,
    id: ShareId,
    root: PathBuf,
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
    seq: twatch::Sender<u64>,
    runtime: Arc<Mutex<Runtime>>,
    /// This share's downloads in progress (shared with its handle: see `swarm`).
    downloads: Arc<crate::swarm::Downloads>,
    /// Temp files of transfers that failed part-way (a peer went away), by path, with the
    /// content hash they were being built for. The next attempt at the same version continues
    /// in the same file and fetches only the chunks not already verified there. They are temp
    /// files (ignored by the scanner, removed at start), so an abandoned one costs nothing.
    partials: Mutex<HashMap<RelPath, (ChunkHash, PathBuf)>>,
    /// The inputs of the last pull pass that found nothing to do (see [`PullMark`]).
    pull_mark: Mutex<Option<PullMark>>,
    /// This share's mass-delete guard (the burst window of remote deletions, the quiet time
    /// after an accepted mass delete): in memory, owned by the actor that applies the
    /// deletions (a restart forgets it, as the engine documents).
    guard: Mutex<MassDeleteGuard>,
    /// When to try the failed items of the last pull again (see [`RETRY_MIN`]).
    retry: Mutex<Retry>,
    /// The watcher made when the share's folder came back after it was missing (the handle's
    /// first one watched the folder that went away).
    watcher: Mutex<Option<ferry_fs::ShareWatcher>>,
    /// Paths a stopped pull left holding neither the old nor the new content (see
    /// `intents.rs`): the first full scan records them as no version of ours.
    unfinished: Mutex<std::collections::HashSet<RelPath>>,
    /// When this actor started, until its first full scan has removed the temp files modified
    /// before then (left by a crash or a kill: see `ferry_fs::remove_stale_temps`).
    stale_temps: Mutex<Option<std::time::SystemTime>>,
}

pub(crate) fn start_worker(inner: &Arc<Context>, share: ShareRecord) {
    let pending = Arc::new(Mutex::new(Pending::at_start()));
    let (commands, commands_rx) = tokio::sync::mpsc::channel(COMMAND_QUEUE);
    let wake = Arc::new(Notify::new());
    let max_seq = inner.store.share_state(&share.id).map(|s| s.max_seq).unwrap_or(0);
    let (seq, _) = twatch::channel(max_seq);
    let runtime = Arc::new(Mutex::new(Runtime { state: "scanning", ..Default::default() }));
    let downloads = Arc::new(crate::swarm::Downloads::default());
    let (stop, stop_rx) = twatch::channel(false);
    let root = PathBuf::from(&share.path);

    let watcher = watcher_for(inner, share.id, &root, &pending, &wake);
    let worker = Worker {
        inner: inner.clone(),
        id: share.id,
        root,
        pending: pending.clone(),
        wake: wake.clone(),
        seq: seq.clone(),
        runtime: runtime.clone(),
        downloads: downloads.clone(),
        partials: Mutex::new(HashMap::new()),
        pull_mark: Mutex::new(None),
        guard: Mutex::new(MassDeleteGuard::new()),
        retry: Mutex::new(Retry { at: None, delay: RETRY_MIN }),
        watcher: Mutex::new(None),
        unfinished: Mutex::new(Default::default()),
        stale_temps: Mutex::new(Some(std::time::SystemTime::now())),
    };
    // Every log line of this share's actor (and of what it starts) names the share.
    let span = tracing::info_span!("share", share = %share.id, label = %share.label);
    let task = tokio::spawn(tracing::Instrument::instrument(worker.run(commands_rx, stop_rx), span));
    let handle = ShareHandle {
        id: share.id,
        pending,
        wake,
        seq,
        members: Arc::new(Mutex::new(share.devices.clone())),
        runtime,
        downloads,
        stop,
        task: Some(task),
        _watcher: watcher,
        commands,
    };
    inner.shares.lock().unwrap().insert(share.id, handle);
}

/// Watches the share's folder, waking its actor with the changed paths. `None` when it cannot
/// (said as an error event): the periodic rescan still syncs, more slowly.
fn watcher_for(
    inner: &Arc<Context>,
    share: ShareId,
    root: &Path,
    pending: &Arc<Mutex<Pending>>,
    wake: &Arc<Notify>,
) -> Option<ferry_fs::ShareWatcher> {
    let (p, w) = (pending.clone(), wake.clone());
    match watch(root, inner.cfg.debounce, move |ev| {
        let mut pend = p.lock().unwrap();
        match ev {
            WatchEvent::Paths(paths) => pend.scan_paths(paths),
            WatchEvent::Rescan => pend.full = true,
        }
        drop(pend);
        w.notify_one();
    }) {
        Ok(w) => Some(w),
        Err(e) => {
            // Without a watcher the periodic rescan still syncs; say why changes are slow.
            tracing::warn!(share = %share, "cannot watch {}: {e}", root.display());
            inner.emit(Event::Error {
                share: Some(share.to_string()),
                device: None,
                message: format!("cannot watch {}: {e}", root.display()),
            });
            None
        }
    }
}

/// Records a new share and starts syncing it.
pub(crate) async fn create_share(inner: &Arc<Context>, rec: ShareRecord) -> ApiResult<()> {
    let ferry_dir = Path::new(&rec.path).join(FERRY_DIR);
    ferry_fs::create_dirs_durable(&ferry_dir).map_err(|e| ApiError::bad(format!("{}: {e}", ferry_dir.display())))?;
    let r = rec.clone();
    inner.db(move |s| s.put_share(&r)).await?;
    start_worker(inner, rec);
    Ok(())
}

/// Accepts a share offer into `path` (created if missing; existing content is merged, never
/// deleted) and starts syncing it with the offering device.
pub(crate) async fn accept_offer(
    inner: &Arc<Context>,
    prompt: &PromptRecord,
    share: ShareId,
    label: &str,
    path: &Path,
) -> ApiResult<()> {
    if inner.db(move |s| s.share(&share)).await?.is_some() {
        return Err(ApiError::new(crate::api::ErrorCode::Conflict, "this share is already set up here"));
    }
    if !path.exists() {
        ferry_fs::create_dirs_durable(path)
            .map_err(|e| ApiError::bad(format!("cannot create {}: {e}", path.display())))?;
    }
    let canon = inner.validate_share_path(path, None).await?;
    let rec = ShareRecord {
        id: share,
        label: label.to_string(),
        path: canon.display().to_string(),
        mode: Default::default(),
        devices: vec![prompt.device],
        paused: false,
    };
    create_share(inner, rec).await?;
    crate::peer::announce_to(inner, prompt.device).await;
    Ok(())
}

/// Keeps the worker's member list in step after the record changed.
/// What the scanner needs to know of an indexed entry to tell whether it changed.
fn known_of(e: &LocalEntry) -> Known {
    Known {
        kind: e.record.kind.clone(),
        deleted: e.record.deleted,
        size: e.record.size,
        mtime_ns: e.record.mtime_ns,
        inode: e.meta.inode,
        executable: e.record.executable,
    }
}

fn time_of(ns: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// The inputs of a pull pass that found nothing to do: the index states it compared (with the
/// store's index generation, which every index write moves in its own transaction) and the
/// conflict policy it decided with. While these are unchanged another pass would find nothing
/// again and is skipped: a reconnect, a rescan or a restart that changed nothing costs one small
/// read instead of a walk over every whole index (the mark is kept in the store: see
/// `Worker::keep_mark`).
#[derive(Clone, PartialEq, Eq)]
struct PullMark {
    states: WalkStates,
    policy: ferry_proto::ConflictPolicy,
}

/// The retry timer of failed pulls: the next attempt, and the wait after that one.
struct Retry {
    at: Option<Instant>,
    delay: Duration,
}

impl Retry {
    /// After a pull: failures worth retrying on a timer schedule the next try (backing off);
    /// none reset the timer.
    fn after_pull(&mut self, retry: bool) {
        if retry {
            self.at = Some(Instant::now() + self.delay);
            self.delay = (self.delay * 2).min(RETRY_MAX);
        } else {
            self.at = None;
            self.delay = RETRY_MIN;
        }
    }
}

impl Worker {
    /// What a start finds left by the last run: stale temp files, a pull's unfinished writes.
    async fn start_up(&self) {
        // Stale temp files are removed after the first full scan, which lists them (a walk of
        // their own cost a restart of a large share over a tenth of its time).
        self.check_intents().await;
    }

    async fn run(self, mut commands: mpsc::Receiver<ShareCommand>, mut stop: twatch::Receiver<bool>) {
        self.load_mark().await;
        self.start_up().await;
        let mut next_rescan = Instant::now() + self.inner.cfg.rescan_interval;
        // Whether the share's folder was missing at the last look (see `missing.rs`).
        let mut missing = false;
        loop {
            if *stop.borrow() {
                break;
            }
            // Commands first: a user is waiting for each. They run paused or not (a restore
            // while syncing is paused is still the user's wish).
            while let Ok(cmd) = commands.try_recv() {
                self.execute(cmd).await;
            }
            // Paused (this share, or all syncing): the pending work stays queued for resume.
            let rec = self.record().await.ok();
            let paused = rec.as_ref().map(|r| r.paused).unwrap_or(false) || self.inner.sync_paused();
            // A missing folder is neither scanned (its files would look deleted) nor written.
            if !paused && self.check_folder(&mut missing) {
                tokio::select! {
                    Some(cmd) = commands.recv() => self.execute(cmd).await,
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(missing::MISSING_POLL) => {}
                }
                continue;
            }
            if !paused {
                let (full, rehash, pull, pull_paths, paths) = {
                    let mut p = self.pending.lock().unwrap();
                    let (full, paths) = p.take_scan();
                    let pulls = (std::mem::take(&mut p.pull), std::mem::take(&mut p.pull_paths));
                    (full, std::mem::take(&mut p.rehash), pulls.0, pulls.1, paths)
                };
                self.inner.summaries.begin(self.id);
                let scope = if full {
                    Some(Scope::Full)
                } else if !paths.is_empty() {
                    Some(Scope::Paths(paths.into_iter().collect()))
                } else {
                    None
                };
                if let Some(scope) = scope {
                    self.set_state("scanning");
                    match self.scan(scope, rehash).await {
                        // Gone while it was walked: the next look stops the share.
                        Err(ShareError::FolderMissing(_)) => {
                            self.pending.lock().unwrap().full = true;
                            continue;
                        }
                        Err(e) => self.report_error(format!("scan failed: {e}")),
                        Ok(()) => {}
                    }
                }
                // A local change can settle a pending need (or create a conflict): a full pass
                // whenever something is still needed, so the paths pass only runs from a clean
                // state and its items are all the items there are.
                let need = self.runtime.lock().unwrap().need;
                if pull || full || need > 0 {
                    self.pull(None).await;
                } else if !pull_paths.is_empty() {
                    self.pull(Some(pull_paths.into_iter().collect())).await;
                }
                self.set_state("idle");
                let label = rec.map(|r| r.label).unwrap_or_default();
                if let Some(ev) = self.inner.summaries.end(self.id, &label) {
                    self.inner.emit(ev);
                }
            } else {
                self.set_state("paused");
            }
            let has_more = !paused && {
                let p = self.pending.lock().unwrap();
                p.has_work()
            };
            if has_more {
                continue;
            }
            let retry_at = self.retry.lock().unwrap().at;
            let retry = async move {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(cmd) = commands.recv() => self.execute(cmd).await,
                _ = retry => {
                    self.retry.lock().unwrap().at = None;
                    self.pending.lock().unwrap().pull = true;
                }
                _ = self.wake.notified() => {}
                _ = stop.changed() => {}
                _ = self.folder_gone() => {}
                _ = tokio::time::sleep_until(next_rescan.into()) => {
                    next_rescan = Instant::now() + self.inner.cfg.rescan_interval;
                    self.pending.lock().unwrap().full = true;
                }
            }
        }
    }

    /// Runs one command (see [`ShareCommand`]) and replies. Nothing else writes this share's
    /// index or files while it runs: scans and pulls run in this same task.
    async fn execute(&self, cmd: ShareCommand) {
        let inner = &self.inner;
        let id = self.id.to_string();
        match cmd {
            ShareCommand::Restore(req, reply) => drop(reply.send(crate::history::restore(inner, req).await)),
            ShareCommand::Rewind(req, reply) => drop(reply.send(crate::history::rewind(inner, req).await)),
            ShareCommand::Resolve(req, reply) => drop(reply.send(crate::conflicts::resolve(inner, req).await)),
            ShareCommand::Override(reply) => drop(reply.send(crate::history::override_share(inner, &id).await)),
            ShareCommand::Revert(reply) => drop(reply.send(crate::history::revert_share(inner, &id).await)),
            ShareCommand::Republish(reply) => drop(reply.send(crate::guard::republish(inner, self.id).await)),
            ShareCommand::Prune(now_ms, reply) => {
                drop(reply.send(crate::history::prune_share(inner, self.id, now_ms).await))
            }
        }
        // A command may have committed new local records: tell the index senders.
        let share = self.id;
        if let Ok(state) = inner.db(move |s| s.share_state(&share)).await {
            self.seq.send_if_modified(|seq| std::mem::replace(seq, state.max_seq) != state.max_seq);
        }
    }

    fn set_state(&self, s: &'static str) {
        self.runtime.lock().unwrap().state = s;
    }

    fn report_error(&self, message: String) {
        tracing::warn!(share = %self.id, "{message}");
        self.runtime.lock().unwrap().last_error = Some(message.clone());
        self.inner.summaries.error(self.id);
        self.inner.emit(Event::Error { share: Some(self.id.to_string()), device: None, message });
    }

    /// Changes what cannot be synced in this share with `update`, and tells the world (once)
    /// when it now holds items it did not hold before.
    fn update_failed(&self, label: &str, update: impl FnOnce(&mut FailedItems)) {
        let (new, count) = {
            let mut rt = self.runtime.lock().unwrap();
            let before = rt.failed.clone();
            update(&mut rt.failed);
            (rt.failed.new_since(&before), rt.failed.count())
        };
        if new.is_empty() {
            return;
        }
        for item in &new {
            tracing::warn!(share = %self.id, path = %item.path, "cannot sync: {}", item.reason);
        }
        let new = new.into_iter().take(NEW_ITEMS_EVENT).collect();
        self.inner.emit(Event::FailedItems { share: self.id.to_string(), label: label.to_string(), count, new });
    }

    async fn record(&self) -> Result<ShareRecord, ShareError> {
        let id = self.id;
        Ok(self.inner.db(move |s| s.share(&id)).await?.ok_or_else(|| ApiError::not_found("share removed"))?)
    }
}

/// Runs blocking file work off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ferry_fs::FsError> + Send + 'static,
) -> Result<T, ShareError> {
    Ok(tokio::task::spawn_blocking(f).await??)
}
