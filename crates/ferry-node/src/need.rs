//! Whether an index update from a peer asks anything of this device.
//!
//! A pull pass compares the whole local index with every peer's (it has to: one record can
//! settle or unblock another). Most index updates during a large sync are echoes, though: the
//! receiving side reporting the files it just applied, at versions the sender already has. A
//! pass for each of those made a 100,000-file sync quadratic (hundreds of passes over 200,000
//! records), so an update only wakes the worker when at least one of its records would make
//! this device do something (fetch, delete, merge, resolve a conflict).

use ferry_engine::{Action, decide};
use ferry_proto::{FileRecord, ShareId};
use ferry_store::{Store, StoreError};

/// True when some record in `records` is newer than (or concurrent with) what this device has.
/// (One read of the local index for the whole update.)
pub(crate) fn any_needed(store: &Store, share: &ShareId, records: &[FileRecord]) -> Result<bool, StoreError> {
    let paths: Vec<_> = records.iter().map(|r| r.path.clone()).collect();
    let locals = store.local_files_at(share, &paths)?;
    Ok(records.iter().zip(&locals).any(|(r, local)| {
        !matches!(decide(local.as_ref().map(|e| &e.record), r), Action::Nothing | Action::ConflictLocalWins)
    }))
}
