//! Whether an index update from a peer asks anything of this device.
//!
//! A pull pass compares the whole local index with every peer's (it has to: one record can
//! settle or unblock another). Most index updates during a large sync are echoes, though: the
//! receiving side reporting the files it just applied, at versions the sender already has. A
//! pass for each of those made a 100,000-file sync quadratic (hundreds of passes over 200,000
//! records), so an update only wakes the worker when at least one of its records would make
//! this device do something (fetch, delete, merge, resolve a conflict).

use ferry_engine::{Action, decide};
use ferry_proto::{FileRecord, RelPath, ShareId};
use ferry_store::{Store, StoreError};

/// The paths of the records in `records` that are newer than (or concurrent with) what this
/// device has: empty when the update asks nothing of this device. (One read of the local index
/// for the whole update.) The worker's next pull can plan just these paths (see
/// `ShareHandle::request_pull_paths`).
pub(crate) fn needed_paths(store: &Store, share: &ShareId, records: &[FileRecord]) -> Result<Vec<RelPath>, StoreError> {
    let paths: Vec<_> = records.iter().map(|r| r.path.clone()).collect();
    let locals = store.local_files_at(share, &paths)?;
    Ok(records
        .iter()
        .zip(&locals)
        .filter(|(r, local)| {
            !matches!(decide(local.as_ref().map(|e| &e.record), r), Action::Nothing | Action::ConflictLocalWins)
        })
        .map(|(r, _)| r.path.clone())
        .collect())
}
