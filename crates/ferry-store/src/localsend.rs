//! LocalSend devices: the `localsend` table (schema v6), one [`LsDeviceRecord`] per certificate
//! fingerprint seen. LocalSend has no pairing: a device is known by the fingerprint of the
//! certificate it shows (trust on first use), so a device that comes back under the same alias
//! with another certificate is a different device with its own record, never silently the old
//! one. A LocalSend device that sends or is sent to also has a [`crate::DeviceRecord`] (its
//! alias as the name, never paired) so notes, sends, prompts, muting and auto-accept treat it
//! like any device.

use std::ops::Bound;

use redb::ReadableTable;

use ferry_proto::DeviceId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::schema::{AUTO_ACCEPT, DEVICES, LOCALSEND, MUTED, encode, get, scan};
use crate::{DeviceRecord, Store, StoreError};

/// LocalSend devices remembered at most. Every device heard on the network is remembered (so a
/// new certificate under a known alias can be told), and anyone on the network can announce
/// made-up fingerprints: past this many, the least recently seen device that is neither a
/// favorite nor has a device row (no transfer, prompt or note refers to it) is forgotten.
pub const MAX_LOCALSEND_DEVICES: usize = 256;

/// What Ferry keeps about a LocalSend device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LsDeviceRecord {
    /// SHA-256 of its certificate, upper-case hex (LocalSend peers disagree on the case; this is
    /// the one form kept).
    pub fingerprint: String,
    /// The name it announces.
    pub alias: String,
    pub device_model: Option<String>,
    /// `mobile`, `desktop`, `web`, `headless` or `server`.
    pub device_type: String,
    /// The last `ip:port` of its HTTPS server.
    pub address: Option<String>,
    /// Kept in the device list while away (the user's choice).
    pub favorite: bool,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

impl LsDeviceRecord {
    /// The Ferry id of a LocalSend device: SHA-256 over a domain tag and its fingerprint (upper
    /// case), so no Ferry or KDE Connect device can claim it.
    pub fn ferry_id(fingerprint: &str) -> DeviceId {
        let mut h = Sha256::new();
        h.update(b"ferry-localsend-device\0");
        h.update(fingerprint.to_ascii_uppercase().as_bytes());
        DeviceId(h.finalize().into())
    }

    pub fn id(&self) -> DeviceId {
        Self::ferry_id(&self.fingerprint)
    }
}

impl Store {
    /// Records or updates a LocalSend device. With `with_row`, its device row is made or renamed
    /// too (it is about to send or be sent to); an existing row is renamed to its alias either way.
    pub fn put_ls_device(&self, rec: &LsDeviceRecord, with_row: bool) -> Result<(), StoreError> {
        let id = rec.id();
        let value = encode("localsend device", rec)?;
        self.write(|txn| {
            let mut devices = txn.open_table(DEVICES)?;
            let row = get::<DeviceRecord>(&devices, &id.0, "device")?;
            if with_row || row.is_some() {
                let mut d = row.unwrap_or_else(|| DeviceRecord {
                    id,
                    name: String::new(),
                    owner: String::new(),
                    paired: false,
                    addresses: vec![],
                    static_addresses: vec![],
                    last_seen_ms: None,
                });
                d.name = rec.alias.clone();
                d.last_seen_ms = Some(rec.last_seen_ms);
                devices.insert(id.0.as_slice(), encode("device", &d)?.as_slice())?;
            }
            let mut ls = txn.open_table(LOCALSEND)?;
            ls.insert(id.0.as_slice(), value.as_slice())?;
            // Bound the table: forget the stalest device nothing else refers to.
            let all: Vec<LsDeviceRecord> = scan(&ls, &(Bound::Unbounded, Bound::Unbounded), "localsend device")?;
            if all.len() > MAX_LOCALSEND_DEVICES {
                let mut spare: Vec<&LsDeviceRecord> = Vec::new();
                for r in &all {
                    if !r.favorite && r.id() != id && devices.get(r.id().0.as_slice())?.is_none() {
                        spare.push(r);
                    }
                }
                spare.sort_by_key(|r| r.last_seen_ms);
                for r in spare.iter().take(all.len() - MAX_LOCALSEND_DEVICES) {
                    ls.remove(r.id().0.as_slice())?;
                }
            }
            Ok(())
        })
    }

    pub fn ls_device(&self, id: &DeviceId) -> Result<Option<LsDeviceRecord>, StoreError> {
        self.read(|txn| get(&txn.open_table(LOCALSEND)?, &id.0, "localsend device"))
    }

    /// Every LocalSend device remembered.
    pub fn ls_devices(&self) -> Result<Vec<LsDeviceRecord>, StoreError> {
        self.read(|txn| scan(&txn.open_table(LOCALSEND)?, &(Bound::Unbounded, Bound::Unbounded), "localsend device"))
    }

    /// Marks a remembered LocalSend device a favorite (kept listed while away, with a device
    /// row) or not.
    pub fn set_ls_favorite(&self, id: &DeviceId, favorite: bool) -> Result<(), StoreError> {
        let Some(mut rec) = self.ls_device(id)? else {
            return Err(StoreError::Invalid(format!("no LocalSend device {}", id.short())));
        };
        rec.favorite = favorite;
        self.put_ls_device(&rec, favorite)
    }

    /// Forgets a LocalSend device: its record, its device row, its mute and auto-accept marks.
    /// Transfers and notes with it stay (they name it by id).
    pub fn forget_ls_device(&self, id: &DeviceId) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(LOCALSEND)?.remove(id.0.as_slice())?;
            txn.open_table(DEVICES)?.remove(id.0.as_slice())?;
            txn.open_table(MUTED)?.remove(id.0.as_slice())?;
            txn.open_table(AUTO_ACCEPT)?.remove(id.0.as_slice())?;
            Ok(())
        })
    }
}
