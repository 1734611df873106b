//! This device's index of each share: entries keyed by path, the seq index that hands them to
//! peers in seq order ([`Store::local_since`]), and [`Store::commit_local`], the one write path
//! that assigns seqs and keeps the seq index consistent with the entries.

use std::ops::Bound;

use ferry_proto::{FileRecord, RelPath, Seq, ShareId};
use redb::{ReadableDatabase, ReadableTable};

use crate::lean::{HeadView, LocalStat, StatView};
use crate::schema::{self, LOCAL, LOCAL_SEQ, SHARE_STATE, VERSIONS, encode, get, prefix_bounds, scan};
use crate::{LocalEntry, LocalUpdate, ShareState, Store, StoreError, VersionRecord};

impl Store {
    pub fn local_file(&self, share: &ShareId, path: &RelPath) -> Result<Option<LocalEntry>, StoreError> {
        self.read(|txn| get(&txn.open_table(LOCAL)?, &schema::local_key(share, path), "local entry"))
    }

    /// Point lookups in the share's local index, all in one read transaction: a consistent
    /// view without setting up a transaction per lookup, for a scan that asks about every path
    /// of a large share without loading the whole index first.
    pub fn local_reader(&self, share: &ShareId) -> Result<LocalReader, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(LocalReader { table: txn.open_table(LOCAL)?, share: *share })
    }

    /// The local entries at `paths` (None where there is none), in order, in one read.
    pub fn local_files_at(&self, share: &ShareId, paths: &[RelPath]) -> Result<Vec<Option<LocalEntry>>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(LOCAL)?;
            paths.iter().map(|p| get(&table, &schema::local_key(share, p), "local entry")).collect()
        })
    }

    /// Every entry of the share's local index, sorted by path.
    pub fn local_files(&self, share: &ShareId) -> Result<Vec<LocalEntry>, StoreError> {
        self.read(|txn| scan(&txn.open_table(LOCAL)?, &prefix_bounds(&share.0), "local entry"))
    }

    /// Calls `f` with every entry of the share's local index, in path order, in one read
    /// transaction, decoding one entry at a time: a pass over a large index without holding
    /// all of it. `f` returns false to stop early.
    pub fn for_each_local(
        &self,
        share: &ShareId,
        mut f: impl FnMut(LocalEntry) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        self.read(|txn| {
            let table = txn.open_table(LOCAL)?;
            for item in table.range::<&[u8]>(schema::as_slices(&prefix_bounds(&share.0)))? {
                let (_, v) = item?;
                if !f(schema::decode("local entry", v.value())?)? {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Like [`Store::for_each_local`] for the entries whose seq is at most `upto` (those not
    /// written since the index stood at `upto`), in seq order: the cost follows them, not the
    /// share.
    pub fn for_each_local_upto(
        &self,
        share: &ShareId,
        upto: Seq,
        mut f: impl FnMut(LocalEntry) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let bounds = (Bound::Included(schema::seq_key(share, 0)), Bound::Included(schema::seq_key(share, upto.0)));
        self.read(|txn| {
            let seqs = txn.open_table(LOCAL_SEQ)?;
            let local = txn.open_table(LOCAL)?;
            for item in seqs.range::<&[u8]>(schema::as_slices(&bounds))? {
                let (_, path) = item?;
                let mut key = share.0.to_vec();
                key.extend_from_slice(path.value());
                let entry: LocalEntry = get(&local, &key, "local entry")?
                    .ok_or_else(|| StoreError::Corrupt(format!("a seq of share {share} points to a missing entry")))?;
                if !f(entry)? {
                    break;
                }
            }
            Ok(())
        })
    }

    /// `prefix` itself and everything below it (path == prefix or starts with prefix + "/"),
    /// sorted by path.
    pub fn local_files_under(&self, share: &ShareId, prefix: &RelPath) -> Result<Vec<LocalEntry>, StoreError> {
        let exact = schema::local_key(share, prefix);
        let mut below = exact.clone();
        below.push(b'/');
        self.read(|txn| {
            let table = txn.open_table(LOCAL)?;
            // `exact` is a prefix of every key below it, so it sorts first: the result stays sorted.
            let mut out: Vec<LocalEntry> = get(&table, &exact, "local entry")?.into_iter().collect();
            out.extend(scan::<LocalEntry>(&table, &prefix_bounds(&below), "local entry")?);
            Ok(out)
        })
    }

    /// Up to `limit` records with seq > `after`, in seq order, skipping entries whose
    /// `meta.local_change` is true.
    pub fn local_since(&self, share: &ShareId, after: Seq, limit: usize) -> Result<Vec<FileRecord>, StoreError> {
        let lower = schema::seq_key(share, after.0);
        let (_, upper) = prefix_bounds(&share.0);
        self.read(|txn| {
            let seqs = txn.open_table(LOCAL_SEQ)?;
            let local = txn.open_table(LOCAL)?;
            let mut out = Vec::new();
            let bounds = (Bound::Excluded(lower), upper);
            for item in seqs.range::<&[u8]>(schema::as_slices(&bounds))? {
                if out.len() >= limit {
                    break;
                }
                let (k, path) = item?;
                let seq = schema::seq_of_key(k.value())?;
                let mut key = share.0.to_vec();
                key.extend_from_slice(path.value());
                let entry: LocalEntry = get(&local, &key, "local entry")?.ok_or_else(|| {
                    StoreError::Corrupt(format!("seq {seq} of share {share} points to a missing entry"))
                })?;
                if entry.record.seq.0 != seq {
                    return Err(StoreError::Corrupt(format!(
                        "seq {seq} of share {share} points to {} which has seq {}",
                        entry.record.path, entry.record.seq.0
                    )));
                }
                if !entry.meta.local_change {
                    out.push(entry.record);
                }
            }
            Ok(out)
        })
    }

    /// One write transaction: for each update, if `update.new_seq` is true the record gets
    /// seq = ++state.max_seq, otherwise its seq is kept as given (metadata-only refresh, e.g. a
    /// new inode). The path's old seq-index key is replaced by the one of its new seq (entries
    /// with seq 0 are not indexed); the entry is upserted; the version records are inserted.
    /// Returns the share's max_seq after the commit.
    ///
    /// Errors (and nothing is written) if the share has no state, a version record belongs to
    /// another share, or a kept seq is already the seq of another path.
    pub fn commit_local(
        &self,
        share: &ShareId,
        updates: &[LocalUpdate],
        versions: &[VersionRecord],
    ) -> Result<Seq, StoreError> {
        if let Some(v) = versions.iter().find(|v| v.share != *share) {
            return Err(StoreError::Invalid(format!("version of {} is for share {}, not {share}", v.path, v.share)));
        }
        self.write_index(|txn| {
            let mut states = txn.open_table(SHARE_STATE)?;
            let mut state: ShareState = get(&states, &share.0, "share state")?
                .ok_or_else(|| StoreError::NotFound(format!("state of share {share}")))?;
            let mut local = txn.open_table(LOCAL)?;
            let mut seqs = txn.open_table(LOCAL_SEQ)?;
            for update in updates {
                let mut entry = update.entry.clone();
                let path = entry.record.path.clone();
                let key = schema::local_key(share, &path);
                let old: Option<LocalEntry> = get(&local, &key, "local entry")?;
                if update.new_seq {
                    state.max_seq += 1;
                    entry.record.seq = Seq(state.max_seq);
                } else {
                    state.max_seq = state.max_seq.max(entry.record.seq.0);
                }
                let new_seq = entry.record.seq.0;
                let old_seq = old.map_or(0, |o| o.record.seq.0);
                if old_seq != new_seq {
                    if old_seq != 0 {
                        let old_key = schema::seq_key(share, old_seq);
                        // Remove the old index key only if it is this path's.
                        let ours = seqs.get(old_key.as_slice())?.is_some_and(|p| p.value() == path.as_str().as_bytes());
                        if ours {
                            seqs.remove(old_key.as_slice())?;
                        }
                    }
                    if new_seq != 0 {
                        let prev = seqs
                            .insert(schema::seq_key(share, new_seq).as_slice(), path.as_str().as_bytes())?
                            .map(|p| p.value().to_vec());
                        if let Some(prev) = prev.filter(|p| p != path.as_str().as_bytes()) {
                            return Err(StoreError::Invalid(format!(
                                "seq {new_seq} given for {path} already belongs to {}",
                                String::from_utf8_lossy(&prev)
                            )));
                        }
                    }
                }
                local.insert(key.as_slice(), encode("local entry", &entry)?.as_slice())?;
            }
            states.insert(share.0.as_slice(), encode("share state", &state)?.as_slice())?;
            let mut table = txn.open_table(VERSIONS)?;
            for v in versions {
                table.insert(schema::version_key(share, &v.path, v.id).as_slice(), encode("version", v)?.as_slice())?;
            }
            Ok(Seq(state.max_seq))
        })
    }
}

/// See [`Store::local_reader`]. It sees the index as it was when made (later commits are not
/// visible through it).
pub struct LocalReader {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    share: ShareId,
}

impl LocalReader {
    pub fn get(&self, path: &RelPath) -> Result<Option<LocalEntry>, StoreError> {
        get(&self.table, &schema::local_key(&self.share, path), "local entry")
    }

    /// Hands `f` the live (not deleted) paths of this snapshot in path order, until it returns
    /// false: every one of the share's (`below` None), or those strictly below `below`.
    /// Streamed: a million paths are never held at once.
    pub fn for_each_live_path(
        &self,
        below: Option<&RelPath>,
        mut f: impl FnMut(RelPath) -> bool,
    ) -> Result<(), StoreError> {
        let prefix = match below {
            None => self.share.0.to_vec(),
            Some(p) => {
                let mut k = schema::local_key(&self.share, p);
                k.push(b'/');
                k
            }
        };
        for item in self.table.range::<&[u8]>(schema::as_slices(&prefix_bounds(&prefix)))? {
            let (_, v) = item?;
            // Only the path and the tombstone flag: a full decode per path is what made this
            // walk cost as much as the scan's lookups.
            let e: HeadView = schema::decode_view("local entry", v.value())?;
            if !e.deleted && !f(e.path) {
                break;
            }
        }
        Ok(())
    }

    /// The stat facts of `path`'s entry (see [`LocalStat`]): what a scan compares with the
    /// disk, read without decoding the rest of the entry.
    pub fn stat(&self, path: &RelPath) -> Result<Option<LocalStat>, StoreError> {
        match self.table.get(schema::local_key(&self.share, path).as_slice())? {
            Some(v) => Ok(Some(schema::decode_view::<StatView>("local entry", v.value())?.into())),
            None => Ok(None),
        }
    }
}
