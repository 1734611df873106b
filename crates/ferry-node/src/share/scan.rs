//! The actor's scan: what changed on disk becomes local records (new versions, tombstones),
//! committed with the versions of the content it replaced, in one transaction.

use super::*;
use crate::records;
use ferry_engine::scan::{self, Seen};

impl Worker {
    /// Scans, then commits what changed as local changes in one transaction.
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
        let (outcome, changes, max_seq, counts) = tokio::task::spawn_blocking(move || -> Result<_, ShareError> {
            let ignore = Ignore::load(&root)?;
            // Every lookup of the scan reads one snapshot of the index, entry by entry: a full
            // scan of a large share asks about every path, and loading the whole index into a
            // map first cost its size in memory (and its decoding time) even when nothing changed.
            let reader = store.local_reader(&id)?;
            let lookup = |p: &RelPath| -> Option<LocalEntry> { reader.get(p).ok().flatten() };
            // A re-hash scan claims to know nothing, so every file is read and hashed; the
            // unchanged ones come back as metadata-only updates below.
            let rehash = rehash && matches!(scope, Scope::Full);
            let known = |p: &RelPath| if rehash { None } else { lookup(p).map(|e| known_of(&e)) };
            let known_paths = |p: Option<&RelPath>| known_paths(&store, &id, p);
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
            let mut outcome = scan_reusing(&root, &known, &known_paths, &scope, &ignore, &reuse)?;
            // What the changes mean for the index is the engine's call; they are moved, not
            // copied (only their number is reported below).
            let seen: Vec<Seen> = std::mem::take(&mut outcome.changes).into_iter().map(records::seen).collect();
            let changes = seen.len();
            let entry_at = |p: &RelPath| lookup(p).map(records::into_entry);
            let mut updates = scan::updates(&seen, &entry_at, rec.mode, me);
            // A stopped pull's unfinished writes are no edits of ours (see `intents.rs`).
            for u in updates.iter_mut().filter(|u| !u.entry.record.deleted && unfinished.contains(&u.entry.record.path))
            {
                let existing = entry_at(&u.entry.record.path);
                *u = scan::unfinished_apply(u.clone(), existing.as_ref());
            }
            // Versions of the local content this scan saw replaced or deleted (archived before
            // the index commit, like every version).
            let (versions, counts) = crate::history::on_scan(&root, id, me, &updates, &entry_at);
            // A folder that went away while it was walked looks emptied: nothing of it is
            // committed (it would go out as deletions), and the actor stops the share.
            if let Some(why) = super::folder_missing(&root) {
                return Err(ShareError::FolderMissing(why));
            }
            let max_seq = if updates.is_empty() {
                None
            } else {
                let updates: Vec<LocalUpdate> = updates.into_iter().map(records::local_update).collect();
                let seq = store.commit_local(&id, &updates, &versions)?.0;
                crate::crash::point("scan.committed");
                Some(seq)
            };
            Ok((outcome, changes, max_seq, counts))
        })
        .await??;
        if let Some(s) = max_seq {
            self.seq.send_replace(s);
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

/// The live indexed paths the scanner may report deleted: the whole share (`None`), or what
/// lies under `p` (not `p` itself).
fn known_paths(store: &ferry_store::Store, id: &ShareId, p: Option<&RelPath>) -> Vec<RelPath> {
    match p {
        None => {
            let mut paths = Vec::new();
            let walked = store.for_each_local(id, |e| {
                if !e.record.deleted {
                    paths.push(e.record.path);
                }
                Ok(true)
            });
            // Without the list nothing is reported deleted (never a false delete).
            if walked.is_err() { Vec::new() } else { paths }
        }
        Some(p) => store
            .local_files_under(id, p)
            .map(|v| {
                v.into_iter().filter(|e| !e.record.deleted && e.record.path != *p).map(|e| e.record.path).collect()
            })
            .unwrap_or_default(),
    }
}
