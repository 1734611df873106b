//! The two fast paths of a pull pass.
//!
//! **Renames.** A peer's rename arrives as a tombstone for the old path and a new record with
//! the same content for the new one. When both are in one pass, and our file at the old path
//! is still exactly what we indexed (kind, size, mtime, inode), the new path is made by renaming
//! that file instead of copying (or fetching) its content. Nothing is archived for the old path:
//! its content is not gone, it lives at the new path, exactly as on the device where the user
//! renamed it. Anything else (the old file changed here, something already at the new path,
//! different mode) goes the ordinary way: copy from local chunks, archive the old file.
//!
//! **Renames seen by the scanner.** A file renamed on this device keeps its inode, size and
//! mtime; [`reuse_moved`] hands the scanner its indexed content so it is not read and hashed
//! again (the same trust as the scanner's "unchanged" test).
//!
//! **New files in groups.** A file that does not exist here yet (no record, or a tombstone, and
//! nothing on disk) needs no archive and cannot conflict, so many of them are handled together:
//! fetched concurrently (each chunk verified, each whole file checked against its record),
//! committed in one wave ([`ferry_fs::commit_temps`]: every temp fsynced before any rename,
//! then one fsync per directory) and recorded in one index transaction, after the disk.

use super::pull::{BATCH_MAX, Batch, PullStats};
use super::*;
use crate::events::ChangeKind;
use crate::records;
use ferry_engine::pull;
use ferry_proto::wire::BlockRef;

/// Files fetched at once: hides the per-file round trips and blocking-thread hops without
/// holding much memory (small files; a big one still streams through its own 16-block window).
const PARALLEL_FILES: usize = 32;
/// New files per group: one commit wave and one index transaction each.
pub(super) const GROUP_MAX: usize = BATCH_MAX;
/// New files per group when the share has other members that may be fetching the same files:
/// each group's commit sends an index update that tells them what this device holds now, and
/// they look for holders before each of their groups (`refresh_holders`). Ten devices receiving
/// 1,000 new files start at their own ninth of the list (about 111 files): groups of 256 made
/// each receiver fetch its first group, most of two neighbours' parts, from the origin alone
/// (the origin sent 3.8x the files in W10s). A group costs a commit and a round trip, a few
/// milliseconds: small beside fetching and writing 32 files.
pub(super) const SWARM_GROUP_MAX: usize = 32;
/// A new file this small, in at most one chunk, is fetched with others in one request.
const SMALL_FILE: u64 = 256 << 10;
/// Most files and bytes per small-file request (within the protocol's batch limits).
const SMALL_BATCH_FILES: usize = 128;
const SMALL_BATCH_BYTES: u64 = 1 << 20;
/// Small-file requests in flight at once.
const PARALLEL_BATCHES: usize = 4;

/// Orders the peers that have `nf`'s version: the file's author last (every device that lacks
/// the file would ask it otherwise), the others from one picked by the file's content and this
/// device's `salt`, so that devices fetching it ask different ones and one device asks each of
/// them for some of its files.
fn spread(nf: &mut NewFile, salt: usize) {
    let author = nf.target.modified_by;
    // Stable: the others keep their order, the author goes to the end.
    nf.sources.sort_by_key(|p| p.id == author);
    let others = nf.sources.iter().filter(|p| p.id != author).count();
    if others > 1 {
        let by_content = crate::swarm::salt_of_bytes(&nf.target.hash.0);
        nf.sources[..others].rotate_left(by_content.wrapping_add(salt) % others);
    }
}

/// A new file to fetch, with the peers that have its version.
pub(super) struct NewFile {
    pub target: FileRecord,
    /// What to commit once it is on disk when that is not `target` itself: the target under a
    /// version of ours, over a concurrent tombstone of ours ([`pull::record_for`]).
    pub record: Option<FileRecord>,
    pub sources: Vec<Arc<PeerLink>>,
}

impl Worker {
    /// Applies the renames among `items` (paired by the engine, [`pull::pair_moves`]; see the
    /// module docs) and removes them from it.
    pub(super) async fn apply_moves(
        &self,
        items: &mut Vec<(FileRecord, Action)>,
        local: &HashMap<RelPath, LocalEntry>,
        batch: &mut Batch,
        stats: &mut PullStats,
    ) {
        // Only the entries at tombstoned paths can be a rename's source: the engine gets those.
        let sources: HashMap<RelPath, ferry_engine::Entry> = items
            .iter()
            .filter(|(t, _)| t.deleted)
            .filter_map(|(t, _)| local.get(&t.path).map(|e| (t.path.clone(), records::entry(e))))
            .collect();
        let pairs = if sources.is_empty() { Vec::new() } else { pull::pair_moves(items, &sources) };
        let mut done = BTreeSet::new();
        for (n, d) in pairs {
            let (new, del) = (&items[n].0, &items[d].0);
            let old = local.get(&del.path).expect("paired tombstones have a live local file");
            match self.move_one(new, del, old).await {
                Ok(inode) => {
                    // Each committed as the engine says (our tombstone at the new path may be
                    // concurrent with the new file).
                    let me = self.inner.id;
                    let record_new = pull::record_for(local.get(&new.path).map(|e| &e.record), new, me);
                    let record_del = pull::record_for(Some(&old.record), del, me);
                    for (record, inode) in [(record_new, inode), (record_del, 0)] {
                        let meta = LocalMeta { inode, local_change: false };
                        batch.updates.push(LocalUpdate { entry: LocalEntry { record, meta }, new_seq: true });
                    }
                    for (p, action, by) in [
                        (&new.path, ChangeKind::Added, new.modified_by),
                        (&del.path, ChangeKind::Deleted, del.modified_by),
                    ] {
                        batch.applied(Event::applied(&self.id, p, action, &by), action);
                    }
                    tracing::debug!(share = %self.id, from = %del.path, to = %new.path, "applied a rename");
                    stats.applied += 2;
                    done.insert(n);
                    done.insert(d);
                }
                // Not applicable after all: the ordinary path handles (and reports) both.
                Err(e) => tracing::debug!(share = %self.id, path = %new.path, "rename not applied as one: {e}"),
            }
        }
        if !done.is_empty() {
            let mut i = 0;
            items.retain(|_| {
                let keep = !done.contains(&i);
                i += 1;
                keep
            });
        }
    }

    /// Renames our file at `del.path` (still as indexed in `old`) to `new.path`; returns its
    /// inode.
    async fn move_one(&self, new: &FileRecord, del: &FileRecord, old: &LocalEntry) -> Result<u64, ShareError> {
        let root = self.root.clone();
        let (from, to, mtime) = (del.path.clone(), new.path.clone(), new.mtime_ns);
        let known = known_of(old);
        let old_mtime = old.record.mtime_ns;
        blocking(move || {
            if !ferry_fs::unchanged_on_disk(&root, &from, Some(&known))? {
                return Err(ferry_fs::FsError::Exists(from.to_fs(&root)));
            }
            if ferry_fs::stat_known(&root, &to)?.is_some() {
                return Err(ferry_fs::FsError::Exists(to.to_fs(&root)));
            }
            ferry_fs::move_file(&root, &from, &to)?;
            if mtime != old_mtime {
                ferry_fs::set_mtime(&root, &to, mtime)?;
            }
            // The snapshot follows the file to its new name (best effort, like every snapshot).
            let _ = ferry_fs::drop_snapshot(&root, &from);
            if let Err(e) = ferry_fs::link_snapshot(&root, &to) {
                tracing::debug!(path = %to, "no snapshot: {e}");
            }
            Ok(ferry_fs::stat_known(&root, &to)?.map(|k| k.inode).unwrap_or(0))
        })
        .await
    }

    /// Fetches, commits and records a group of new files (see the module docs).
    pub(super) async fn apply_group(
        &self,
        mut group: Vec<NewFile>,
        local_chunks: &HashMap<ChunkHash, (RelPath, u64)>,
        batch: &mut Batch,
        stats: &mut PullStats,
    ) {
        if group.is_empty() {
            return;
        }
        self.refresh_holders(&mut group).await;
        // The records to commit as something else than the target itself (rare).
        let mut records: HashMap<RelPath, FileRecord> = HashMap::new();
        for nf in &mut group {
            if let Some(r) = nf.record.take() {
                records.insert(nf.target.path.clone(), r);
            }
        }
        // Small files many per request; the rest (and any small file a batch did not bring)
        // one by one, each from any source.
        let (small, mut single): (Vec<NewFile>, Vec<NewFile>) =
            group.into_iter().partition(|nf| self.batchable(&nf.target, &nf.sources, local_chunks));
        let mut ready = Vec::new();
        if !small.is_empty() {
            let (done, retry) = self.fetch_small(small, stats).await;
            ready.extend(done);
            single.extend(retry);
        }
        let fetches = single.into_iter().map(|nf| async move {
            let r = self.fetch_new(&nf.target, &nf.sources, local_chunks).await;
            (nf.target, r)
        });
        let mut fetched = futures::stream::iter(fetches).buffer_unordered(PARALLEL_FILES);
        while let Some((target, r)) = fetched.next().await {
            match r {
                Ok(temp) => ready.push((target, temp)),
                Err(e) => self.item_failed(stats, &target.path, &e),
            }
        }
        drop(fetched);
        if ready.is_empty() {
            return;
        }
        self.commit_group(ready, records, batch, stats).await;
    }

    /// Commits the verified temps of a group in one wave ([`ferry_fs::commit_temps`]) and
    /// records each file placed (as `records` says where the engine chose another record).
    async fn commit_group(
        &self,
        ready: Vec<(FileRecord, ferry_fs::TempFile)>,
        mut records: HashMap<RelPath, FileRecord>,
        batch: &mut Batch,
        stats: &mut PullStats,
    ) {
        let root = self.root.clone();
        let (targets, pending): (Vec<FileRecord>, Vec<ferry_fs::PendingFile>) = ready
            .into_iter()
            .map(|(t, temp)| {
                let p =
                    ferry_fs::PendingFile { temp, rel: t.path.clone(), mtime_ns: t.mtime_ns, executable: t.executable };
                (t, p)
            })
            .unzip();
        let paths: Vec<RelPath> = targets.iter().map(|t| t.path.clone()).collect();
        let outcome = tokio::task::spawn_blocking(move || {
            let absent = vec![true; pending.len()];
            let done: Vec<_> = ferry_fs::commit_temps(&root, pending, &absent)
                .into_iter()
                .zip(&paths)
                .map(|(r, p)| r.and_then(|()| ferry_fs::stat_known(&root, p)).map(|k| k.map(|k| k.inode).unwrap_or(0)))
                .collect();
            // Snapshot links, so a later local edit or delete of a received file keeps the
            // received content as a version (as for files applied one by one).
            let applied = paths.iter().zip(&done).filter(|(_, r)| r.is_ok()).map(|(p, _)| p);
            if let Err(e) = ferry_fs::link_snapshots(&root, applied) {
                tracing::debug!("no snapshot links: {e}");
            }
            done
        })
        .await;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                stats.failed += targets.len();
                self.report_error(format!("committing {} files failed: {e}", targets.len()));
                return;
            }
        };
        for (target, r) in targets.into_iter().zip(outcome) {
            match r {
                Ok(inode) => {
                    let kind = ChangeKind::Added;
                    batch.applied(Event::applied(&self.id, &target.path, kind, &target.modified_by), kind);
                    let record = records.remove(&target.path).unwrap_or(target);
                    batch.updates.push(LocalUpdate {
                        entry: LocalEntry { record, meta: LocalMeta { inode, local_change: false } },
                        new_seq: true,
                    });
                    stats.applied += 1;
                }
                Err(ferry_fs::FsError::Exists(_)) => {
                    stats.failed += 1;
                    let msg = self.rescan_first(&target.path);
                    self.report_error(format!("{}: {msg}", target.path));
                }
                Err(e) => self.item_failed(stats, &target.path, &ShareError::Fs(e)),
            }
        }
    }

    /// Adds to each file's sources the connected members whose index has its version by now:
    /// the pass's plan is older, and other devices fetching the same new files (from another
    /// place in the list, see `pull_pass`) may have applied and announced some meanwhile.
    async fn refresh_holders(&self, group: &mut [NewFile]) {
        let paths: Vec<RelPath> = group.iter().map(|nf| nf.target.path.clone()).collect();
        for peer in super::progress::connected_members(&self.inner, self.id, &[]) {
            if group.iter().all(|nf| nf.sources.iter().any(|s| s.id == peer.id)) {
                continue;
            }
            let (id, pid, paths) = (self.id, peer.id, paths.clone());
            let Ok(records) = self.inner.db(move |s| s.remote_files_at(&id, &pid, &paths)).await else { continue };
            for (nf, r) in group.iter_mut().zip(records) {
                let holds = r.is_some_and(|r| r.is_file() && !r.deleted && r.hash == nf.target.hash);
                if holds && !nf.sources.iter().any(|s| s.id == peer.id) {
                    nf.sources.push(peer.clone());
                }
            }
        }
    }

    /// True for a new file fetched with others in one request: small, at most one chunk, not
    /// available here, no partial download kept for it, and a connected source.
    fn batchable(
        &self,
        target: &FileRecord,
        sources: &[Arc<PeerLink>],
        local_chunks: &HashMap<ChunkHash, (RelPath, u64)>,
    ) -> bool {
        target.size <= SMALL_FILE
            && target.chunks.len() <= 1
            && !sources.is_empty()
            && target.chunks.iter().all(|c| !local_chunks.contains_key(&c.hash))
            && !self.partials.lock().unwrap().contains_key(&target.path)
    }

    /// Fetches small new files many per request (grouped by the peer each is asked of: one of
    /// those that have it, picked per file and per device, see [`spread`]),
    /// checks each against its record and writes each into a temp file beside its place, one
    /// blocking task per batch. Returns the verified temps and the files to fetch one by one
    /// instead (the peer did not serve them: changed, gone, or an older peer without batches).
    async fn fetch_small(
        &self,
        files: Vec<NewFile>,
        stats: &mut PullStats,
    ) -> (Vec<(FileRecord, ferry_fs::TempFile)>, Vec<NewFile>) {
        let mut by_peer: HashMap<DeviceId, Vec<NewFile>> = HashMap::new();
        let salt = crate::swarm::salt_of(&self.inner.id);
        for mut nf in files {
            spread(&mut nf, salt);
            by_peer.entry(nf.sources[0].id).or_default().push(nf);
        }
        let mut batches: Vec<Vec<NewFile>> = Vec::new();
        for (_, list) in by_peer {
            let mut cur: Vec<NewFile> = Vec::new();
            let mut bytes = 0;
            for nf in list {
                if !cur.is_empty() && (cur.len() >= SMALL_BATCH_FILES || bytes + nf.target.size > SMALL_BATCH_BYTES) {
                    batches.push(std::mem::take(&mut cur));
                    bytes = 0;
                }
                bytes += nf.target.size;
                cur.push(nf);
            }
            if !cur.is_empty() {
                batches.push(cur);
            }
        }
        let mut ready = Vec::new();
        let mut retry = Vec::new();
        let mut runs =
            futures::stream::iter(batches.into_iter().map(|b| self.fetch_batch(b))).buffer_unordered(PARALLEL_BATCHES);
        while let Some((done, again, failed)) = runs.next().await {
            ready.extend(done);
            retry.extend(again);
            for (target, e) in failed {
                self.item_failed(stats, &target.path, &e);
            }
        }
        (ready, retry)
    }

    /// One small-file request and the temps it fills: (written, to retry one by one, failed).
    #[allow(clippy::type_complexity)]
    async fn fetch_batch(
        &self,
        batch: Vec<NewFile>,
    ) -> (Vec<(FileRecord, ferry_fs::TempFile)>, Vec<NewFile>, Vec<(FileRecord, ShareError)>) {
        let peer = batch[0].sources[0].clone();
        let refs: Vec<BlockRef> = batch
            .iter()
            .filter_map(|nf| {
                nf.target.chunks.first().map(|c| BlockRef {
                    path: nf.target.path.clone(),
                    offset: 0,
                    len: c.len,
                    hash: c.hash,
                })
            })
            .collect();
        let mut replies = if refs.is_empty() {
            Vec::new()
        } else {
            match peer.fetch_blocks(self.id, &refs).await {
                Ok(r) => r,
                // The whole request failed (an older peer, a dropped connection): one by one.
                Err(e) => {
                    tracing::debug!(peer = %peer.id.short(), "small-file batch failed, fetching one by one: {e}");
                    return (Vec::new(), batch, Vec::new());
                }
            }
        }
        .into_iter();
        let mut retry = Vec::new();
        let mut work: Vec<(FileRecord, Vec<u8>)> = Vec::new();
        for nf in batch {
            if nf.target.chunks.is_empty() {
                work.push((nf.target, Vec::new()));
                continue;
            }
            match replies.next() {
                Some(Ok(data)) => {
                    self.runtime.lock().unwrap().fetched_bytes += data.len() as u64;
                    work.push((nf.target, data));
                }
                _ => retry.push(nf),
            }
        }
        let root = self.root.clone();
        let targets: Vec<FileRecord> = work.iter().map(|(t, _)| t.clone()).collect();
        let written = tokio::task::spawn_blocking(move || {
            work.into_iter()
                .map(|(target, data)| {
                    let r = (|| {
                        // The record's whole-file hash, not only the chunk's.
                        if data.len() as u64 != target.size || ChunkHash::of(&data) != target.hash {
                            return Err(ShareError::WholeHashMismatch { sender: target.modified_by });
                        }
                        // Something there already: the async side below asks for its rescan.
                        if ferry_fs::stat_known(&root, &target.path)?.is_some() {
                            return Err(ShareError::ChangedHere);
                        }
                        let mut temp = ferry_fs::create_temp(&root, &target.path)?;
                        std::io::Write::write_all(&mut temp.file, &data)
                            .map_err(|source| ShareError::Write { path: temp.path.clone(), source })?;
                        Ok(temp)
                    })();
                    (target, r)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let mut done = Vec::new();
        let mut failed = Vec::new();
        match written {
            Ok(list) => {
                for (target, r) in list {
                    match r {
                        Ok(temp) => done.push((target, temp)),
                        // Something appeared at the path meanwhile: scan it before syncing it.
                        Err(ShareError::ChangedHere) => {
                            let e = self.rescan_first(&target.path);
                            failed.push((target, e));
                        }
                        Err(e) => failed.push((target, e)),
                    }
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                failed.extend(targets.into_iter().map(|t| (t, ShareError::BatchWrite(e.clone()))));
            }
        }
        (done, retry, failed)
    }

    /// A new file's content in a verified temp beside it, after checking nothing is there.
    async fn fetch_new(
        &self,
        target: &FileRecord,
        sources: &[Arc<PeerLink>],
        local_chunks: &HashMap<ChunkHash, (RelPath, u64)>,
    ) -> Result<ferry_fs::TempFile, ShareError> {
        let (r, p) = (self.root.clone(), target.path.clone());
        if blocking(move || ferry_fs::stat_known(&r, &p)).await?.is_some() {
            return Err(self.rescan_first(&target.path));
        }
        let (temp, got) = self.fetch_to_temp(target, sources, local_chunks).await?;
        self.check_whole(target, temp, got)
    }
}

/// Live indexed files by inode, among `entries` (the scanner's candidates for a rename).
pub(super) fn inodes<'a>(entries: impl Iterator<Item = &'a LocalEntry>) -> HashMap<u64, RelPath> {
    entries
        .filter(|e| e.record.is_file() && e.meta.inode != 0 && e.record.size > 0)
        .map(|e| (e.meta.inode, e.record.path.clone()))
        .collect()
}

/// [`inodes`] of the whole local index, read entry by entry.
pub(super) fn indexed_inodes(store: &ferry_store::Store, id: &ShareId) -> HashMap<u64, RelPath> {
    let mut m = HashMap::new();
    let walked = store.for_each_local(id, |e| {
        m.extend(inodes(std::iter::once(&e)));
        Ok(true)
    });
    if let Err(e) = walked {
        // Renamed files are then hashed again: slower, never wrong.
        tracing::warn!(share = %id, "reading the index for renames: {e}");
    }
    m
}

/// The indexed content of the file now at `rel`, if it was renamed there: an indexed file had
/// the same inode, size and mtime, and its old path no longer holds that inode (a hard link is
/// two files, each hashed).
pub(super) fn reuse_moved(
    root: &Path,
    by_inode: &HashMap<u64, RelPath>,
    lookup: &dyn Fn(&RelPath) -> Option<LocalEntry>,
    rel: &RelPath,
    now: &Known,
) -> Option<ferry_fs::Reused> {
    let old = by_inode.get(&now.inode).filter(|p| *p != rel)?;
    let e = lookup(old)?;
    if !e.record.is_file()
        || e.meta.inode != now.inode
        || e.record.size != now.size
        || e.record.mtime_ns != now.mtime_ns
    {
        return None;
    }
    match ferry_fs::stat_known(root, old) {
        Ok(None) => {}
        Ok(Some(k)) if k.inode != now.inode => {}
        _ => return None,
    }
    tracing::debug!(from = %old, to = %rel, "renamed file: content reused, not hashed");
    Some((e.record.hash, e.record.chunks))
}
