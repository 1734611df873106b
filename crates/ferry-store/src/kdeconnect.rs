//! KDE Connect devices: the `kdeconnect` table (schema v5), one [`KdeDeviceRecord`] per device.
//! A KDE Connect device also has a [`crate::DeviceRecord`] (name, paired) so that notes, sends,
//! prompts, muting and auto-accept treat it like any device; this table holds what only a KDE
//! Connect device has (its own id, type, protocol, and the certificate pinned at pairing).

use std::ops::Bound;

use ferry_proto::DeviceId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::schema::{DEVICES, KDECONNECT, encode, get, scan};
use crate::{DeviceRecord, Store, StoreError};

/// What Ferry keeps about a KDE Connect device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdeDeviceRecord {
    /// Its KDE Connect device id (the CN of its certificate).
    pub kde_id: String,
    /// `phone`, `tablet`, `desktop`, `laptop` or `tv`.
    pub device_type: String,
    /// The protocol version it last spoke (7 or 8). A paired device may not come back lower.
    pub protocol: u32,
    /// Its certificate (DER) once paired: a different one for the same id is refused.
    pub cert_der: Option<Vec<u8>>,
    /// The last `ip:port` it was reached at (its TCP listener).
    pub address: Option<String>,
}

impl KdeDeviceRecord {
    /// The Ferry id of a KDE Connect device: SHA-256 over a domain tag and its KDE id. It is
    /// stable across restarts and certificate changes (the pin, not the id, tells a changed
    /// certificate), and no Ferry certificate hashes to it.
    pub fn ferry_id(kde_id: &str) -> DeviceId {
        let mut h = Sha256::new();
        h.update(b"ferry-kdeconnect-device\0");
        h.update(kde_id.as_bytes());
        DeviceId(h.finalize().into())
    }
}

impl Store {
    /// Records or updates a KDE Connect device and its device row in one transaction: the row
    /// takes `name`, and is paired exactly when `k` holds a pinned certificate.
    pub fn put_kde_device(&self, k: &KdeDeviceRecord, name: &str) -> Result<DeviceRecord, StoreError> {
        let id = KdeDeviceRecord::ferry_id(&k.kde_id);
        let value = encode("kdeconnect device", k)?;
        self.write(|txn| {
            let mut devices = txn.open_table(DEVICES)?;
            let mut d = get::<DeviceRecord>(&devices, &id.0, "device")?.unwrap_or_else(|| DeviceRecord {
                id,
                name: String::new(),
                owner: String::new(),
                paired: false,
                addresses: vec![],
                static_addresses: vec![],
                last_seen_ms: None,
            });
            d.name = name.to_string();
            // The row says paired exactly when a certificate is pinned, as `set_kde_paired` keeps it.
            d.paired = k.cert_der.is_some();
            devices.insert(id.0.as_slice(), encode("device", &d)?.as_slice())?;
            txn.open_table(KDECONNECT)?.insert(id.0.as_slice(), value.as_slice())?;
            Ok(d)
        })
    }

    pub fn kde_device(&self, id: &DeviceId) -> Result<Option<KdeDeviceRecord>, StoreError> {
        self.read(|txn| get(&txn.open_table(KDECONNECT)?, &id.0, "kdeconnect device"))
    }

    /// Every KDE Connect device, by Ferry id.
    pub fn kde_devices(&self) -> Result<Vec<(DeviceId, KdeDeviceRecord)>, StoreError> {
        let all: Vec<KdeDeviceRecord> = self.read(|txn| {
            scan(&txn.open_table(KDECONNECT)?, &(Bound::Unbounded, Bound::Unbounded), "kdeconnect device")
        })?;
        Ok(all.into_iter().map(|k| (KdeDeviceRecord::ferry_id(&k.kde_id), k)).collect())
    }

    /// Pairs (pins `cert_der`) or unpairs (drops the pin) a KDE Connect device, device row
    /// included, in one transaction.
    pub fn set_kde_paired(&self, id: &DeviceId, cert_der: Option<Vec<u8>>) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut kde = txn.open_table(KDECONNECT)?;
            let Some(mut k) = get::<KdeDeviceRecord>(&kde, &id.0, "kdeconnect device")? else {
                return Err(StoreError::Invalid(format!("no KDE Connect device {}", id.short())));
            };
            let paired = cert_der.is_some();
            k.cert_der = cert_der;
            kde.insert(id.0.as_slice(), encode("kdeconnect device", &k)?.as_slice())?;
            let mut devices = txn.open_table(DEVICES)?;
            if let Some(mut d) = get::<DeviceRecord>(&devices, &id.0, "device")? {
                d.paired = paired;
                devices.insert(id.0.as_slice(), encode("device", &d)?.as_slice())?;
            }
            Ok(())
        })
    }
}
