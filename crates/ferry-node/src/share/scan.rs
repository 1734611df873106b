//! The actor's scan: what changed on disk becomes local records (new versions, tombstones),
//! committed with the versions of the content it replaced, in transactions of at most
//! [`SCAN_BATCH`] changes while the walk goes on (the deletes, decided at the end, last).

use super::*;
use crate::records;
use crate::summary::LocalCounts;
use ferry_engine::scan::{self, Seen};
use ferry_fs::scan_streaming;

impl Worker {
    /// Scans, committing what changed as local changes batch by batch.
    pub(super) async fn scan(&self, scope: Scope, rehash: bool) -> Result<(), ShareError> {
        let started = Instant::now();
        let rec = self.record().await?;
        let label = rec.label.clone();
        let me = self.inner.id;
        let store = self.inner.store.clone();
        let id = self.id;
        let root = self.root.clone();
        let scopes = match &scope {
            Scope::Full => None,
            Scope::Paths(ps) => Some(ps.clone()),
        };
        let full = matches!(scope, Scope::Full);
        let unfinished = self.unfinished.lock().unwrap().clone();
        let had_unfinished = !unfinished.is_empty();
        let seq = self.seq.clone();
        let (outcome, changes, max_seq, counts) = tokio::task::spawn_blocking(move || -> Result<_, ShareError> {
            let ignore = Ignore::load(&root)?;
            // Every lookup of the scan reads one snapshot of the index, entry by entry: a full
            // scan of a large share asks about every path, and loading the whole index into a
            // map first cost its size in memory (and its decoding time) even when nothing changed.
            // The snapshot also keeps the scan's view still while its batches are committed.
            let reader = store.local_reader(&id)?;
            let lookup = |p: &RelPath| -> Option<LocalEntry> { reader.get(p).ok().flatten() };
            // A re-hash scan claims to know nothing, so every file is read and hashed; the
            // unchanged ones come back as metadata-only updates below.
            let rehash = rehash && matches!(scope, Scope::Full);
            // The lean read: only the stat facts, not the whole entry (a restart asks this of
            // every path of the share).
            let known = |p: &RelPath| {
                if rehash {
                    return None;
                }
                let s = reader.stat(p).ok().flatten()?;
                Some(Known {
                    kind: s.kind,
                    deleted: s.deleted,
                    size: s.size,
                    mtime_ns: s.mtime_ns,
                    inode: s.inode,
                    executable: s.executable,
                })
            };
            // A read error ends the list early: fewer paths are reported deleted (each one that
            // is was looked for on disk), never a false delete.
            let known_paths = |p: Option<&RelPath>, f: &mut dyn FnMut(RelPath) -> bool| {
                if let Err(e) = reader.for_each_live_path(p, f) {
                    tracing::warn!(share = %id, "listing the indexed paths: {e}");
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
            let batches = Batches {
                store: &store,
                id,
                root: &root,
                me,
                mode: rec.mode,
                unfinished: &unfinished,
                lookup: &lookup,
            };
            let mut done = Committed::default();
            let mut failed = None;
            let mut sink = |changes: Vec<ferry_fs::Change>| match batches.commit(changes) {
                Ok(c) => {
                    if let Some(s) = c.max_seq {
                        seq.send_replace(s);
                    }
                    done.add(c);
                    true
                }
                Err(e) => {
                    failed = Some(e);
                    false
                }
            };
            let mut outcome =
                scan_streaming(&root, &known, &known_paths, &scope, &ignore, &reuse, SCAN_BATCH, &mut sink)?;
            if let Some(e) = failed {
                return Err(e);
            }
            // A folder that went away while it was walked looks emptied: nothing more of it is
            // committed (the rest holds the deletes, which would go out as deletions), and the
            // actor stops the share. What was committed already are files that were there.
            if let Some(why) = super::folder_missing(&root) {
                return Err(ShareError::FolderMissing(why));
            }
            done.add(batches.commit(std::mem::take(&mut outcome.changes))?);
            Ok((outcome, done.changes, done.max_seq, done.counts))
        })
        .await??;
        if let Some(s) = max_seq {
            self.seq.send_replace(s);
        }
        if full {
            self.remove_stale_temps(outcome.temps).await;
        }
        if had_unfinished && full {
            // Recorded (committed above): the stopped pass's intents have served.
            self.unfinished.lock().unwrap().clear();
            self.clear_intents().await?;
        }
        self.inner.summaries.local(self.id, counts);
        self.record_skipped(&label, scopes.as_deref(), outcome.skipped);
        tracing::debug!(share = %self.id, changes, seen = outcome.seen,
            millis = started.elapsed().as_millis() as u64, "scan finished");
        self.inner.emit(Event::ScanFinished {
            share: self.id.to_string(),
            changes,
            seen: outcome.seen,
            hashed_bytes: outcome.hashed_bytes,
            millis: started.elapsed().as_millis() as u64,
        });
        Ok(())
    }
}

impl Worker {
    /// After the actor's first full scan: removes the temp files it listed that were modified
    /// before the actor started. Later scans leave temps alone (they are this run's writes).
    async fn remove_stale_temps(&self, temps: Vec<PathBuf>) {
        let Some(before) = *self.stale_temps.lock().unwrap() else { return };
        match tokio::task::spawn_blocking(move || ferry_fs::remove_stale_temps(&temps, before)).await {
            Ok(Ok(n)) => {
                if n > 0 {
                    tracing::info!(share = %self.id, "removed {n} stale temp files");
                }
                *self.stale_temps.lock().unwrap() = None;
            }
            // Tried again after the next full scan.
            Ok(Err(e)) => tracing::warn!(share = %self.id, "stale temp cleanup: {e}"),
            Err(e) => tracing::warn!(share = %self.id, "stale temp cleanup: {e}"),
        }
    }

    /// What the scan left out is an item that cannot be synced, not an error repeated at every
    /// scan; only a file that changed while it was read is not (it is read again). `scopes`:
    /// the paths scanned, or None for a full scan.
    fn record_skipped(&self, label: &str, scopes: Option<&[RelPath]>, skipped: Vec<ferry_fs::Skipped>) {
        let mut found = Vec::new();
        for s in skipped {
            match crate::failed::of_skip(&s.reason) {
                Some(reason) => found.push((s.path, reason)),
                None => {
                    tracing::debug!(share = %self.id, path = %s.path, "changed while read; read again at its next scan")
                }
            }
        }
        self.update_failed(label, |f| match scopes {
            None => f.after_full_scan(found),
            Some(scopes) => f.after_path_scan(scopes, found),
        });
    }
}

/// Changes committed per transaction while a scan walks. A first scan of a large share commits
/// as it goes instead of holding every new file's record until the end (a million new files
/// held over 1 GiB), and peers hear of the first files before the walk ends. Large enough that
/// a transaction's fixed cost (its fsync) is rare: 10,000 records are a few MiB.
const SCAN_BATCH: usize = 10_000;

/// What a scan's commits did, added up over its batches.
#[derive(Default)]
struct Committed {
    changes: usize,
    max_seq: Option<u64>,
    counts: LocalCounts,
}

impl Committed {
    fn add(&mut self, c: Committed) {
        self.changes += c.changes;
        self.max_seq = self.max_seq.max(c.max_seq);
        self.counts.add(c.counts);
    }
}

/// Turns a batch of a scan's changes into local records and commits them with the versions of
/// the content they replace, in one transaction.
struct Batches<'a> {
    store: &'a ferry_store::Store,
    id: ShareId,
    root: &'a Path,
    me: DeviceId,
    mode: ferry_proto::ShareMode,
    unfinished: &'a std::collections::HashSet<RelPath>,
    /// The index as it was when the scan began (batches never repeat a path).
    lookup: &'a dyn Fn(&RelPath) -> Option<LocalEntry>,
}

impl Batches<'_> {
    fn commit(&self, changes: Vec<ferry_fs::Change>) -> Result<Committed, ShareError> {
        // What the changes mean for the index is the engine's call; they are moved, not
        // copied (only their number is reported).
        let seen: Vec<Seen> = changes.into_iter().map(records::seen).collect();
        let n = seen.len();
        let entry_at = |p: &RelPath| (self.lookup)(p).map(records::into_entry);
        let mut updates = scan::updates(&seen, &entry_at, self.mode, self.me);
        drop(seen);
        // A stopped pull's unfinished writes are no edits of ours (see `intents.rs`).
        for u in
            updates.iter_mut().filter(|u| !u.entry.record.deleted && self.unfinished.contains(&u.entry.record.path))
        {
            let existing = entry_at(&u.entry.record.path);
            *u = scan::unfinished_apply(u.clone(), existing.as_ref());
        }
        // Versions of the local content this scan saw replaced or deleted (archived before
        // the index commit, like every version).
        let (versions, counts) = crate::history::on_scan(self.root, self.id, self.me, &updates, &entry_at);
        let max_seq = if updates.is_empty() {
            None
        } else {
            let updates: Vec<LocalUpdate> = updates.into_iter().map(records::local_update).collect();
            let seq = self.store.commit_local(&self.id, &updates, &versions)?.0;
            crate::crash::point("scan.committed");
            Some(seq)
        };
        Ok(Committed { changes: n, max_seq, counts })
    }
}
