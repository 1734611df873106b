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
//!
//! Layout: this file holds [`Store`] itself (opening, transactions, generations, settings in
//! `meta`); each other module adds the methods of one kind of record: [`devices`](Store::devices),
//! [`shares`](Store::shares) and their settings, the local index ([`Store::commit_local`]), remote
//! indexes ([`Store::put_remote`]), walks over both ([`Store::walk_share`]), versions, prompts,
//! notes and transfers. They depend only on [`schema`], the records and this file, never on each
//! other.

mod devices;
mod error;
mod intents;
mod kdeconnect;
mod lean;
mod local;
mod localsend;
mod notes;
mod prompts;
mod records;
mod remote;
pub mod schema;
mod shares;
mod transfers;
mod versions;
mod walk;

use std::path::Path;

use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};

pub use error::StoreError;
pub use intents::ApplyIntent;
pub use kdeconnect::KdeDeviceRecord;
pub use lean::LocalStat;
pub use local::LocalReader;
pub use localsend::{LsDeviceRecord, MAX_LOCALSEND_DEVICES};
pub use records::{
    DeviceRecord, LocalEntry, LocalMeta, LocalUpdate, NoteRecord, NoteState, PromptKind, PromptRecord, RemoteState,
    RemovalChanges, RemovalRecord, RemovedBy, ShareRecord, ShareSettings, ShareState, TransferRecord, TransferState,
    VersionReason, VersionRecord,
};
use schema::{META, META_NEXT_NOTE_ORDER, META_NEXT_PROMPT_ID, META_SCHEMA_VERSION};
pub use walk::{KeptCounts, PullMark, WalkStates};

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
    /// A damaged file is [`StoreError::Damaged`]: redb's own verdict (corrupt, not a redb file,
    /// cut short) or a panic of redb's on pages it did not expect (seen with garbage written over
    /// a valid file), which is caught here so that the caller can say what to do.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let opened = std::panic::catch_unwind(|| -> Result<Store, StoreError> {
            let db = Database::builder().set_cache_size(CACHE_BYTES).create(path)?;
            // redb fsyncs its file, never the folder: a new database's name is durable only once
            // the folder is fsynced, else a power cut after the first start can take the whole
            // store (pairings, shares, indexes) away. Once per start; cheap.
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| StoreError::Storage(redb::StorageError::Io(e)))?;
            let store = Store { db, generation: Default::default(), index_generation: Default::default() };
            store.write(schema::migrate)?;
            Ok(store)
        });
        match opened {
            Ok(Err(e)) => Err(damaged(e)),
            Ok(ok) => ok,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "redb failed on it".into());
                Err(StoreError::Damaged(format!("redb failed on it ({why})")))
            }
        }
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
        let out = self.write(|txn| {
            let out = f(txn)?;
            // In the same transaction: the stored generation moves exactly with the indexes.
            let mut meta = txn.open_table(META)?;
            let next = schema::stored_index_generation(&meta)?.wrapping_add(1);
            meta.insert(schema::META_INDEX_GENERATION.as_bytes(), next.to_be_bytes().as_slice())?;
            Ok(out)
        })?;
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
        let own = [META_SCHEMA_VERSION, META_NEXT_PROMPT_ID, META_NEXT_NOTE_ORDER, schema::META_INDEX_GENERATION];
        if own.contains(&key) || key.starts_with(schema::META_PULL_MARK) || key.starts_with(schema::META_KEPT_COUNTS) {
            return Err(StoreError::Invalid(format!("meta key {key:?} is reserved for the store")));
        }
        self.write(|txn| {
            txn.open_table(META)?.insert(key.as_bytes(), value)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests;

/// Tells a damaged file apart from other failures to open (a file another process holds, a
/// database of a newer Ferry, permissions), which keep their own error.
fn damaged(e: StoreError) -> StoreError {
    use redb::{DatabaseError, StorageError};
    let corrupt = |s: &StorageError| match s {
        StorageError::Corrupted(_) => true,
        StorageError::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    };
    match &e {
        StoreError::Database(DatabaseError::Storage(s)) | StoreError::Storage(s) if corrupt(s) => {
            StoreError::Damaged(s.to_string())
        }
        StoreError::Corrupt(why) => StoreError::Damaged(why.clone()),
        StoreError::Decode { .. } => StoreError::Damaged(e.to_string()),
        _ => e,
    }
}
