//! Shares: their records, their index state (epoch and max_seq, created with the share),
//! their settings, and removing a share with everything it owns in one transaction.

use std::hash::{BuildHasher, Hasher};
use std::ops::Bound;

use ferry_proto::ShareId;
use redb::ReadableTable;

use crate::schema::{
    self, LOCAL, LOCAL_SEQ, REMOTE, REMOTE_STATE, SHARE_SETTINGS, SHARE_STATE, SHARES, VERSIONS, encode, get,
    prefix_bounds, scan,
};
use crate::{ShareRecord, ShareSettings, ShareState, Store, StoreError};

impl Store {
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
            txn.open_table(schema::META)?.remove(schema::pull_mark_key(id).as_slice())?;
            txn.open_table(schema::META)?.remove(schema::kept_counts_key(id).as_slice())?;
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
