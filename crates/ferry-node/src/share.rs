//! One worker task per share owns every disk change in it: it scans (from watcher events, a
//! periodic safety-net rescan, or on request) and pulls (applies peers' changes). Running both
//! in one task means a scan never races a write of our own.
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

use ferry_engine::{Action, ChunkSource, apply_order, decide_with_policy, plan_chunks, remote_wins};
use ferry_fs::{ArchiveMode, Change, Ignore, Known, Scope, archive, conflict_name, rename_within, scan_reusing};
use ferry_fs::{WatchEvent, watch};
use ferry_proto::{ChunkHash, DeviceId, FERRY_DIR, FileKind, FileRecord, RelPath, Seq, ShareId};
use ferry_store::{
    LocalEntry, LocalMeta, LocalUpdate, PromptRecord, ShareRecord, VersionReason, VersionRecord, WalkStates,
};
use futures::StreamExt;
use tokio::sync::{Notify, mpsc, watch as twatch};

use crate::api::{ApiError, ShareStatusDto};
use crate::context::{ApiResult, Context};
use crate::events::Event;
use crate::link::PeerLink;
use crate::share_handle::{COMMAND_QUEUE, IndexStatus, Pending, Runtime, ShareCommand, ShareHandle, StatusCounts};

mod assemble;
mod fast;
mod writeback;

/// Blocks fetched or copied at once per file: enough to fill a LAN link (each request is a
/// round trip), few enough to bound memory (16 x 1 MiB max chunk).
const PARALLEL_BLOCKS: usize = 16;
/// Minimum interval between progress events for one file.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// Pull passes per wake-up: applying one change can make another applicable (a parent dir,
/// a second peer's newer version); bounded so a flapping peer cannot spin us.
const MAX_PULL_PASSES: usize = 4;

struct Worker {
    inner: Arc<Context>,
    id: ShareId,
    root: PathBuf,
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
    seq: twatch::Sender<u64>,
    runtime: Arc<Mutex<Runtime>>,
    /// Temp files of transfers that failed part-way (a peer went away), by path, with the
    /// content hash they were being built for. The next attempt at the same version continues
    /// in the same file and fetches only the chunks not already verified there. They are temp
    /// files (ignored by the scanner, removed at start), so an abandoned one costs nothing.
    partials: Mutex<HashMap<RelPath, (ChunkHash, PathBuf)>>,
    /// The inputs of the last pull pass that found nothing to do (see [`PullMark`]).
    pull_mark: Mutex<Option<PullMark>>,
}

pub(crate) fn start_worker(inner: &Arc<Context>, share: ShareRecord) {
    let pending = Arc::new(Mutex::new(Pending { full: true, pull: true, ..Default::default() }));
    let (commands, commands_rx) = tokio::sync::mpsc::channel(COMMAND_QUEUE);
    let wake = Arc::new(Notify::new());
    let max_seq = inner.store.share_state(&share.id).map(|s| s.max_seq).unwrap_or(0);
    let (seq, _) = twatch::channel(max_seq);
    let runtime = Arc::new(Mutex::new(Runtime { state: "scanning", ..Default::default() }));
    let (stop, stop_rx) = twatch::channel(false);
    let root = PathBuf::from(&share.path);

    let (p, w) = (pending.clone(), wake.clone());
    let watcher = match watch(&root, inner.cfg.debounce, move |ev| {
        let mut pend = p.lock().unwrap();
        match ev {
            WatchEvent::Paths(paths) => pend.paths.extend(paths),
            WatchEvent::Rescan => pend.full = true,
        }
        drop(pend);
        w.notify_one();
    }) {
        Ok(w) => Some(w),
        Err(e) => {
            // Without a watcher the periodic rescan still syncs; say why changes are slow.
            tracing::warn!(share = %share.id, "cannot watch {}: {e}", root.display());
            inner.emit(Event::Error {
                share: Some(share.id.to_string()),
                device: None,
                message: format!("cannot watch {}: {e}", root.display()),
            });
            None
        }
    };
    let worker = Worker {
        inner: inner.clone(),
        id: share.id,
        root,
        pending: pending.clone(),
        wake: wake.clone(),
        seq: seq.clone(),
        runtime: runtime.clone(),
        partials: Mutex::new(HashMap::new()),
        pull_mark: Mutex::new(None),
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
        stop,
        task: Some(task),
        _watcher: watcher,
        commands,
    };
    inner.shares.lock().unwrap().insert(share.id, handle);
}

/// Records a new share and starts syncing it.
pub(crate) async fn create_share(inner: &Arc<Context>, rec: ShareRecord) -> ApiResult<()> {
    let ferry_dir = Path::new(&rec.path).join(FERRY_DIR);
    std::fs::create_dir_all(&ferry_dir).map_err(|e| ApiError::bad(format!("{}: {e}", ferry_dir.display())))?;
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
        std::fs::create_dir_all(path).map_err(|e| ApiError::bad(format!("cannot create {}: {e}", path.display())))?;
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
pub(crate) fn refresh_members(inner: &Arc<Context>, rec: &ShareRecord) {
    if let Some(h) = inner.shares.lock().unwrap().get(&rec.id) {
        h.set_members(rec.devices.clone());
    }
}

/// Computes [`StatusCounts`] in one streaming pass over the local index and the `connected`
/// members' indexes (one path decoded at a time).
pub(crate) fn status_counts(
    s: &ferry_store::Store,
    id: &ShareId,
    connected: &[DeviceId],
) -> Result<StatusCounts, ferry_store::StoreError> {
    let mut c = StatusCounts { files: 0, bytes: 0, local_changes: 0, peers_have_all: true };
    s.walk_share(id, connected, |local, remotes| {
        // Paths only a peer holds say nothing about whether the peers have ours.
        let Some(e) = local else { return Ok(()) };
        if e.meta.local_change {
            if !crate::history::is_dropped_change(&e) {
                c.local_changes += 1;
            }
        } else if c.peers_have_all {
            c.peers_have_all = remotes.iter().all(|r| match r {
                Some(r) => r.version == e.record.version,
                None => e.record.deleted,
            });
        }
        if !e.record.deleted {
            c.bytes += e.record.size;
            if e.record.kind == FileKind::File {
                c.files += 1;
            }
        }
        Ok(())
    })?;
    Ok(c)
}

async fn index_status(inner: &Arc<Context>, id: ShareId, connected: Vec<DeviceId>) -> ApiResult<IndexStatus> {
    if let Some(c) = inner.status_cache.lock().unwrap().get(&id)
        && c.generation == inner.store.index_generation()
        && c.connected == connected
    {
        return Ok(c.clone());
    }
    let st = inner
        .db(move |s| {
            // Read the generation first: a write racing the reads below makes the entry stale
            // (recomputed next time), never wrongly current.
            let generation = s.index_generation();
            let counts = status_counts(s, &id, &connected)?;
            Ok(IndexStatus { generation, connected, counts })
        })
        .await?;
    inner.status_cache.lock().unwrap().insert(id, st.clone());
    Ok(st)
}

pub(crate) async fn share_status(inner: &Arc<Context>, rec: &ShareRecord) -> ApiResult<ShareStatusDto> {
    let runtime = inner.shares.lock().unwrap().get(&rec.id).map(|h| h.runtime.lock().unwrap().clone());
    let runtime = runtime.unwrap_or(Runtime { state: "stopped", ..Default::default() });
    let connected: Vec<DeviceId> = rec.devices.iter().copied().filter(|d| inner.peer(d).is_some()).collect();
    let id = rec.id;
    let settings = inner.db(move |s| s.share_settings(&id)).await?;
    let StatusCounts { files, bytes, local_changes, peers_have_all } = index_status(inner, id, connected).await?.counts;
    Ok(ShareStatusDto {
        id: rec.id.to_string(),
        label: rec.label.clone(),
        path: rec.path.clone(),
        mode: rec.mode.as_str().into(),
        state: runtime.state.into(),
        in_sync: runtime.need == 0 && runtime.state == "idle" && peers_have_all,
        files,
        bytes,
        need: runtime.need,
        last_error: runtime.last_error,
        fetched_bytes: runtime.fetched_bytes,
        reused_bytes: runtime.reused_bytes,
        conflict_policy: settings.conflict_policy.as_str().into(),
        retention: settings.retention.to_string(),
        local_changes,
        attention: settings.attention,
        summary: inner.summaries.get(rec.id),
    })
}

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

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// Index updates of applied changes waiting to be committed. Their files are already on disk
/// (renamed into place, directory fsynced), so committing in batches keeps "index after disk"
/// while saving a database fsync per file. A crash before the commit only makes the next scan
/// see content it already has a version for (it merges, as identical content).
#[derive(Default)]
struct Batch {
    updates: Vec<LocalUpdate>,
    versions: Vec<VersionRecord>,
    events: Vec<Event>,
}

/// Applied changes per index transaction.
const BATCH_MAX: usize = 256;

/// What happened in one pull pass.
#[derive(Default)]
struct PullStats {
    applied: usize,
    failed: usize,
}

/// The inputs of a pull pass that found nothing to do: the index states it compared (with the
/// store's index generation, which every index write moves) and the conflict policy it decided
/// with. While these are unchanged another pass would find nothing again and is skipped: a
/// reconnect or a rescan that changed nothing costs one small read instead of a walk over both
/// whole indexes. (The generation is the store's, in memory: a restarted node walks once.)
#[derive(Clone, PartialEq, Eq)]
struct PullMark {
    states: WalkStates,
    policy: ferry_proto::ConflictPolicy,
}

/// What a pull pass works on (see [`plan_pull`]).
struct PullPlan {
    /// For each path to change, the one remote record to move to and what to do.
    wanted: HashMap<RelPath, (FileRecord, Action)>,
    /// Our entries at the wanted paths.
    local: HashMap<RelPath, LocalEntry>,
    /// For each wanted path, the members whose record has the wanted content.
    holders: HashMap<RelPath, Vec<DeviceId>>,
    /// Live files in the local index (for the mass-delete guard).
    live_files: usize,
    states: WalkStates,
}

/// Walks the local index and every member's index side by side, in path order, keeping only
/// the paths where some member has a record this device should move to (one path decoded at a
/// time: the memory is that of the work, not of the share).
fn plan_pull(
    s: &ferry_store::Store,
    id: &ShareId,
    members: &[DeviceId],
    policy: ferry_proto::ConflictPolicy,
) -> Result<PullPlan, ferry_store::StoreError> {
    let mut plan = PullPlan {
        wanted: HashMap::new(),
        local: HashMap::new(),
        holders: HashMap::new(),
        live_files: 0,
        states: WalkStates { generation: 0, local: Default::default(), remotes: Vec::new() },
    };
    plan.states = s.walk_share(id, members, |local, remotes| {
        let l = local.as_ref().map(|e| &e.record);
        if l.is_some_and(FileRecord::is_file) {
            plan.live_files += 1;
        }
        let mut best: Option<(&FileRecord, Action)> = None;
        for r in remotes.iter().flatten() {
            let action = decide_with_policy(l, r, policy);
            if matches!(action, Action::Nothing | Action::ConflictLocalWins) {
                continue;
            }
            best = match best {
                None => Some((r, action)),
                // A tombstone for something we never had is recorded with no disk work; the
                // first one found will do.
                Some(cur) if l.is_none() && r.deleted => Some(cur),
                Some((cur, cur_action)) => {
                    let better = match r.version.compare(&cur.version) {
                        ferry_proto::VersionOrdering::Greater => true,
                        ferry_proto::VersionOrdering::Concurrent => remote_wins(cur, r),
                        _ => false,
                    };
                    if better { Some((r, action)) } else { Some((cur, cur_action)) }
                }
            };
        }
        let Some((target, action)) = best else { return Ok(()) };
        let holders: Vec<DeviceId> = members
            .iter()
            .zip(&remotes)
            .filter(|(_, r)| r.as_ref().is_some_and(|r| r.hash == target.hash))
            .map(|(d, _)| *d)
            .collect();
        let path = target.path.clone();
        plan.holders.insert(path.clone(), holders);
        plan.wanted.insert(path.clone(), (target.clone(), action));
        if let Some(e) = local {
            plan.local.insert(path, e);
        }
        Ok(())
    })?;
    Ok(plan)
}

/// Where this device holds each of the `needed` chunks (a file and an offset), from one
/// streaming pass over the local index.
fn local_chunks_of(
    s: &ferry_store::Store,
    id: &ShareId,
    needed: &std::collections::HashSet<ChunkHash>,
) -> Result<HashMap<ChunkHash, (RelPath, u64)>, ferry_store::StoreError> {
    let mut found: HashMap<ChunkHash, (RelPath, u64)> = HashMap::new();
    s.for_each_local(id, |e| {
        if e.record.is_file() && !e.meta.local_change {
            for (off, c) in e.record.chunk_offsets() {
                if needed.contains(&c.hash) {
                    found.entry(c.hash).or_insert((e.record.path.clone(), off));
                }
            }
        }
        Ok(found.len() < needed.len())
    })?;
    Ok(found)
}

impl Worker {
    async fn run(self, mut commands: mpsc::Receiver<ShareCommand>, mut stop: twatch::Receiver<bool>) {
        let root = self.root.clone();
        match tokio::task::spawn_blocking(move || ferry_fs::remove_stale_temps(&root)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(share = %self.id, "removed {n} stale temp files"),
            Ok(Err(e)) => tracing::warn!(share = %self.id, "stale temp cleanup: {e}"),
            _ => {}
        }
        let mut next_rescan = Instant::now() + self.inner.cfg.rescan_interval;
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
            if !paused {
                let (full, rehash, pull, paths) = {
                    let mut p = self.pending.lock().unwrap();
                    let taken = (std::mem::take(&mut p.full), std::mem::take(&mut p.rehash));
                    (taken.0, taken.1, std::mem::take(&mut p.pull), std::mem::take(&mut p.paths))
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
                    if let Err(e) = self.scan(scope, rehash).await {
                        self.report_error(format!("scan failed: {e}"));
                    }
                }
                if pull || full {
                    self.pull().await;
                } else {
                    // A local change can settle a pending need (or create a conflict).
                    let need = self.runtime.lock().unwrap().need;
                    if need > 0 {
                        self.pull().await;
                    }
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
                p.full || p.pull || !p.paths.is_empty()
            };
            if has_more {
                continue;
            }
            tokio::select! {
                Some(cmd) = commands.recv() => self.execute(cmd).await,
                _ = self.wake.notified() => {}
                _ = stop.changed() => {}
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

    async fn record(&self) -> ApiResult<ShareRecord> {
        let id = self.id;
        self.inner.db(move |s| s.share(&id)).await?.ok_or_else(|| ApiError::not_found("share removed"))
    }

    /// Scans, then commits what changed as local changes in one transaction.
    async fn scan(&self, scope: Scope, rehash: bool) -> ApiResult<()> {
        let started = Instant::now();
        let rec = self.record().await?;
        let me = self.inner.id;
        let store = self.inner.store.clone();
        let id = self.id;
        let root = self.root.clone();
        let (outcome, max_seq, counts) = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let ignore = Ignore::load(&root).map_err(|e| e.to_string())?;
            // Every lookup of the scan reads one snapshot of the index, entry by entry: a full
            // scan of a large share asks about every path, and loading the whole index into a
            // map first cost its size in memory (and its decoding time) even when nothing changed.
            let reader = store.local_reader(&id).map_err(|e| e.to_string())?;
            let lookup = |p: &RelPath| -> Option<LocalEntry> { reader.get(p).ok().flatten() };
            // A re-hash scan claims to know nothing, so every file is read and hashed; the
            // unchanged ones come back as metadata-only updates below.
            let rehash = rehash && matches!(scope, Scope::Full);
            let known = |p: &RelPath| if rehash { None } else { lookup(p).map(|e| known_of(&e)) };
            let known_paths = |p: Option<&RelPath>| -> Vec<RelPath> {
                match p {
                    None => {
                        let mut paths = Vec::new();
                        let walked = store.for_each_local(&id, |e| {
                            if !e.record.deleted {
                                paths.push(e.record.path);
                            }
                            Ok(true)
                        });
                        // Without the list nothing is reported deleted (never a false delete).
                        if walked.is_err() { Vec::new() } else { paths }
                    }
                    Some(p) => store
                        .local_files_under(&id, p)
                        .map(|v| {
                            v.into_iter()
                                .filter(|e| !e.record.deleted && e.record.path != *p)
                                .map(|e| e.record.path)
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            };
            // Files renamed here keep their content: found by inode, not hashed again. The map
            // is built the first time a new or changed file asks, so a scan that finds nothing
            // new never builds it.
            let by_inode: std::cell::OnceCell<HashMap<u64, RelPath>> = std::cell::OnceCell::new();
            let inodes = || {
                by_inode.get_or_init(|| match &scope {
                    Scope::Full => fast::indexed_inodes(&store, &id),
                    Scope::Paths(ps) => fast::inodes(ps.iter().filter_map(&lookup).collect::<Vec<_>>().iter()),
                })
            };
            // A re-hash trusts nothing, moved content included.
            let reuse = |rel: &RelPath, now: &Known| {
                if rehash { None } else { fast::reuse_moved(&root, inodes(), &lookup, rel, now) }
            };
            let outcome =
                scan_reusing(&root, &known, &known_paths, &scope, &ignore, &reuse).map_err(|e| e.to_string())?;
            let mut updates = Vec::new();
            for ch in &outcome.changes {
                match ch {
                    Change::Upsert(o) => {
                        let existing = lookup(&o.path);
                        let meta_only = existing.as_ref().is_some_and(|e| {
                            !e.record.deleted
                                && e.record.kind == o.kind
                                && e.record.hash == o.hash
                                && e.record.executable == o.executable
                        });
                        if meta_only {
                            let mut e = existing.unwrap();
                            e.record.size = o.size;
                            e.record.mtime_ns = o.mtime_ns;
                            e.meta.inode = o.inode;
                            updates.push(LocalUpdate { entry: e, new_seq: false });
                            continue;
                        }
                        let base = existing.as_ref().map(|e| e.record.version.clone()).unwrap_or_default();
                        let (version, local_change) =
                            if rec.mode.sends() { (base.bumped(me), false) } else { (base, true) };
                        updates.push(LocalUpdate {
                            entry: LocalEntry {
                                record: FileRecord {
                                    path: o.path.clone(),
                                    kind: o.kind.clone(),
                                    deleted: false,
                                    size: o.size,
                                    mtime_ns: o.mtime_ns,
                                    executable: o.executable,
                                    version,
                                    seq: Seq(0),
                                    hash: o.hash,
                                    chunks: o.chunks.clone(),
                                    modified_by: me,
                                },
                                meta: LocalMeta { inode: o.inode, local_change },
                            },
                            new_seq: true,
                        });
                    }
                    Change::Deleted(p) => {
                        let Some(e) = lookup(p) else { continue };
                        if e.record.deleted {
                            continue;
                        }
                        let (version, local_change) = if rec.mode.sends() {
                            (e.record.version.bumped(me), false)
                        } else {
                            (e.record.version.clone(), true)
                        };
                        updates.push(LocalUpdate {
                            entry: LocalEntry {
                                record: FileRecord {
                                    deleted: true,
                                    size: 0,
                                    hash: ChunkHash([0; 32]),
                                    chunks: vec![],
                                    version,
                                    modified_by: me,
                                    ..e.record
                                },
                                meta: LocalMeta { inode: 0, local_change },
                            },
                            new_seq: true,
                        });
                    }
                }
            }
            // Versions of the local content this scan saw replaced or deleted (archived before
            // the index commit, like every version).
            let (versions, counts) = crate::history::on_scan(&root, id, me, &updates, &lookup);
            let max_seq = if updates.is_empty() {
                None
            } else {
                Some(store.commit_local(&id, &updates, &versions).map_err(|e| e.to_string())?.0)
            };
            Ok((outcome, max_seq, counts))
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
        if let Some(s) = max_seq {
            self.seq.send_replace(s);
        }
        self.inner.summaries.local(self.id, counts);
        for (path, msg) in &outcome.errors {
            self.report_error(format!("{path}: {msg}"));
        }
        tracing::debug!(share = %self.id, changes = outcome.changes.len(), seen = outcome.seen,
            millis = started.elapsed().as_millis() as u64, "scan finished");
        self.inner.emit(Event::ScanFinished {
            share: self.id.to_string(),
            changes: outcome.changes.len(),
            seen: outcome.seen,
            hashed_bytes: outcome.hashed_bytes,
            millis: started.elapsed().as_millis() as u64,
        });
        Ok(())
    }

    async fn pull(&self) {
        let mut total_failed = 0;
        for _ in 0..MAX_PULL_PASSES {
            match self.pull_pass().await {
                Ok(stats) => {
                    total_failed = stats.failed;
                    if stats.applied == 0 {
                        break;
                    }
                }
                Err(e) => {
                    self.report_error(format!("sync failed: {e}"));
                    break;
                }
            }
        }
        let was = {
            let mut rt = self.runtime.lock().unwrap();
            let was = rt.need;
            rt.need = total_failed as u64;
            if total_failed == 0 {
                rt.last_error = None;
            }
            was
        };
        if was > 0 && total_failed == 0 {
            self.inner.emit(Event::InSync { share: self.id.to_string() });
        }
    }

    /// Compares every peer's index with ours and applies what is newer.
    ///
    /// The comparison streams both indexes in path order (see [`plan_pull`]) and keeps only
    /// what is wanted, so memory follows the work to do rather than the size of the share. A
    /// pass whose inputs are exactly those of the last pass that found nothing to do is
    /// skipped (see [`PullMark`]).
    async fn pull_pass(&self) -> ApiResult<PullStats> {
        let rec = self.record().await?;
        if !rec.mode.receives() {
            return Ok(PullStats::default());
        }
        let id = self.id;
        let members = rec.devices.clone();
        let policy = self.inner.db(move |s| s.share_settings(&id)).await?.conflict_policy;
        let mark = self.pull_mark.lock().unwrap().clone();
        if let Some(mark) = mark {
            let m = members.clone();
            let states = self.inner.db(move |s| s.walk_states(&id, &m)).await?;
            if mark == (PullMark { states, policy }) {
                tracing::debug!(share = %id, "pull skipped: nothing changed since the last pass");
                return Ok(PullStats::default());
            }
        }
        let started = Instant::now();
        let PullPlan { mut wanted, local, holders, live_files, states } =
            self.inner.db(move |s| plan_pull(s, &id, &members, policy)).await?;
        tracing::debug!(share = %id, wanted = wanted.len(), millis = started.elapsed().as_millis() as u64, "pull planned");
        let held = crate::guard::hold_mass_delete(&self.inner, &rec, live_files, &local, &mut wanted).await?;
        if wanted.is_empty() {
            if held == 0 {
                // Nothing to do with these inputs: until one of them changes, neither is there.
                *self.pull_mark.lock().unwrap() = Some(PullMark { states, policy });
            }
            return Ok(PullStats::default());
        }
        *self.pull_mark.lock().unwrap() = None;
        self.set_state("syncing");
        let mut items: Vec<(FileRecord, Action)> = wanted.into_values().collect();
        items.sort_by(|a, b| apply_order(&a.0, &b.0));

        // Chunks this device already has, for reuse: only those the wanted files are made of.
        let needed: std::collections::HashSet<ChunkHash> =
            items.iter().filter(|(t, _)| t.is_file()).flat_map(|(t, _)| t.chunks.iter().map(|c| c.hash)).collect();
        let local_chunks = if needed.is_empty() {
            HashMap::new()
        } else {
            self.inner.db(move |s| local_chunks_of(s, &id, &needed)).await?
        };
        let peers: Vec<Arc<PeerLink>> = rec.devices.iter().filter_map(|d| self.inner.peer(d)).collect();

        let mut stats = PullStats::default();
        let mut batch = Batch::default();
        self.apply_moves(&mut items, &local, &mut batch, &mut stats).await;
        let mut group: Vec<fast::NewFile> = Vec::new();
        for (target, action) in items {
            if self.inner.stopping() {
                break;
            }
            if batch.updates.len() >= BATCH_MAX {
                self.flush(&mut batch).await?;
            }
            let l = local.get(&target.path);
            let sources: Vec<Arc<PeerLink>> = match holders.get(&target.path) {
                Some(h) => peers.iter().filter(|p| h.contains(&p.id)).cloned().collect(),
                None => Vec::new(),
            };
            if Self::groupable(&target, &action, l) {
                group.push(fast::NewFile { target, sources });
                if group.len() >= fast::GROUP_MAX {
                    self.apply_group(std::mem::take(&mut group), &local_chunks, &mut batch, &mut stats).await;
                    self.flush(&mut batch).await?;
                }
                continue;
            }
            if !group.is_empty() {
                self.apply_group(std::mem::take(&mut group), &local_chunks, &mut batch, &mut stats).await;
                self.flush(&mut batch).await?;
            }
            let res = match action {
                Action::MergeVersion => {
                    let mut e = l.expect("merge implies local").clone();
                    e.record.version = e.record.version.merged(&target.version);
                    batch.updates.push(LocalUpdate { entry: e, new_seq: true });
                    Ok(())
                }
                Action::ConflictRemoteWins => self.apply(&target, l, &sources, &local_chunks, true, &mut batch).await,
                Action::OverrideLocal => {
                    // This device's policy wins the conflict: keep our content under a version
                    // that has seen theirs; the other devices archive their content as they apply it.
                    let mut e = l.expect("a conflict implies local").clone();
                    e.record = ferry_engine::override_record(&e.record, &target, self.inner.id);
                    batch.updates.push(LocalUpdate { entry: e, new_seq: true });
                    self.inner.summaries.conflict(self.id);
                    Ok(())
                }
                Action::ConflictRemoteWinsArchive => {
                    // Newest wins: our losing content goes to the history, not a conflict copy.
                    let r = self.apply(&target, l, &sources, &local_chunks, false, &mut batch).await;
                    if r.is_ok() {
                        if let Some(v) = batch.versions.last_mut().filter(|v| v.path == target.path) {
                            v.reason = VersionReason::Conflict;
                        }
                        self.inner.summaries.conflict(self.id);
                    }
                    r
                }
                _ => self.apply(&target, l, &sources, &local_chunks, false, &mut batch).await,
            };
            match res {
                Ok(()) => stats.applied += 1,
                Err(e) => {
                    stats.failed += 1;
                    self.report_error(format!("{}: {e}", target.path));
                }
            }
        }
        if !self.inner.stopping() {
            self.apply_group(group, &local_chunks, &mut batch, &mut stats).await;
        }
        self.flush(&mut batch).await?;
        Ok(stats)
    }

    /// Commits the batch in one transaction, then tells the world.
    async fn flush(&self, batch: &mut Batch) -> ApiResult<()> {
        if batch.updates.is_empty() {
            return Ok(());
        }
        let (updates, versions) = (std::mem::take(&mut batch.updates), std::mem::take(&mut batch.versions));
        let id = self.id;
        let seq = self.inner.db(move |s| s.commit_local(&id, &updates, &versions)).await?;
        self.seq.send_replace(seq.0);
        self.inner.summaries.remote_events(self.id, &batch.events);
        for e in batch.events.drain(..) {
            self.inner.emit(e);
        }
        Ok(())
    }

    /// Asks for a rescan of `path` (something changed under us) and returns the error to report.
    fn rescan_first(&self, path: &RelPath) -> String {
        self.pending.lock().unwrap().paths.insert(path.clone());
        self.wake.notify_one();
        "changed on this device since it was indexed; rescanning before syncing it".into()
    }

    fn version_record(
        &self,
        l: &LocalEntry,
        target: &FileRecord,
        archive_path: String,
        reason: VersionReason,
    ) -> VersionRecord {
        let now = now_ns();
        VersionRecord {
            share: self.id,
            path: l.record.path.clone(),
            id: now as u64,
            archived_at_ms: now / 1_000_000,
            size: l.record.size,
            hash: l.record.hash,
            mtime_ns: l.record.mtime_ns,
            modified_by: l.record.modified_by,
            replaced_by: target.modified_by,
            archive_path,
            reason,
        }
    }

    /// Makes the disk match `target` and records it. `conflict`: our live file loses a
    /// conflict and is kept under a conflict name instead of being archived.
    async fn apply(
        &self,
        target: &FileRecord,
        local: Option<&LocalEntry>,
        sources: &[Arc<PeerLink>],
        local_chunks: &HashMap<ChunkHash, (RelPath, u64)>,
        conflict: bool,
        batch: &mut Batch,
    ) -> Result<(), String> {
        let root = self.root.clone();
        let path = target.path.clone();
        // What the index says is at the target now (None: nothing, or a tombstone).
        let expected: Option<Known> = local.filter(|l| !l.record.deleted).map(known_of);
        let (r, p, exp) = (root.clone(), path.clone(), expected.clone());
        let on_disk_ok = blocking(move || ferry_fs::unchanged_on_disk(&r, &p, exp.as_ref())).await?;
        if !on_disk_ok {
            return Err(self.rescan_first(&path));
        }
        let local_live_file = expected.as_ref().is_some_and(|k| k.kind == FileKind::File);
        let local_live = expected.is_some();

        // Build the new content first, so a failed transfer leaves the disk untouched.
        let temp = if target.is_file() {
            let (t, got) = self.fetch_to_temp(target, sources, local_chunks).await?;
            Some(self.check_whole(target, t, got)?)
        } else {
            None
        };

        let mut versions = Vec::new();
        let mut copy: Option<RelPath> = None;
        if local_live {
            let l = local.expect("live implies local");
            if conflict && local_live_file {
                let c = conflict_name(&path, time_of(l.record.mtime_ns), &l.record.modified_by);
                let (r, p, c2) = (root.clone(), path.clone(), c.clone());
                blocking(move || rename_within(&r, &p, &c2)).await?;
                copy = Some(c);
            } else if local_live_file {
                let mode = if target.is_file() { ArchiveMode::Link } else { ArchiveMode::Move };
                let (r, p) = (root.clone(), path.clone());
                let ap = blocking(move || archive(&r, &p, time::OffsetDateTime::now_utc(), mode)).await?;
                let reason = if target.deleted { VersionReason::Deleted } else { VersionReason::Replaced };
                versions.push(self.version_record(l, target, ap, reason));
            } else if l.record.kind != target.kind || target.deleted {
                // A directory or link that goes away or changes kind.
                let (r, p) = (root.clone(), path.clone());
                blocking(move || ferry_fs::remove_entry(&r, &p)).await?;
            }
        }

        let (r, p, t) = (root.clone(), path.clone(), target.clone());
        let meta = blocking(move || {
            if !t.deleted {
                match &t.kind {
                    FileKind::File => {
                        ferry_fs::commit_temp(temp.expect("file has temp"), &r, &p, t.mtime_ns, t.executable)?;
                    }
                    FileKind::Dir => ferry_fs::create_dir(&r, &p, Some(t.mtime_ns))?,
                    FileKind::Symlink { target } => ferry_fs::create_symlink(&r, &p, target)?,
                }
            }
            crate::history::after_apply(&r, &t);
            ferry_fs::stat_known(&r, &p)
        })
        .await?;
        let inode = meta.map(|k| k.inode).unwrap_or(0);
        batch.updates.push(LocalUpdate {
            entry: LocalEntry { record: target.clone(), meta: LocalMeta { inode, local_change: false } },
            new_seq: true,
        });
        batch.versions.extend(versions);
        let from = target.modified_by.to_string();
        let action = if target.deleted {
            "deleted"
        } else if local_live {
            "changed"
        } else {
            "added"
        };
        batch.events.push(Event::Applied {
            share: self.id.to_string(),
            path: path.to_string(),
            action: action.into(),
            from,
        });
        if let Some(c) = copy {
            tracing::info!(share = %self.id, %path, copy = %c, "conflict: kept our version as a copy");
            batch.events.push(Event::Conflict {
                share: self.id.to_string(),
                path: path.to_string(),
                copy: c.to_string(),
                winner: target.modified_by.to_string(),
            });
            self.pending.lock().unwrap().paths.insert(c);
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Every chunk of `temp` was verified; this checks the record itself: a peer announcing a
    /// whole-file hash its chunks do not produce would poison content comparisons. `got` is the
    /// hash and length of the temp's content, computed while it was written (see
    /// [`assemble`]).
    fn check_whole(
        &self,
        target: &FileRecord,
        temp: ferry_fs::TempFile,
        got: assemble::Assembled,
    ) -> Result<ferry_fs::TempFile, String> {
        if got.hash != target.hash || got.size != target.size {
            // Dropping the temp removes it.
            return Err(format!(
                "{} sent a record whose hash does not match its content; refused",
                target.modified_by.short()
            ));
        }
        Ok(temp)
    }

    /// Assembles `target`'s content in a temp file beside it: local chunks first, the rest
    /// from peers, every chunk verified against its hash. Returns the temp and the hash and
    /// length of what was written, for [`Worker::check_whole`].
    ///
    /// Up to [`PARALLEL_BLOCKS`] chunks are read or fetched at once; they are handed to the
    /// writer in file order (an ordered stream), which writes them and hashes the whole content
    /// in the same pass.
    async fn fetch_to_temp(
        &self,
        target: &FileRecord,
        sources: &[Arc<PeerLink>],
        local_chunks: &HashMap<ChunkHash, (RelPath, u64)>,
    ) -> Result<(ferry_fs::TempFile, assemble::Assembled), String> {
        let (r, p) = (self.root.clone(), target.path.clone());
        let partial = match self.partials.lock().unwrap().remove(&target.path) {
            Some((hash, path)) if hash == target.hash => Some(path),
            Some((_, path)) => {
                // Built for a version that is no longer wanted.
                let _ = std::fs::remove_file(&path);
                None
            }
            None => None,
        };
        let resumed = partial.is_some();
        let temp = match partial {
            Some(path) => match std::fs::OpenOptions::new().read(true).write(true).open(&path) {
                Ok(file) => ferry_fs::TempFile { path, file },
                Err(_) => blocking(move || ferry_fs::create_temp(&r, &p)).await?,
            },
            None => blocking(move || ferry_fs::create_temp(&r, &p)).await?,
        };
        let file = Arc::new(temp.file.try_clone().map_err(|e| e.to_string())?);
        let plan = plan_chunks(target, local_chunks);
        let needs_remote = plan.contains(&ChunkSource::Remote);
        if needs_remote && sources.is_empty() {
            self.keep_partial(target, temp, resumed);
            return Err("no connected device has this version; waiting for one".into());
        }
        let total = target.size;
        let started = Instant::now();
        let mut last_progress = Instant::now();
        let mut done = 0u64;
        let jobs = target.chunk_offsets().zip(plan).enumerate().map(|(i, ((off, c), src))| {
            let root = self.root.clone();
            let file = file.clone();
            let share = self.id;
            let path = target.path.clone();
            async move {
                if resumed {
                    // Already in the temp file from an interrupted attempt? Verified, then kept.
                    let f = file.clone();
                    let have = blocking(move || {
                        use std::os::unix::fs::FileExt;
                        let mut buf = vec![0u8; c.len as usize];
                        f.read_exact_at(&mut buf, off).map_err(|source| ferry_fs::FsError::Io {
                            op: "read",
                            path: PathBuf::new(),
                            source,
                        })?;
                        Ok((ChunkHash::of(&buf) == c.hash).then_some(buf))
                    })
                    .await;
                    if let Ok(Some(data)) = have {
                        return Ok((assemble::Piece { offset: off, data, write: false }, false));
                    }
                }
                if let ChunkSource::Local { path: lp, offset } = src {
                    let r = root.clone();
                    let got = blocking(move || {
                        ferry_fs::read_range(&r, &lp, offset, c.len).map(|d| (ChunkHash::of(&d) == c.hash).then_some(d))
                    })
                    .await;
                    if let Ok(Some(data)) = got {
                        return Ok((assemble::Piece { offset: off, data, write: true }, false));
                    }
                }
                if sources.is_empty() {
                    return Err("a local chunk changed and no device is connected to fetch it".to_string());
                }
                let mut last = String::new();
                for k in 0..sources.len() {
                    let peer = &sources[(i + k) % sources.len()];
                    match peer.fetch_block(share, &path, off, c.len, c.hash).await {
                        Ok(data) => return Ok((assemble::Piece { offset: off, data, write: true }, true)),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
        });
        let assembler = assemble::Assembler::start(file.clone(), PARALLEL_BLOCKS);
        let mut writeback = writeback::Writeback::new(file.clone());
        let mut stream = futures::stream::iter(jobs).buffered(PARALLEL_BLOCKS);
        let mut failed = None;
        while let Some(res) = stream.next().await {
            match res {
                Ok((piece, fetched)) => {
                    let n = piece.data.len() as u64;
                    if assembler.push(piece).await.is_err() {
                        break; // the writer stopped; finish() says why
                    }
                    done += n;
                    writeback.wrote(n);
                    {
                        let mut rt = self.runtime.lock().unwrap();
                        if fetched {
                            rt.fetched_bytes += n;
                        } else {
                            rt.reused_bytes += n;
                        }
                    }
                    if last_progress.elapsed() >= PROGRESS_EVERY || done == total {
                        last_progress = Instant::now();
                        let secs = started.elapsed().as_secs_f64().max(1e-3);
                        self.inner.emit(Event::TransferProgress {
                            share: self.id.to_string(),
                            path: target.path.to_string(),
                            done,
                            total,
                            bytes_per_sec: done as f64 / secs,
                        });
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        drop(stream);
        // Everything handed over is written before the temp is kept or judged.
        let assembled = assembler.finish().await;
        let synced = writeback.finish().await;
        if let Some(e) = failed.or_else(|| assembled.as_ref().err().cloned()) {
            self.keep_partial(target, temp, resumed || done > 0);
            return Err(e);
        }
        if let Err(e) = synced {
            let _ = std::fs::remove_file(&temp.path);
            return Err(e);
        }
        Ok((temp, assembled.expect("errors returned above")))
    }

    /// Keeps an unfinished temp file for the next attempt at the same version (when it holds
    /// anything worth keeping), or removes it.
    fn keep_partial(&self, target: &FileRecord, mut temp: ferry_fs::TempFile, worth_keeping: bool) {
        if !worth_keeping {
            return; // dropping the temp file removes it
        }
        let path = std::mem::take(&mut temp.path);
        drop(temp);
        tracing::info!(share = %self.id, path = %target.path, "transfer interrupted; received chunks kept for the next try");
        if let Some((_, old)) = self.partials.lock().unwrap().insert(target.path.clone(), (target.hash, path)) {
            let _ = std::fs::remove_file(old);
        }
    }
}

/// Runs blocking file work off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ferry_fs::FsError> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::{ChunkInfo, ConflictPolicy, ShareMode, VersionVector};
    use ferry_store::{RemoteState, Store};

    const ME: DeviceId = DeviceId([9; 32]);
    const PEER: DeviceId = DeviceId([1; 32]);
    const PEER2: DeviceId = DeviceId([2; 32]);
    const S: ShareId = ShareId([3; 10]);

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("ferry.redb")).unwrap();
        let share = ShareRecord {
            id: S,
            label: "s".into(),
            path: "/tmp/s".into(),
            mode: ShareMode::SendReceive,
            devices: vec![PEER, PEER2],
            paused: false,
        };
        store.put_share(&share).unwrap();
        (dir, store)
    }

    fn rec(path: &str, content: &str, by: DeviceId) -> FileRecord {
        let hash = ChunkHash::of(content.as_bytes());
        FileRecord {
            path: RelPath::new(path).unwrap(),
            kind: FileKind::File,
            deleted: false,
            size: content.len() as u64,
            mtime_ns: 1_000,
            executable: false,
            version: VersionVector::new().bumped(by),
            seq: Seq(0),
            hash,
            chunks: vec![ChunkInfo { hash, len: content.len() as u32 }],
            modified_by: by,
        }
    }

    fn local(store: &Store, records: Vec<(FileRecord, bool)>) {
        let updates: Vec<LocalUpdate> = records
            .into_iter()
            .map(|(record, local_change)| LocalUpdate {
                entry: LocalEntry { record, meta: LocalMeta { inode: 1, local_change } },
                new_seq: true,
            })
            .collect();
        store.commit_local(&S, &updates, &[]).unwrap();
    }

    fn remote(store: &Store, device: DeviceId, records: Vec<FileRecord>) {
        let max = store.remote_state(&S, &device).unwrap().max_seq;
        let records: Vec<FileRecord> =
            records.into_iter().enumerate().map(|(i, r)| FileRecord { seq: Seq(max + 1 + i as u64), ..r }).collect();
        store.put_remote(&S, &device, 5, &records).unwrap();
    }

    /// The status counts the way they were computed before the streaming walk: both indexes
    /// loaded whole.
    fn full_counts(store: &Store, connected: &[DeviceId]) -> StatusCounts {
        let local = store.local_files(&S).unwrap();
        let live: Vec<&LocalEntry> = local.iter().filter(|e| !e.record.deleted).collect();
        let mut peers_have_all = true;
        for d in connected {
            let remote: HashMap<RelPath, FileRecord> =
                store.remote_files(&S, d).unwrap().into_iter().map(|r| (r.path.clone(), r)).collect();
            for e in local.iter().filter(|e| !e.meta.local_change) {
                peers_have_all &= match remote.get(&e.record.path) {
                    Some(r) => r.version == e.record.version,
                    None => e.record.deleted,
                };
            }
        }
        StatusCounts {
            files: live.iter().filter(|e| e.record.kind == FileKind::File).count() as u64,
            bytes: live.iter().map(|e| e.record.size).sum(),
            local_changes: local.iter().filter(|e| e.meta.local_change && !crate::history::is_dropped_change(e)).count()
                as u64,
            peers_have_all,
        }
    }

    #[test]
    fn status_counts_match_a_full_computation() {
        let (_dir, store) = open();
        let mut dir = rec("d", "", ME);
        dir.kind = FileKind::Dir;
        dir.chunks.clear();
        let mut gone = rec("d/gone", "old", ME);
        gone.deleted = true;
        let mut dropped = rec("d/dropped", "x", ME);
        dropped.deleted = true;
        dropped.version = VersionVector::new();
        local(
            &store,
            vec![
                (rec("a", "aaa", ME), false),
                (dir, false),
                (rec("d/b", "bbbbb", ME), false),
                (gone, false),
                (rec("d/mine", "here only", ME), true),
                (dropped, true),
            ],
        );
        let check = |connected: &[DeviceId]| {
            assert_eq!(status_counts(&store, &S, connected).unwrap(), full_counts(&store, connected));
        };
        check(&[]);
        check(&[PEER]);
        let mine = store.local_files(&S).unwrap();
        let sent: Vec<FileRecord> = mine.iter().filter(|e| !e.meta.local_change).map(|e| e.record.clone()).collect();
        remote(&store, PEER, sent.clone());
        remote(&store, PEER, vec![rec("theirs only", "t", PEER)]);
        check(&[PEER]);
        assert!(status_counts(&store, &S, &[PEER]).unwrap().peers_have_all);
        // The second peer lacks one of our files, then has an older version of it.
        remote(&store, PEER2, sent.iter().filter(|r| r.path.as_str() != "d/b").cloned().collect());
        check(&[PEER, PEER2]);
        assert!(!status_counts(&store, &S, &[PEER, PEER2]).unwrap().peers_have_all);
        remote(&store, PEER2, vec![rec("d/b", "older", PEER2)]);
        check(&[PEER, PEER2]);
        let c = status_counts(&store, &S, &[PEER]).unwrap();
        assert_eq!((c.files, c.bytes, c.local_changes), (3, 3 + 5 + 9, 1));
    }

    #[test]
    fn pull_plan_wants_newer_records_and_its_mark_follows_every_index_write() {
        let (_dir, store) = open();
        let policy = ConflictPolicy::default();
        let members = [PEER, PEER2];
        let a = rec("a", "aaa", ME);
        local(&store, vec![(a.clone(), false)]);
        remote(&store, PEER, vec![a.clone()]);
        let plan = plan_pull(&store, &S, &members, policy).unwrap();
        assert!(plan.wanted.is_empty());
        assert_eq!(plan.live_files, 1);
        let mark = PullMark { states: plan.states, policy };
        let current = |store: &Store| PullMark { states: store.walk_states(&S, &members).unwrap(), policy };
        assert!(mark == current(&store), "nothing written: the next pass is skipped");
        assert!(mark != PullMark { policy: ConflictPolicy::NewestWins, ..current(&store) });

        // A peer's new file: the mark no longer holds, and the pass wants the file from both
        // peers that have its content.
        let b = rec("b", "bbb", PEER);
        remote(&store, PEER, vec![b.clone()]);
        assert!(mark != current(&store));
        remote(&store, PEER2, vec![b.clone(), rec("c", "other", PEER2)]);
        let plan = plan_pull(&store, &S, &members, policy).unwrap();
        assert_eq!(plan.wanted.keys().map(|p| p.as_str()).collect::<BTreeSet<_>>(), BTreeSet::from(["b", "c"]));
        assert_eq!(plan.wanted[&b.path].1, Action::Apply);
        assert_eq!(plan.holders[&b.path], vec![PEER, PEER2]);
        assert_eq!(plan.holders[&RelPath::new("c").unwrap()], vec![PEER2]);
        assert!(plan.local.is_empty(), "no local entry at the wanted paths");

        // A newer version of `a` on one peer: wanted, with our entry, from that peer only.
        let a2 = FileRecord { version: a.version.bumped(PEER), hash: ChunkHash::of(b"a2"), ..a.clone() };
        remote(&store, PEER2, vec![a2.clone()]);
        let plan = plan_pull(&store, &S, &members, policy).unwrap();
        assert_eq!(plan.wanted[&a.path].0.version, a2.version);
        assert_eq!(plan.holders[&a.path], vec![PEER2]);
        assert_eq!(plan.local[&a.path].record, store.local_file(&S, &a.path).unwrap().unwrap().record);

        // Everything applied: nothing wanted, and a mark taken now holds until the next write,
        // even one that keeps every seq (a revert rewrites entries in place).
        let applied: Vec<(FileRecord, bool)> = vec![(a2, false), (b, false), (rec("c", "other", PEER2), false)];
        local(&store, applied);
        let plan = plan_pull(&store, &S, &members, policy).unwrap();
        assert!(plan.wanted.is_empty(), "{:?}", plan.wanted.keys().collect::<Vec<_>>());
        let mark = PullMark { states: plan.states, policy };
        assert!(mark == current(&store));
        let mut e = store.local_file(&S, &a.path).unwrap().unwrap();
        e.record.version = VersionVector::new();
        store.commit_local(&S, &[LocalUpdate { entry: e, new_seq: false }], &[]).unwrap();
        assert!(mark != current(&store));
        assert_eq!(plan_pull(&store, &S, &members, policy).unwrap().wanted.len(), 1);
        assert_eq!(store.remote_state(&S, &PEER).unwrap(), RemoteState { epoch: 5, max_seq: 2 });
    }
}
