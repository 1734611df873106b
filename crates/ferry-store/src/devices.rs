//! Paired devices: the `devices` table, one [`DeviceRecord`] per device id.

use std::ops::Bound;

use ferry_proto::DeviceId;

use crate::schema::{DEVICES, encode, get, scan};
use crate::{DeviceRecord, Store, StoreError};

impl Store {
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
}
