//! One-shot sends (transfers), outgoing and incoming, and which devices' sends are accepted
//! without asking.

use std::ops::Bound;

use ferry_proto::{DeviceId, TransferId};
use redb::ReadableTable;

use crate::schema::{AUTO_ACCEPT, TRANSFERS, encode, get, scan};
use crate::{Store, StoreError, TransferRecord};

impl Store {
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
