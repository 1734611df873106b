//! Ferry's persistent state, in one redb database.
//!
//! This crate owns the redb schema: every table, key layout and value encoding lives in the
//! [`schema`] module, and nothing outside this crate touches redb. The database records a
//! `schema_version` in its `meta` table; [`Store::open`] migrates older databases and refuses
//! newer ones ([`StoreError::TooNew`]).
//!
//! The API is blocking (call it from `spawn_blocking` in async code). [`Store`] is `Send +
//! Sync` and every method takes `&self`, so one store is shared behind an `Arc`.
//!
//! One logical change is one write transaction: a batch of local index updates with their
//! archived versions, an index update from a peer, the removal of a share with everything it
//! owns. Either all of it is on disk or none of it is.
//!
//! Values are postcard-encoded inside a versioned wrapper ([`schema::Versioned`]), so a future
//! schema can change a record type and still read (or migrate) what older versions wrote. A
//! value this build cannot decode is an error ([`StoreError::Decode`]), never a panic.

mod error;
mod records;
pub mod schema;

use std::hash::{BuildHasher, Hasher};
use std::ops::Bound;
use std::path::Path;

use ferry_proto::{DeviceId, FileRecord, NoteId, RelPath, Seq, ShareId, TransferId};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};

pub use error::StoreError;
pub use records::{
    DeviceRecord, LocalEntry, LocalMeta, LocalUpdate, NoteRecord, NoteState, PromptKind, PromptRecord, RemoteState,
    ShareRecord, ShareSettings, ShareState, TransferRecord, TransferState, VersionReason, VersionRecord,
};
use schema::{AUTO_ACCEPT, TRANSFERS};
use schema::{
    DEVICES, LOCAL, LOCAL_SEQ, META, META_NEXT_NOTE_ORDER, META_NEXT_PROMPT_ID, META_SCHEMA_VERSION, MUTED, NOTE_ORDER,
    NOTES, PROMPTS, REMOTE, REMOTE_STATE, SHARE_SETTINGS, SHARE_STATE, SHARES, VERSIONS, encode, get, prefix_bounds,
    scan,
};

/// redb's page cache. Its default (1 GiB) let a 100,000-file share grow a daemon to gigabytes
/// of RSS; the hot set (recent index pages, share and device rows) is far smaller, and the OS
/// page cache still holds the file.
const CACHE_BYTES: usize = 32 << 20;

/// Ferry's database. See the crate documentation.
pub struct Store {
    db: Database,
    /// Bumped after every committed write transaction (see [`Store::generation`]).
    generation: std::sync::atomic::AtomicU64,
    /// Bumped after every committed write to a local or remote index (see
    /// [`Store::index_generation`]).
    index_generation: std::sync::atomic::AtomicU64,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, migrating it to the current schema.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::builder().set_cache_size(CACHE_BYTES).create(path)?;
        let store = Store { db, generation: Default::default(), index_generation: Default::default() };
        store.write(schema::migrate)?;
        Ok(store)
    }

    fn read<R>(&self, f: impl FnOnce(&ReadTransaction) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let txn = self.db.begin_read()?;
        f(&txn)
    }

    /// Runs `f` in one write transaction, committed only if `f` succeeds (dropping it aborts).
    fn write<R>(&self, f: impl FnOnce(&WriteTransaction) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let txn = self.db.begin_write()?;
        let out = f(&txn)?;
        txn.commit()?;
        self.generation.fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(out)
    }

    /// Runs `f` in one write transaction (like `write`) that changes a local or remote index.
    fn write_index<R>(&self, f: impl FnOnce(&WriteTransaction) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let out = self.write(f)?;
        self.index_generation.fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(out)
    }

    /// Like [`Store::generation`], but changed only by writes to the file indexes (local or
    /// remote): what was computed from the indexes while it read `g` is current while it reads
    /// `g`, whatever else (devices, prompts, settings) was written meanwhile.
    pub fn index_generation(&self) -> u64 {
        self.index_generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A number that changes whenever anything was written through this store: a value
    /// computed from the database while it read `g` is still current while it reads `g`.
    /// (Read it before reading the data: a write racing the read then only makes it stale.)
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    // --- meta ---------------------------------------------------------------------------------

    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|txn| Ok(txn.open_table(META)?.get(key.as_bytes())?.map(|v| v.value().to_vec())))
    }

    /// Sets a setting. The store's own keys (`schema_version`, `next_prompt_id`) are refused.
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if key == META_SCHEMA_VERSION || key == META_NEXT_PROMPT_ID || key == META_NEXT_NOTE_ORDER {
            return Err(StoreError::Invalid(format!("meta key {key:?} is reserved for the store")));
        }
        self.write(|txn| {
            txn.open_table(META)?.insert(key.as_bytes(), value)?;
            Ok(())
        })
    }

    // --- devices ------------------------------------------------------------------------------

    pub fn put_device(&self, d: &DeviceRecord) -> Result<(), StoreError> {
        let value = encode("device", d)?;
        self.write(|txn| {
            txn.open_table(DEVICES)?.insert(d.id.0.as_slice(), value.as_slice())?;
            Ok(())
        })
    }

    pub fn device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        self.read(|txn| get(&txn.open_table(DEVICES)?, &id.0, "device"))
    }

    /// All devices, by id.
    pub fn devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        self.read(|txn| scan(&txn.open_table(DEVICES)?, &(Bound::Unbounded, Bound::Unbounded), "device"))
    }

    pub fn remove_device(&self, id: &DeviceId) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(DEVICES)?.remove(id.0.as_slice())?;
            Ok(())
        })
    }

    // --- shares -------------------------------------------------------------------------------

    /// Inserts or updates a share. A share without state (a new one) also gets its
    /// [`ShareState`]: a random nonzero epoch and max_seq 0.
    pub fn put_share(&self, s: &ShareRecord) -> Result<(), StoreError> {
        let value = encode("share", s)?;
        self.write(|txn| {
            txn.open_table(SHARES)?.insert(s.id.0.as_slice(), value.as_slice())?;
            let mut states = txn.open_table(SHARE_STATE)?;
            if states.get(s.id.0.as_slice())?.is_none() {
                let state = ShareState { epoch: random_epoch(), max_seq: 0 };
                states.insert(s.id.0.as_slice(), encode("share state", &state)?.as_slice())?;
            }
            Ok(())
        })
    }

    pub fn share(&self, id: &ShareId) -> Result<Option<ShareRecord>, StoreError> {
        self.read(|txn| get(&txn.open_table(SHARES)?, &id.0, "share"))
    }

    /// All shares, by id.
    pub fn shares(&self) -> Result<Vec<ShareRecord>, StoreError> {
        self.read(|txn| scan(&txn.open_table(SHARES)?, &(Bound::Unbounded, Bound::Unbounded), "share"))
    }

    /// Removes the share, its state, local index, seq index, all remote indexes/states and
    /// version records, in one transaction.
    pub fn remove_share(&self, id: &ShareId) -> Result<(), StoreError> {
        let bounds = prefix_bounds(&id.0);
        self.write_index(|txn| {
            txn.open_table(SHARES)?.remove(id.0.as_slice())?;
            txn.open_table(SHARE_STATE)?.remove(id.0.as_slice())?;
            txn.open_table(SHARE_SETTINGS)?.remove(id.0.as_slice())?;
            for table in [LOCAL, LOCAL_SEQ, REMOTE, REMOTE_STATE, VERSIONS] {
                schema::remove_range(&mut txn.open_table(table)?, &bounds)?;
            }
            Ok(())
        })
    }

    /// The share's index state; [`StoreError::NotFound`] for an unknown share.
    pub fn share_state(&self, id: &ShareId) -> Result<ShareState, StoreError> {
        self.read(|txn| {
            get(&txn.open_table(SHARE_STATE)?, &id.0, "share state")?
                .ok_or_else(|| StoreError::NotFound(format!("state of share {id}")))
        })
    }

    // --- local index --------------------------------------------------------------------------

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

    /// Walks the share's local index and the remote indexes of `devices` side by side, in path
    /// order, in one read transaction: `f(local, remotes)` is called once per path that any of
    /// them holds, with `remotes[i]` the record of `devices[i]` (None where it has none). Only
    /// one path's records are decoded at a time, so comparing two 100,000-record indexes costs
    /// no more memory than comparing one path.
    ///
    /// Returns the index states read in the same transaction, so a caller can tell later
    /// whether anything it compared has changed since (see [`WalkStates`]).
    pub fn walk_share(
        &self,
        share: &ShareId,
        devices: &[DeviceId],
        mut f: impl FnMut(Option<LocalEntry>, Vec<Option<FileRecord>>) -> Result<(), StoreError>,
    ) -> Result<WalkStates, StoreError> {
        // Read before the transaction begins: a write racing it only makes the states look
        // newer than what was read (a needless recomputation later), never older.
        let generation = self.index_generation();
        self.read(|txn| {
            let states = walk_states(txn, generation, share, devices)?;
            let local_table = txn.open_table(LOCAL)?;
            let remote_table = txn.open_table(REMOTE)?;
            // Each source is a range whose keys are a fixed prefix followed by the path, so the
            // key suffixes compare like the paths and a merge by suffix visits every path once.
            let mut sources: Vec<MergeSource> = Vec::with_capacity(devices.len() + 1);
            let local_prefix = share.0.len();
            let local_bounds = prefix_bounds(&share.0);
            sources
                .push(MergeSource::new(local_table.range::<&[u8]>(schema::as_slices(&local_bounds))?, local_prefix)?);
            for d in devices {
                let prefix = schema::remote_state_key(share, d);
                let bounds = prefix_bounds(&prefix);
                sources.push(MergeSource::new(remote_table.range::<&[u8]>(schema::as_slices(&bounds))?, prefix.len())?);
            }
            while let Some(min) = sources.iter().filter_map(MergeSource::path).min().map(<[u8]>::to_vec) {
                let mut local = None;
                let mut remotes = Vec::with_capacity(devices.len());
                for (i, src) in sources.iter_mut().enumerate() {
                    let value = if src.path() == Some(min.as_slice()) { Some(src.advance()?) } else { None };
                    if i == 0 {
                        local = value.map(|v| schema::decode::<LocalEntry>("local entry", &v)).transpose()?;
                    } else {
                        remotes.push(value.map(|v| schema::decode::<FileRecord>("remote record", &v)).transpose()?);
                    }
                }
                f(local, remotes)?;
            }
            Ok(states)
        })
    }

    /// The states [`Store::walk_share`] would return now, without the walk.
    pub fn walk_states(&self, share: &ShareId, devices: &[DeviceId]) -> Result<WalkStates, StoreError> {
        let generation = self.index_generation();
        self.read(|txn| walk_states(txn, generation, share, devices))
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

    // --- remote indexes -----------------------------------------------------------------------

    /// One transaction: if `epoch` differs from the stored [`RemoteState`]'s epoch, first drop
    /// every stored record of that (share, device); then upsert the records (keyed by path) and
    /// set state = {epoch, max_seq: max(old max_seq (if same epoch), max record seq)}.
    pub fn put_remote(
        &self,
        share: &ShareId,
        device: &DeviceId,
        epoch: u64,
        records: &[FileRecord],
    ) -> Result<(), StoreError> {
        let state_key = schema::remote_state_key(share, device);
        self.write_index(|txn| {
            let mut states = txn.open_table(REMOTE_STATE)?;
            let mut remote = txn.open_table(REMOTE)?;
            let old: RemoteState = get(&states, &state_key, "remote state")?.unwrap_or_default();
            let mut max_seq = if old.epoch == epoch {
                old.max_seq
            } else {
                schema::remove_range(&mut remote, &prefix_bounds(&state_key))?;
                0
            };
            for r in records {
                max_seq = max_seq.max(r.seq.0);
                remote.insert(
                    schema::remote_key(share, device, &r.path).as_slice(),
                    encode("remote record", r)?.as_slice(),
                )?;
            }
            let state = RemoteState { epoch, max_seq };
            states.insert(state_key.as_slice(), encode("remote state", &state)?.as_slice())?;
            Ok(())
        })
    }

    /// What we hold of `device`'s index of `share`; `{0, 0}` if nothing.
    pub fn remote_state(&self, share: &ShareId, device: &DeviceId) -> Result<RemoteState, StoreError> {
        self.read(|txn| {
            Ok(get(&txn.open_table(REMOTE_STATE)?, &schema::remote_state_key(share, device), "remote state")?
                .unwrap_or_default())
        })
    }

    /// Every record `device` sent for `share`, sorted by path.
    pub fn remote_files(&self, share: &ShareId, device: &DeviceId) -> Result<Vec<FileRecord>, StoreError> {
        let bounds = prefix_bounds(&schema::remote_state_key(share, device));
        self.read(|txn| scan(&txn.open_table(REMOTE)?, &bounds, "remote record"))
    }

    pub fn remote_file(
        &self,
        share: &ShareId,
        device: &DeviceId,
        path: &RelPath,
    ) -> Result<Option<FileRecord>, StoreError> {
        self.read(|txn| get(&txn.open_table(REMOTE)?, &schema::remote_key(share, device, path), "remote record"))
    }

    /// `device`'s records of `share` at `paths` (None where there is none), in order, in one read.
    pub fn remote_files_at(
        &self,
        share: &ShareId,
        device: &DeviceId,
        paths: &[RelPath],
    ) -> Result<Vec<Option<FileRecord>>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(REMOTE)?;
            paths.iter().map(|p| get(&table, &schema::remote_key(share, device, p), "remote record")).collect()
        })
    }

    /// For each of `paths`: this device's record there and `device`'s, in one read.
    #[allow(clippy::type_complexity)]
    pub fn local_and_remote_at(
        &self,
        share: &ShareId,
        device: &DeviceId,
        paths: &[RelPath],
    ) -> Result<Vec<(Option<FileRecord>, Option<FileRecord>)>, StoreError> {
        self.read(|txn| {
            let local = txn.open_table(LOCAL)?;
            let remote = txn.open_table(REMOTE)?;
            paths
                .iter()
                .map(|p| {
                    let mine: Option<LocalEntry> = get(&local, &schema::local_key(share, p), "local entry")?;
                    let theirs = get(&remote, &schema::remote_key(share, device, p), "remote record")?;
                    Ok((mine.map(|e| e.record), theirs))
                })
                .collect()
        })
    }

    /// Drops `device`'s records and state for `share`.
    pub fn clear_remote(&self, share: &ShareId, device: &DeviceId) -> Result<(), StoreError> {
        let state_key = schema::remote_state_key(share, device);
        self.write_index(|txn| {
            schema::remove_range(&mut txn.open_table(REMOTE)?, &prefix_bounds(&state_key))?;
            txn.open_table(REMOTE_STATE)?.remove(state_key.as_slice())?;
            Ok(())
        })
    }

    // --- file versions ------------------------------------------------------------------------

    /// Versions of one path, newest (highest id) first.
    pub fn versions(&self, share: &ShareId, path: &RelPath) -> Result<Vec<VersionRecord>, StoreError> {
        let bounds = prefix_bounds(&schema::versions_prefix(share, path));
        self.read(|txn| {
            let mut out: Vec<VersionRecord> = scan(&txn.open_table(VERSIONS)?, &bounds, "version")?;
            out.reverse();
            Ok(out)
        })
    }

    /// All versions of a share, newest (highest id) first; ties by path.
    pub fn share_versions(&self, share: &ShareId) -> Result<Vec<VersionRecord>, StoreError> {
        self.read(|txn| {
            let mut out: Vec<VersionRecord> = scan(&txn.open_table(VERSIONS)?, &prefix_bounds(&share.0), "version")?;
            out.sort_by(|a, b| b.id.cmp(&a.id).then_with(|| a.path.cmp(&b.path)));
            Ok(out)
        })
    }

    /// Removes these (path, id) version records in one transaction (missing ones are skipped).
    pub fn remove_versions(&self, share: &ShareId, which: &[(RelPath, u64)]) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(VERSIONS)?;
            for (path, id) in which {
                table.remove(schema::version_key(share, path, *id).as_slice())?;
            }
            Ok(())
        })
    }

    /// One version record, if it exists.
    pub fn version(&self, share: &ShareId, path: &RelPath, id: u64) -> Result<Option<VersionRecord>, StoreError> {
        self.read(|txn| get(&txn.open_table(VERSIONS)?, &schema::version_key(share, path, id), "version"))
    }

    // --- share settings -----------------------------------------------------------------------

    /// The share's settings; the defaults if none were stored.
    pub fn share_settings(&self, id: &ShareId) -> Result<ShareSettings, StoreError> {
        self.read(|txn| Ok(get(&txn.open_table(SHARE_SETTINGS)?, &id.0, "share settings")?.unwrap_or_default()))
    }

    /// Reads, changes and writes the share's settings in one transaction; returns the result.
    pub fn update_share_settings(
        &self,
        id: &ShareId,
        f: impl FnOnce(&mut ShareSettings),
    ) -> Result<ShareSettings, StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(SHARE_SETTINGS)?;
            let mut s: ShareSettings = get(&table, &id.0, "share settings")?.unwrap_or_default();
            f(&mut s);
            table.insert(id.0.as_slice(), encode("share settings", &s)?.as_slice())?;
            Ok(s)
        })
    }

    // --- prompts ------------------------------------------------------------------------------

    pub fn put_prompt(&self, p: &PromptRecord) -> Result<(), StoreError> {
        let value = encode("prompt", p)?;
        self.write(|txn| {
            txn.open_table(PROMPTS)?.insert(schema::prompt_key(p.id).as_slice(), value.as_slice())?;
            Ok(())
        })
    }

    pub fn prompt(&self, id: u64) -> Result<Option<PromptRecord>, StoreError> {
        self.read(|txn| get(&txn.open_table(PROMPTS)?, &schema::prompt_key(id), "prompt"))
    }

    /// All prompts, by id.
    pub fn prompts(&self) -> Result<Vec<PromptRecord>, StoreError> {
        self.read(|txn| scan(&txn.open_table(PROMPTS)?, &(Bound::Unbounded, Bound::Unbounded), "prompt"))
    }

    pub fn remove_prompt(&self, id: u64) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(PROMPTS)?.remove(schema::prompt_key(id).as_slice())?;
            Ok(())
        })
    }

    /// The next prompt id (starting at 1; monotonic, persisted in meta), in its own transaction.
    pub fn next_prompt_id(&self) -> Result<u64, StoreError> {
        self.write(|txn| {
            let mut meta = txn.open_table(META)?;
            let id = match meta.get(META_NEXT_PROMPT_ID.as_bytes())? {
                Some(v) => u64::from_be_bytes(
                    v.value().try_into().map_err(|_| StoreError::Corrupt("next_prompt_id is not 8 bytes".into()))?,
                ),
                None => 1,
            };
            meta.insert(META_NEXT_PROMPT_ID.as_bytes(), (id + 1).to_be_bytes().as_slice())?;
            Ok(id)
        })
    }
}

impl Store {
    // --- notes --------------------------------------------------------------------------------

    /// Stores a new note at the end of its conversation (its `order` is assigned here), in one
    /// transaction. Returns false, storing nothing, if a note with this id exists (a redelivery).
    pub fn add_note(&self, note: &NoteRecord) -> Result<bool, StoreError> {
        self.write(|txn| {
            let mut notes = txn.open_table(NOTES)?;
            if notes.get(note.id.0.as_slice())?.is_some() {
                return Ok(false);
            }
            let mut meta = txn.open_table(META)?;
            let order = match meta.get(META_NEXT_NOTE_ORDER.as_bytes())? {
                Some(v) => u64::from_be_bytes(
                    v.value().try_into().map_err(|_| StoreError::Corrupt("next_note_order is not 8 bytes".into()))?,
                ),
                None => 1,
            };
            meta.insert(META_NEXT_NOTE_ORDER.as_bytes(), (order + 1).to_be_bytes().as_slice())?;
            let mut rec = note.clone();
            rec.order = order;
            notes.insert(note.id.0.as_slice(), encode("note", &rec)?.as_slice())?;
            txn.open_table(NOTE_ORDER)?
                .insert(schema::note_order_key(&note.peer, order).as_slice(), note.id.0.as_slice())?;
            Ok(true)
        })
    }

    pub fn note(&self, id: &NoteId) -> Result<Option<NoteRecord>, StoreError> {
        self.read(|txn| get(&txn.open_table(NOTES)?, &id.0, "note"))
    }

    /// Replaces the state and receipt flag of an existing note; [`StoreError::NotFound`] if none.
    pub fn set_note_state(
        &self,
        id: &NoteId,
        state: NoteState,
        receipt_pending: bool,
    ) -> Result<NoteRecord, StoreError> {
        self.write(|txn| {
            let mut notes = txn.open_table(NOTES)?;
            let mut rec: NoteRecord =
                get(&notes, &id.0, "note")?.ok_or_else(|| StoreError::NotFound(format!("note {:?}", id)))?;
            rec.state = state;
            rec.receipt_pending = receipt_pending;
            notes.insert(id.0.as_slice(), encode("note", &rec)?.as_slice())?;
            Ok(rec)
        })
    }

    /// The conversation with `peer` (or every conversation), in the order the notes were stored.
    pub fn notes(&self, peer: Option<&DeviceId>) -> Result<Vec<NoteRecord>, StoreError> {
        let bounds = match peer {
            Some(p) => prefix_bounds(&p.0),
            None => (Bound::Unbounded, Bound::Unbounded),
        };
        self.read(|txn| {
            let order = txn.open_table(NOTE_ORDER)?;
            let notes = txn.open_table(NOTES)?;
            let mut out = Vec::new();
            for item in order.range::<&[u8]>(schema::as_slices(&bounds))? {
                let (_, id) = item?;
                let note: NoteRecord = get(&notes, id.value(), "note")?
                    .ok_or_else(|| StoreError::Corrupt("note order entry without its note".into()))?;
                out.push(note);
            }
            Ok(out)
        })
    }

    pub fn set_muted(&self, device: &DeviceId, muted: bool) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(MUTED)?;
            if muted {
                t.insert(device.0.as_slice(), b"".as_slice())?;
            } else {
                t.remove(device.0.as_slice())?;
            }
            Ok(())
        })
    }

    pub fn is_muted(&self, device: &DeviceId) -> Result<bool, StoreError> {
        self.read(|txn| Ok(txn.open_table(MUTED)?.get(device.0.as_slice())?.is_some()))
    }
}

impl Store {
    // --- one-shot sends -----------------------------------------------------------------------

    /// Inserts or replaces a transfer record.
    pub fn put_transfer(&self, t: &TransferRecord) -> Result<(), StoreError> {
        let value = encode("transfer", t)?;
        self.write(|txn| {
            txn.open_table(TRANSFERS)?.insert(t.id.0.as_slice(), value.as_slice())?;
            Ok(())
        })
    }

    /// Stores `t` only if no transfer with its id exists; false (nothing written) otherwise.
    pub fn add_transfer(&self, t: &TransferRecord) -> Result<bool, StoreError> {
        let value = encode("transfer", t)?;
        self.write(|txn| {
            let mut table = txn.open_table(TRANSFERS)?;
            if table.get(t.id.0.as_slice())?.is_some() {
                return Ok(false);
            }
            table.insert(t.id.0.as_slice(), value.as_slice())?;
            Ok(true)
        })
    }

    pub fn transfer(&self, id: &TransferId) -> Result<Option<TransferRecord>, StoreError> {
        self.read(|txn| get(&txn.open_table(TRANSFERS)?, &id.0, "transfer"))
    }

    /// Reads, changes and writes back one transfer in one transaction; `f` returns false to
    /// leave it unchanged. [`StoreError::NotFound`] if there is none.
    pub fn update_transfer(
        &self,
        id: &TransferId,
        f: impl FnOnce(&mut TransferRecord) -> bool,
    ) -> Result<TransferRecord, StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(TRANSFERS)?;
            let mut t: TransferRecord = get(&table, &id.0, "transfer")?
                .ok_or_else(|| StoreError::NotFound(format!("transfer {}", id.to_hex())))?;
            if f(&mut t) {
                table.insert(id.0.as_slice(), encode("transfer", &t)?.as_slice())?;
            }
            Ok(t)
        })
    }

    /// Every transfer, by id.
    pub fn transfers(&self) -> Result<Vec<TransferRecord>, StoreError> {
        self.read(|txn| scan(&txn.open_table(TRANSFERS)?, &(Bound::Unbounded, Bound::Unbounded), "transfer"))
    }

    pub fn set_auto_accept(&self, device: &DeviceId, on: bool) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(AUTO_ACCEPT)?;
            if on {
                t.insert(device.0.as_slice(), b"".as_slice())?;
            } else {
                t.remove(device.0.as_slice())?;
            }
            Ok(())
        })
    }

    pub fn auto_accept(&self, device: &DeviceId) -> Result<bool, StoreError> {
        self.read(|txn| Ok(txn.open_table(AUTO_ACCEPT)?.get(device.0.as_slice())?.is_some()))
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
}

/// The index states a [`Store::walk_share`] read: the index generation, the local index's state
/// and each walked device's (`{0, 0}` for a device we hold nothing of). Equal states (with the
/// same store) mean no index was written in between: the walk would see the same records again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalkStates {
    /// [`Store::index_generation`] read before the walk's transaction began.
    pub generation: u64,
    pub local: ShareState,
    pub remotes: Vec<(DeviceId, RemoteState)>,
}

fn walk_states(
    txn: &ReadTransaction,
    generation: u64,
    share: &ShareId,
    devices: &[DeviceId],
) -> Result<WalkStates, StoreError> {
    let local: ShareState = get(&txn.open_table(SHARE_STATE)?, &share.0, "share state")?
        .ok_or_else(|| StoreError::NotFound(format!("state of share {share}")))?;
    let table = txn.open_table(REMOTE_STATE)?;
    let mut remotes = Vec::with_capacity(devices.len());
    for d in devices {
        remotes.push((*d, get(&table, &schema::remote_state_key(share, d), "remote state")?.unwrap_or_default()));
    }
    Ok(WalkStates { generation, local, remotes })
}

/// One sorted range of a [`Store::walk_share`] merge, with its next (key, value) read ahead.
struct MergeSource<'a> {
    range: redb::Range<'a, &'static [u8], &'static [u8]>,
    /// Length of the key prefix before the path.
    prefix: usize,
    head: Option<(Vec<u8>, Vec<u8>)>,
}

impl<'a> MergeSource<'a> {
    fn new(range: redb::Range<'a, &'static [u8], &'static [u8]>, prefix: usize) -> Result<Self, StoreError> {
        let mut s = MergeSource { range, prefix, head: None };
        s.fill()?;
        Ok(s)
    }

    fn fill(&mut self) -> Result<(), StoreError> {
        self.head = match self.range.next() {
            Some(item) => {
                let (k, v) = item?;
                let key = k.value();
                let path = key
                    .get(self.prefix..)
                    .ok_or_else(|| StoreError::Corrupt(format!("index key of {} bytes", key.len())))?;
                Some((path.to_vec(), v.value().to_vec()))
            }
            None => None,
        };
        Ok(())
    }

    /// The path bytes of the next entry, None at the end.
    fn path(&self) -> Option<&[u8]> {
        self.head.as_ref().map(|(p, _)| p.as_slice())
    }

    /// Takes the next entry's value and reads the one after it.
    fn advance(&mut self) -> Result<Vec<u8>, StoreError> {
        let (_, value) = self.head.take().expect("advance only at a path");
        self.fill()?;
        Ok(value)
    }
}

/// A random nonzero epoch. std's `RandomState` is seeded from the OS's randomness (and differs
/// per instance), which is all an epoch needs: to differ from every earlier epoch of the share.
fn random_epoch() -> u64 {
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        h.write_u128(now.as_nanos());
        let epoch = h.finish();
        if epoch != 0 {
            return epoch;
        }
    }
}

#[cfg(test)]
mod tests;
