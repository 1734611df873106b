//! What peers told us of their indexes: per (share, device), records keyed by path and a
//! [`RemoteState`] (the epoch they came from and the highest seq held).

use ferry_proto::{DeviceId, FileRecord, RelPath, ShareId};

use crate::schema::{self, LOCAL, REMOTE, REMOTE_STATE, encode, get, prefix_bounds, scan};
use crate::{LocalEntry, RemoteState, Store, StoreError};

impl Store {
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
}
