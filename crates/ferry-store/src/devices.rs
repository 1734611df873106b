//! Paired devices: the `devices` table, one [`DeviceRecord`] per device id.

use std::ops::Bound;

use ferry_proto::DeviceId;

use crate::schema::{DEVICES, PROMPTS, REMOVED, SHARES, encode, get, prompt_key, scan};
use crate::{DeviceRecord, PromptRecord, RemovalChanges, RemovalRecord, ShareRecord, Store, StoreError};

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

    /// Withdraws the trust of a device in one transaction: it is no longer paired, no longer a
    /// member of any share, its prompts are gone, and `removal` is recorded. Nothing else is
    /// touched (indexes, versions, notes and transfers stay). An unknown device is recorded too,
    /// so that a removal learnt from a device this one forgot still holds.
    pub fn record_removal(&self, removal: &RemovalRecord) -> Result<RemovalChanges, StoreError> {
        let id = removal.device;
        let value = encode("removal", removal)?;
        self.write(|txn| {
            let mut devices = txn.open_table(DEVICES)?;
            if let Some(mut d) = get::<DeviceRecord>(&devices, &id.0, "device")? {
                d.paired = false;
                devices.insert(id.0.as_slice(), encode("device", &d)?.as_slice())?;
            }
            let mut changes = RemovalChanges::default();
            let mut shares = txn.open_table(SHARES)?;
            let all: Vec<ShareRecord> = scan(&shares, &(Bound::Unbounded, Bound::Unbounded), "share")?;
            for mut s in all.into_iter().filter(|s| s.devices.contains(&id)) {
                s.devices.retain(|d| *d != id);
                shares.insert(s.id.0.as_slice(), encode("share", &s)?.as_slice())?;
                changes.shares.push(s);
            }
            let mut prompts = txn.open_table(PROMPTS)?;
            let all: Vec<PromptRecord> = scan(&prompts, &(Bound::Unbounded, Bound::Unbounded), "prompt")?;
            for p in all.into_iter().filter(|p| p.device == id) {
                prompts.remove(prompt_key(p.id).as_slice())?;
                changes.prompts.push(p);
            }
            txn.open_table(REMOVED)?.insert(id.0.as_slice(), value.as_slice())?;
            Ok(changes)
        })
    }

    pub fn removal(&self, id: &DeviceId) -> Result<Option<RemovalRecord>, StoreError> {
        self.read(|txn| get(&txn.open_table(REMOVED)?, &id.0, "removal"))
    }

    /// Every removal, by device id.
    pub fn removals(&self) -> Result<Vec<RemovalRecord>, StoreError> {
        self.read(|txn| scan(&txn.open_table(REMOVED)?, &(Bound::Unbounded, Bound::Unbounded), "removal"))
    }

    /// Forgets a removal (the device is being paired again, deliberately).
    pub fn clear_removal(&self, id: &DeviceId) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(REMOVED)?.remove(id.0.as_slice())?;
            Ok(())
        })
    }
}
