//! The actor's pull: carries out the engine's pull plan ([`ferry_engine::pull`]: which peers' records
//! to apply, from whom, in what order, what becomes of ours), in batches whose index
//! commit follows the disk.

use super::*;
use crate::events::ChangeKind;
use crate::failed::{self, FailReason};
use apply::Write;
use ferry_engine::pull::{self, Step};
use ferry_proto::ConflictPolicy;
use plan::{PullPlan, PullScope, Round, local_chunks_of, plan_pull, spread_files};

/// Who planned a kept pull mark: a mark of another version is not used, as its planner may
/// have decided differently on the same inputs.
const PLANNER: &str = env!("CARGO_PKG_VERSION");

/// Index updates of applied changes waiting to be committed. Their files are already on disk
/// (renamed into place, directory fsynced), so committing in batches keeps "index after disk"
/// while saving a database fsync per file. A crash before the commit only makes the next scan
/// see content it already has a version for (it merges, as identical content).
#[derive(Default)]
pub(super) struct Batch {
    pub(super) updates: Vec<LocalUpdate>,
    pub(super) versions: Vec<VersionRecord>,
    pub(super) events: Vec<Event>,
    /// What the applied records did, for the sync summary.
    pub(super) changes: Vec<ChangeKind>,
    /// Conflicts the applied records made (kept copies).
    pub(super) conflicts: u64,
}

impl Batch {
    /// Records an applied change and its event.
    pub(super) fn applied(&mut self, event: Event, kind: ChangeKind) {
        self.events.push(event);
        self.changes.push(kind);
    }
}

/// Applied changes per index transaction.
pub(super) const BATCH_MAX: usize = 256;

/// What happened in one pull pass.
#[derive(Default)]
pub(super) struct PullStats {
    pub(super) applied: usize,
    /// Paths not applied that this device still needs (retried).
    pub(super) failed: usize,
    /// Paths that cannot be synced here, with why (see `failed`): those failures whose cause is
    /// on this device's side, and names this system cannot hold (not tried, not retried).
    pub(super) items: Vec<(String, FailReason)>,
    /// The pass was skipped: its inputs were those of a pass that found nothing to do, so the
    /// items that pass found still stand.
    pub(super) skipped: bool,
    /// A pass over some paths stopped before doing anything: what it found needs a full pass
    /// (a deletion: the mass-delete guard counts the share's files, and a rename pairs it with
    /// a new file elsewhere).
    pub(super) needs_full: bool,
    /// A window that reached its cap: the next one starts after this path.
    pub(super) next: Option<RelPath>,
}

/// What a pass's items are applied with: its plan's snapshot of our entries, who holds each
/// wanted path, the connected members, and where our own chunks are.
struct PassInputs<'a> {
    local: &'a HashMap<RelPath, LocalEntry>,
    holders: &'a HashMap<RelPath, Vec<DeviceId>>,
    peers: &'a [Arc<PeerLink>],
    local_chunks: &'a HashMap<ChunkHash, (RelPath, u64)>,
}

/// What the passes of one round (one pass over every path, or a big one's windows) did.
#[derive(Default)]
struct RoundStats {
    applied: usize,
    failed: usize,
    items: Vec<(String, FailReason)>,
    skipped: bool,
}

/// Below this many bytes wanted, a pass over some paths fetches everything rather than look
/// for the chunks in this device's other files: that look is a streamed pass over the whole
/// local index (about a second per million files), while fetching 4 MiB from a peer on a LAN
/// takes a few tens of milliseconds. (A full pass looks anyway: it walks every index already.)
const LOCAL_REUSE_MIN: u64 = 4 << 20;

impl Worker {
    /// Pulls what the members have that this device should move to. `only`: the paths an index
    /// update named (see `need.rs`), planned by themselves, so a small change in a big share
    /// costs the change and not the share. Whatever that pass cannot settle cleanly alone (a
    /// deletion, a failure, an item that cannot be synced here) is left to full passes.
    pub(super) async fn pull(&self, only: Option<Vec<RelPath>>) {
        if let Some(paths) = only {
            match self.pull_pass(PullScope::Paths(paths), &mut Round::default()).await {
                Ok(s) if !s.needs_full && s.failed == 0 && s.items.is_empty() => {
                    self.retry.lock().unwrap().after_pull(false);
                    return;
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(share = %self.id, "pull of some paths failed ({e}); a full pass follows"),
            }
        }
        let (mut total_failed, mut errored) = (0, false);
        // The items of the last round that ran (None: none did, the last list stands).
        let mut items = None;
        let (mut stats_of, mut round, mut rounds, mut after) = (RoundStats::default(), Round::default(), 0, None);
        loop {
            if self.inner.stopping() {
                break; // not another window's plan on the way out
            }
            if after.is_none() {
                // A round starts: bounded, so a flapping peer cannot spin us. A cursor only
                // moves forward, so the windows of a round end.
                if rounds == MAX_PULL_PASSES {
                    break;
                }
                rounds += 1;
                round = Round::beginning_at(ferry_proto::Seq(*self.seq.borrow()));
            }
            let scope = PullScope::Window { after: after.take(), cap: self.inner.cfg.pull_window };
            let stats = match self.pull_pass(scope, &mut round).await {
                Ok(stats) => stats,
                Err(e) => {
                    self.report_error(format!("sync failed: {e}"));
                    errored = true;
                    break;
                }
            };
            stats_of.applied += stats.applied;
            stats_of.failed += stats.failed;
            stats_of.items.extend(stats.items);
            stats_of.skipped = stats.skipped;
            after = stats.next;
            if after.is_some() {
                continue; // the round goes on with its next window
            }
            let done = std::mem::take(&mut stats_of);
            total_failed = done.failed;
            if !done.skipped {
                items = Some(done.items);
            }
            if done.applied == 0 {
                break;
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
        let rec = self.record().await;
        if let Some(items) = items {
            let label = rec.as_ref().map(|r| r.label.clone()).unwrap_or_default();
            self.update_failed(&label, |f| f.after_pull(items));
        }
        // Not "in sync" while items cannot be synced (their own event told of them).
        if was > 0 && total_failed == 0 && self.runtime.lock().unwrap().failed.is_empty() {
            self.inner.emit(Event::InSync { share: self.id.to_string() });
        }
        // Items that failed while a member is connected failed here (disk full, a write
        // refused): try them again by themselves, backing off.
        let connected = match rec {
            Ok(rec) => {
                let peers = self.inner.peers.lock().unwrap();
                rec.devices.iter().any(|d| peers.contains_key(d))
            }
            Err(_) => false,
        };
        self.retry.lock().unwrap().after_pull((total_failed > 0 || errored) && connected);
    }

    /// Counts a path the pull could not apply and reports it; when the cause is on this
    /// device's side it is also an item that cannot be synced (see `failed::of_pull`).
    pub(super) fn item_failed(&self, stats: &mut PullStats, path: &RelPath, e: &ShareError) {
        stats.failed += 1;
        if let Some(reason) = failed::of_pull(e) {
            stats.items.push((path.to_string(), reason));
        }
        self.report_error(format!("{path}: {e}"));
    }

    /// Compares every peer's index with ours and applies what is newer.
    ///
    /// The comparison streams both indexes in path order (see [`plan_pull`]) and keeps only
    /// what is wanted, so memory follows the work to do rather than the size of the share; a
    /// big pass goes in windows of [`crate::config::DEFAULT_PULL_WINDOW`] wanted paths.
    ///
    /// A round's first window walks the whole share for its deletions and live files (the
    /// mass-delete guard counts the whole burst against the whole share), keeps them in the
    /// [`Round`] and offers them to every window, so a rename pairs with its new path in
    /// whichever window that falls (the file moves, it is not copied); the last window applies
    /// those left.
    ///
    /// A pass whose inputs are exactly those of the last pass that found nothing to do is
    /// skipped (see [`PullMark`]). A pass over some paths neither skips by the mark nor sets
    /// one (the mark vouches for every path), and stops with `needs_full` before touching
    /// anything if one of its paths is to be deleted.
    pub(super) async fn pull_pass(&self, scope: PullScope, round: &mut Round) -> Result<PullStats, ShareError> {
        let rec = self.record().await?;
        // Nothing to receive, or no device to receive from (a share no other device has joined
        // yet: walking its index, a million entries at restart, would find nothing).
        if !rec.mode.receives() || rec.devices.is_empty() {
            return Ok(PullStats::default());
        }
        let (id, members) = (self.id, rec.devices.clone());
        let policy = self.inner.db(move |s| s.share_settings(&id)).await?.conflict_policy;
        let from_start = matches!(scope, PullScope::Window { after: None, .. });
        if from_start && self.unchanged_since_mark(&members, policy).await? {
            tracing::debug!(share = %id, "pull skipped: nothing changed since the last pass");
            return Ok(PullStats { skipped: true, ..Default::default() });
        }
        let started = Instant::now();
        let only = matches!(scope, PullScope::Paths(_));
        let plan = self.inner.db(move |s| plan_pull(s, &id, &members, policy, &scope)).await?;
        let PullPlan { mut wanted, mut local, holders, live_files, states, next, whole } = plan;
        tracing::debug!(share = %id, wanted = wanted.len(), whole, window = next.is_some(),
            millis = started.elapsed().as_millis() as u64, "pull planned");
        if only && wanted.values().any(|(r, _)| r.deleted) {
            return Ok(PullStats { needs_full: true, ..Default::default() });
        }
        // The first window of a round holds every deletion of the share and every live file
        // (walked to the end for them): the guard sees the whole burst against the whole share.
        let held =
            crate::guard::hold_mass_delete(&self.inner, &rec, &self.guard, live_files, &local, &mut wanted).await?;
        let window = !whole && !only;
        if window {
            round.offer(&mut wanted, &mut local);
        }
        let last_window = window && next.is_none();
        let mut stats = PullStats { next, ..Default::default() };
        let mut batch = Batch::default();
        // Names this system cannot hold are never joined onto the root (on Windows a `\` or a
        // `C:` would change what the path means): items that cannot be synced here, until a
        // peer renames them. (None on Linux and macOS.)
        wanted.retain(|path, _| match path.problem_on(ferry_proto::System::HERE) {
            Some(why) => {
                stats.items.push((path.to_string(), FailReason::NotHere(why)));
                false
            }
            None => true,
        });
        if wanted.is_empty() {
            if held == 0 && whole {
                // Nothing to do with these inputs: until one of them changes, neither is there.
                // Kept across restarts only without items that cannot be synced here (a skipped
                // pass keeps the list it has, and a restarted node has none).
                let lasting = stats.items.is_empty();
                self.keep_mark(PullMark { states, policy }, lasting).await;
            }
            return Ok(stats);
        }
        *self.pull_mark.lock().unwrap() = None;
        self.set_state("syncing");
        let mut items = pull::ordered(wanted.into_values());
        spread_files(&mut items, self.inner.id, &rec.devices);
        // Before any rename of this pass: what it is about to write (see `intents.rs`).
        let intents = self.record_intents(&items, &local).await?;
        // Chunks this device already has, for reuse: only those the wanted files are made of.
        let needed = pull::needed_chunks(&items);
        // Sizes come from peers' records: a hostile one may say anything (saturate, never wrap).
        let wanted_bytes = items.iter().fold(0u64, |sum, (r, _)| sum.saturating_add(r.size));
        let local_chunks = if needed.is_empty() || (only && wanted_bytes < LOCAL_REUSE_MIN) {
            HashMap::new()
        } else {
            // A round's first pass looks at every entry; its later windows at what was here
            // when the round began.
            let upto = if from_start { None } else { round.began_at };
            self.inner.db(move |s| local_chunks_of(s, &id, &needed, upto)).await?
        };
        let peers: Vec<Arc<PeerLink>> = rec.devices.iter().filter_map(|d| self.inner.peer(d)).collect();

        self.apply_moves(&mut items, &local, &mut batch, &mut stats).await;
        if window && !last_window {
            // Deletions wait for the round's last window: a later one may pair them.
            round.keep_back(&mut items, &mut local);
        }
        let ctx = PassInputs { local: &local, holders: &holders, peers: &peers, local_chunks: &local_chunks };
        self.apply_items(items, &ctx, rec.devices.len(), &mut batch, &mut stats).await?;
        self.flush(&mut batch).await?;
        // Every rename of the pass is in the index now.
        if intents {
            self.clear_intents().await?;
        }
        Ok(stats)
    }

    /// Applies a pass's items in order (after its renames): new files in groups
    /// ([`fast::GROUP_MAX`]), the rest one at a time; the index in batches after the disk.
    async fn apply_items(
        &self,
        items: Vec<(FileRecord, Action)>,
        c: &PassInputs<'_>,
        members: usize,
        batch: &mut Batch,
        stats: &mut PullStats,
    ) -> Result<(), ShareError> {
        let group_max = if members > 1 { fast::SWARM_GROUP_MAX } else { fast::GROUP_MAX };
        let mut group: Vec<fast::NewFile> = Vec::new();
        for (target, action) in items {
            if self.inner.stopping() {
                break;
            }
            if batch.updates.len() >= BATCH_MAX {
                self.flush(batch).await?;
            }
            let l = c.local.get(&target.path);
            let sources: Vec<Arc<PeerLink>> = match c.holders.get(&target.path) {
                Some(h) => c.peers.iter().filter(|p| h.contains(&p.id)).cloned().collect(),
                None => Vec::new(),
            };
            let ours = l.map(|e| &e.record);
            if pull::groupable(&target, &action, ours) {
                let record = Some(pull::record_for(ours, &target, self.inner.id)).filter(|r| *r != target);
                group.push(fast::NewFile { target, record, sources });
                if group.len() >= group_max {
                    self.apply_group(std::mem::take(&mut group), c.local_chunks, batch, stats).await;
                    self.flush(batch).await?;
                }
                continue;
            }
            if !group.is_empty() {
                self.apply_group(std::mem::take(&mut group), c.local_chunks, batch, stats).await;
                self.flush(batch).await?;
            }
            match self.apply_item(action, &target, l, &sources, c.local_chunks, batch).await {
                Ok(()) => stats.applied += 1,
                Err(e) => self.item_failed(stats, &target.path, &e),
            }
        }
        if !self.inner.stopping() {
            self.apply_group(group, c.local_chunks, batch, stats).await;
        }
        Ok(())
    }

    /// Remembers that these inputs leave nothing to do; `lasting`, also in the store, so that a
    /// restart that changed nothing skips its first walk of every index (a mark already kept is
    /// not written again).
    async fn keep_mark(&self, mark: PullMark, lasting: bool) {
        let kept = self.pull_mark.lock().unwrap().replace(mark.clone());
        if !lasting || kept.as_ref() == Some(&mark) {
            return;
        }
        let id = self.id;
        let stored = ferry_store::PullMark { states: mark.states, policy: mark.policy, planner: PLANNER.into() };
        if let Err(e) = self.inner.db(move |s| s.put_pull_mark(&id, &stored)).await {
            tracing::warn!(share = %self.id, "keeping the pull mark: {e}");
        }
    }

    /// At start: the mark an earlier run of this version kept (see [`Worker::keep_mark`]).
    pub(super) async fn load_mark(&self) {
        let id = self.id;
        match self.inner.db(move |s| s.pull_mark(&id)).await {
            Ok(Some(m)) if m.planner == PLANNER => {
                *self.pull_mark.lock().unwrap() = Some(PullMark { states: m.states, policy: m.policy });
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(share = %self.id, "reading the pull mark: {e}"),
        }
    }

    /// True when the pull's inputs are those of the last pass that found nothing to do.
    async fn unchanged_since_mark(&self, members: &[DeviceId], policy: ConflictPolicy) -> Result<bool, ShareError> {
        let Some(mark) = self.pull_mark.lock().unwrap().clone() else { return Ok(false) };
        let (id, m) = (self.id, members.to_vec());
        let states = self.inner.db(move |s| s.walk_states(&id, &m)).await?;
        Ok(mark == PullMark { states, policy })
    }

    /// Carries out the engine's step ([`pull::step`]) for one wanted item that is neither a
    /// rename nor a grouped new file.
    async fn apply_item(
        &self,
        action: Action,
        target: &FileRecord,
        local: Option<&LocalEntry>,
        sources: &[Arc<PeerLink>],
        local_chunks: &HashMap<ChunkHash, (RelPath, u64)>,
        batch: &mut Batch,
    ) -> Result<(), ShareError> {
        let keep = |record: FileRecord| {
            let meta = local.expect("a merge or override implies a local entry").meta;
            LocalUpdate { entry: LocalEntry { record, meta }, new_seq: true }
        };
        match pull::step(action, local.map(|e| &e.record), target, self.inner.id) {
            Step::Nothing => {}
            Step::Record(record) => batch.updates.push(keep(record)),
            Step::KeepOurs(record) => {
                // This device's policy wins the conflict: our content under a version that has
                // seen theirs; the other devices archive their content as they apply it.
                batch.updates.push(keep(record));
                self.inner.summaries.conflict(self.id);
            }
            Step::Write { record, fate, applied, conflict } => {
                let write = Write { target, record, fate, applied };
                self.apply(write, local, sources, local_chunks, batch).await?;
                if conflict {
                    self.inner.summaries.conflict(self.id);
                }
            }
        }
        Ok(())
    }

    /// Commits the batch in one transaction, then tells the world.
    pub(super) async fn flush(&self, batch: &mut Batch) -> Result<(), ShareError> {
        if batch.updates.is_empty() {
            return Ok(());
        }
        let (updates, versions) = (std::mem::take(&mut batch.updates), std::mem::take(&mut batch.versions));
        let id = self.id;
        let seq = self.inner.db(move |s| s.commit_local(&id, &updates, &versions)).await?;
        crate::crash::point("pull.committed");
        self.seq.send_replace(seq.0);
        // Counted once: the batch goes on after a flush (the changes and conflicts were kept,
        // and counted again, by every later flush of the pass).
        let (changes, conflicts) = (std::mem::take(&mut batch.changes), std::mem::take(&mut batch.conflicts));
        let deletes = changes.iter().filter(|k| **k == ChangeKind::Deleted).count() as u64;
        self.guard.lock().unwrap().applied_deletes(deletes, crate::clock::now_ms());
        self.inner.summaries.remote(self.id, &changes, conflicts);
        for e in batch.events.drain(..) {
            self.inner.emit(e);
        }
        Ok(())
    }

    /// Asks for a rescan of `path` (something changed under us) and returns the error to report.
    pub(super) fn rescan_first(&self, path: &RelPath) -> ShareError {
        self.pending.lock().unwrap().scan_paths([path.clone()]);
        self.wake.notify_one();
        ShareError::ChangedHere
    }
}
