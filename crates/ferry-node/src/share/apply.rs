//! Applying one remote record: build the new content in a temp file (local chunks first, then
//! fetched ones, each verified), check the target is still what the index says, archive the old
//! content, rename into place, fsync the directory.

use super::pull::Batch;
use crate::events::ChangeKind;
use crate::fetch::{self, Assembled, Chunk, FetchError, Origin, Source};
use crate::records;
use crate::swarm::{self, Download};
use ferry_engine::pull::{self, Applied, LocalFate};

/// Where a pull gets the chunks its temp file does not hold: a copy from a file of the share
/// when the chunk plan names one, else the connected devices that said they hold the chunk in
/// a download of the same content in progress, then those whose index has this version, each
/// tried in turn (starting at a different one per chunk and per device, to spread the load:
/// see [`swarm::candidates`]).
struct PullSource<'a> {
    root: &'a Path,
    share: ShareId,
    path: &'a RelPath,
    /// The whole-file hash of the content being built.
    content: ChunkHash,
    plan: &'a [ChunkSource],
    /// Holders: connected devices whose index has this version.
    peers: &'a [Arc<PeerLink>],
    /// The share's other connected members (who may be downloading it too).
    members: &'a [Arc<PeerLink>],
    /// This device's own spread (see [`swarm::salt_of`]).
    salt: usize,
}

impl Source for PullSource<'_> {
    async fn local(&self, index: usize, c: Chunk) -> Option<Vec<u8>> {
        let ChunkSource::Local { path, offset } = self.plan.get(index)?.clone() else { return None };
        let root = self.root.to_path_buf();
        blocking(move || ferry_fs::read_range(&root, &path, offset, c.len)).await.ok()
    }

    async fn remote(&self, index: usize, c: Chunk, attempt: usize) -> Option<Result<Vec<u8>, FetchError>> {
        let announced: Vec<DeviceId> = self
            .members
            .iter()
            .filter(|p| p.heard.covers(self.share, self.path, self.content, index))
            .map(|p| p.id)
            .collect();
        if self.peers.is_empty() && announced.is_empty() {
            let why = "a local chunk changed and no device is connected to fetch it";
            return (attempt == 0).then(|| Err(FetchError::Unavailable(why.into())));
        }
        let holders: Vec<DeviceId> = self.peers.iter().map(|p| p.id).collect();
        // Recomputed per attempt (announcements change meanwhile); `attempt` grows and the list
        // is at most every member twice, so the tries end.
        let id = *swarm::candidates(index, self.salt, &announced, &holders).get(attempt)?;
        let peer = self.members.iter().chain(self.peers).find(|p| p.id == id)?;
        Some(peer.fetch_block(self.share, self.path, c.offset, c.len, c.hash).await.map_err(FetchError::Unavailable))
    }
}
use super::*;

/// One wanted record to write, as the engine planned it ([`pull::Step::Write`]).
pub(super) struct Write<'a> {
    /// The remote record whose content the disk must match.
    pub target: &'a FileRecord,
    /// What to commit: the target, under a version of ours when the two were concurrent
    /// ([`pull::record_for`]).
    pub record: FileRecord,
    /// What becomes of our content at the path.
    pub fate: LocalFate,
    pub applied: Applied,
}

/// The summary's kind of an applied change.
pub(super) fn change_kind(a: Applied) -> ChangeKind {
    match a {
        Applied::Added => ChangeKind::Added,
        Applied::Changed => ChangeKind::Changed,
        Applied::Deleted => ChangeKind::Deleted,
    }
}

impl Worker {
    pub(super) fn version_record(
        &self,
        l: &LocalEntry,
        target: &FileRecord,
        archive_path: String,
        reason: VersionReason,
    ) -> VersionRecord {
        // One way to mint version ids everywhere (the archive time in ns, strictly increasing).
        let id = crate::history::next_version_id();
        VersionRecord {
            share: self.id,
            path: l.record.path.clone(),
            id,
            archived_at_ms: (id / 1_000_000) as i64,
            size: l.record.size,
            hash: l.record.hash,
            mtime_ns: l.record.mtime_ns,
            modified_by: l.record.modified_by,
            replaced_by: target.modified_by,
            archive_path,
            reason,
        }
    }

    /// Makes the disk match `w.target` and records `w.record`, dealing with our content at the
    /// path as the engine said (`w.fate`: conflict copy, version, removal, nothing).
    pub(super) async fn apply(
        &self,
        w: Write<'_>,
        local: Option<&LocalEntry>,
        sources: &[Arc<PeerLink>],
        local_chunks: &HashMap<ChunkHash, (RelPath, u64)>,
        batch: &mut Batch,
    ) -> Result<(), ShareError> {
        let Write { target, record, fate, applied } = w;
        let root = self.root.clone();
        let path = target.path.clone();
        // What the index says is at the target now (None: nothing, or a tombstone).
        let expected: Option<Known> = local.filter(|l| !l.record.deleted).map(known_of);
        let (r, p) = (root.clone(), path.clone());
        let on_disk_ok = blocking(move || ferry_fs::unchanged_on_disk(&r, &p, expected.as_ref())).await?;
        if !on_disk_ok {
            return Err(self.rescan_first(&path));
        }
        // Build the new content first, so a failed transfer leaves the disk untouched.
        let temp = if target.is_file() {
            let (t, got) = self.fetch_to_temp(target, sources, local_chunks).await?;
            let t = self.check_whole(target, t, got)?;
            crate::crash::point("apply.fetched");
            Some(t)
        } else {
            None
        };
        let copy = self.set_aside(fate, target, local, batch).await?;
        crate::crash::point("apply.archived");

        let (r, p, t) = (root.clone(), path.clone(), target.clone());
        let meta = blocking(move || {
            if !t.deleted {
                match &t.kind {
                    FileKind::File => {
                        ferry_fs::commit_temp(temp.expect("file has temp"), &r, &p, t.mtime_ns, t.executable)?;
                        crate::crash::point("apply.renamed");
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
            entry: LocalEntry { record, meta: LocalMeta { inode, local_change: false } },
            new_seq: true,
        });
        let kind = change_kind(applied);
        batch.applied(Event::applied(&self.id, &path, kind, &target.modified_by), kind);
        if let Some(c) = copy {
            tracing::info!(share = %self.id, %path, copy = %c, "conflict: kept our version as a copy");
            batch.conflicts += 1;
            batch.events.push(Event::Conflict {
                share: self.id.to_string(),
                path: path.to_string(),
                copy: c.to_string(),
                winner: target.modified_by.to_string(),
            });
            self.pending.lock().unwrap().scan_paths([c]);
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Deals with our content at `target`'s path before the new content takes its place, as
    /// `fate` says; returns the conflict copy's name when one was made. A version goes into the
    /// batch (committed with the record, after the disk).
    async fn set_aside(
        &self,
        fate: LocalFate,
        target: &FileRecord,
        local: Option<&LocalEntry>,
        batch: &mut Batch,
    ) -> Result<Option<RelPath>, ShareError> {
        let (root, path) = (self.root.clone(), target.path.clone());
        let mut fate = fate;
        if fate == LocalFate::ConflictCopy {
            let l = local.expect("a conflict copy implies a local file");
            let c = conflict_name(&path, time_of(l.record.mtime_ns), &l.record.modified_by);
            let (r, p, c2) = (root.clone(), path.clone(), c.clone());
            let made = blocking(move || match rename_within(&r, &p, &c2) {
                Ok(()) => Ok(true),
                Err(ferry_fs::FsError::Exists(_)) => Ok(false),
                Err(e) => Err(e),
            })
            .await?;
            if made {
                return Ok(Some(c));
            }
            // The copy's name is taken (most often: the same copy, made by another device that
            // lost the same conflict, reached us first). Renaming onto it would overwrite it, so
            // our content is kept as a version instead; the conflict still counts.
            tracing::info!(share = %self.id, %path, copy = %c, "conflict copy name taken: kept our version in the history");
            batch.conflicts += 1;
            fate = pull::copy_name_taken(fate);
        }
        match fate {
            LocalFate::Untouched | LocalFate::ConflictCopy => {}
            LocalFate::Archive(reason) => {
                let l = local.expect("a version implies a local file");
                let mode = if target.is_file() { ArchiveMode::Link } else { ArchiveMode::Move };
                let ap = blocking(move || archive(&root, &path, time::OffsetDateTime::now_utc(), mode)).await?;
                batch.versions.push(self.version_record(l, target, ap, records::version_reason(reason)));
            }
            // A directory or link that goes away or changes kind.
            LocalFate::RemoveEntry => blocking(move || ferry_fs::remove_entry(&root, &path)).await?,
        }
        Ok(None)
    }

    /// Every chunk of `temp` was verified; this checks the record itself: a peer announcing a
    /// whole-file hash its chunks do not produce would poison content comparisons. `got` is the
    /// hash and length of the temp's content, computed while it was written (see
    /// [`assemble`]).
    pub(super) fn check_whole(
        &self,
        target: &FileRecord,
        temp: ferry_fs::TempFile,
        got: Assembled,
    ) -> Result<ferry_fs::TempFile, ShareError> {
        if got.hash != target.hash || got.size != target.size {
            // Dropping the temp removes it.
            return Err(ShareError::WholeHashMismatch { sender: target.modified_by });
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
    pub(super) async fn fetch_to_temp(
        &self,
        target: &FileRecord,
        sources: &[Arc<PeerLink>],
        local_chunks: &HashMap<ChunkHash, (RelPath, u64)>,
    ) -> Result<(ferry_fs::TempFile, Assembled), ShareError> {
        if crate::fault::failing("apply.temp") {
            // Tests: the disk refuses the temp file, as a full disk would.
            return Err(ShareError::Io(std::io::Error::from(std::io::ErrorKind::StorageFull)));
        }
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
        let file = Arc::new(temp.file.try_clone()?);
        let plan = plan_chunks(target, local_chunks);
        if plan.contains(&ChunkSource::Remote) && sources.is_empty() {
            self.keep_partial(target, temp, resumed);
            return Err(ShareError::NoSource);
        }
        let chunks: Vec<Chunk> =
            target.chunk_offsets().map(|(offset, c)| Chunk { offset, len: c.len, hash: c.hash }).collect();
        let members = progress::connected_members(&self.inner, self.id, &[]);
        let (written_tx, written) = tokio::sync::watch::channel(0);
        let start = self.start_for(target, chunks.len(), sources, &members);
        let (offsets, infos) = target.chunk_offsets().unzip();
        let download = Download { content: target.hash, file: file.clone(), chunks: infos, offsets, start, written };
        // Registered (served to the share's members) and announced while it runs; both end
        // when these guards drop, before the temp may be renamed into place.
        let registered = self.downloads.register(target.path.clone(), download);
        let announcer = (chunks.len() > 1).then(|| {
            let holders = sources.iter().map(|p| p.id).collect();
            progress::start(&self.inner, self.id, target.path.clone(), registered.download().clone(), holders)
        });
        let source = PullSource {
            root: &self.root,
            share: self.id,
            path: &target.path,
            content: target.hash,
            plan: &plan,
            peers: sources,
            members: &members,
            salt: swarm::salt_of(&self.inner.id),
        };
        let (total, started) = (target.size, Instant::now());
        let (mut last_progress, mut done) = (Instant::now(), 0u64);
        let how = fetch::Fill { resume: resumed, parallel: PARALLEL_BLOCKS, start };
        let (filled, result) = fetch::fill(file, &chunks, how, written_tx, &source, |n, origin| {
            done += n;
            {
                let mut rt = self.runtime.lock().unwrap();
                match origin {
                    Origin::Remote => rt.fetched_bytes += n,
                    Origin::Local | Origin::Kept | Origin::Repeat | Origin::Zero => rt.reused_bytes += n,
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
        })
        .await;
        drop(announcer);
        drop(registered);
        match result {
            Ok(assembled) => Ok((temp, assembled)),
            Err(e @ FetchError::Disk(_)) => {
                let _ = std::fs::remove_file(&temp.path);
                Err(e.into())
            }
            Err(e) => {
                self.keep_partial(target, temp, resumed || filled.total() > 0);
                Err(e.into())
            }
        }
    }

    /// The chunk to start fetching `target`'s `n` chunks at ([`swarm::start_for`]), from what
    /// the connected `members` announced of it and which members may be fetching it too (those
    /// that are not among the holders, `sources`).
    fn start_for(&self, target: &FileRecord, n: usize, sources: &[Arc<PeerLink>], members: &[Arc<PeerLink>]) -> usize {
        let heard: Vec<swarm::Ranges> =
            members.iter().filter_map(|p| p.heard.ranges(self.id, &target.path, target.hash)).collect();
        let all = self.inner.shares.lock().unwrap().get(&self.id).map(|h| h.members.lock().unwrap().clone());
        let mut fetching = all.unwrap_or_default();
        fetching.retain(|d| !sources.iter().any(|p| p.id == *d));
        swarm::start_for(n, self.inner.id, &fetching, &heard)
    }

    /// Keeps an unfinished temp file for the next attempt at the same version (when it holds
    /// anything worth keeping), or removes it.
    pub(super) fn keep_partial(&self, target: &FileRecord, mut temp: ferry_fs::TempFile, worth_keeping: bool) {
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
