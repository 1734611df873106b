//! Every table, key layout and value encoding of the store, and the schema migrations.
//!
//! All tables map binary keys to binary values. Keys are built by the `*_key` functions below
//! so that every prefix scan is a key range. Values (except `meta` entries and the seq index,
//! which hold raw bytes) are postcard-encoded inside [`Versioned`], so a later schema can add a
//! `V2` variant and migrate old values on read or in a migration.

use std::ops::Bound;

use ferry_proto::{DeviceId, RelPath, ShareId};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: u32 = 6;

/// Raw key/value settings. Values are raw bytes (not [`Versioned`]).
/// Keys [`META_SCHEMA_VERSION`] and [`META_NEXT_PROMPT_ID`] are the store's own.
pub const META: TableDefinition<&[u8], &[u8]> = TableDefinition::new("meta");
/// `device id (32)` -> `DeviceRecord`.
pub const DEVICES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("devices");
/// `share id (10)` -> `ShareRecord`.
pub const SHARES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("shares");
/// `share id (10)` -> `ShareState`.
pub const SHARE_STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("share_state");
/// `share id (10) ++ path` -> `LocalEntry`.
pub const LOCAL: TableDefinition<&[u8], &[u8]> = TableDefinition::new("local");
/// `share id (10) ++ seq (u64 BE)` -> path bytes (raw). Exactly one key per local entry with seq > 0.
pub const LOCAL_SEQ: TableDefinition<&[u8], &[u8]> = TableDefinition::new("local_seq");
/// `share id (10) ++ device id (32) ++ path` -> `FileRecord`.
pub const REMOTE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("remote");
/// `share id (10) ++ device id (32)` -> `RemoteState`.
pub const REMOTE_STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("remote_state");
/// `share id (10) ++ path ++ 0x00 ++ version id (u64 BE)` -> `VersionRecord`.
pub const VERSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("versions");
/// `prompt id (u64 BE)` -> `PromptRecord`.
pub const PROMPTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("prompts");

/// `note id (16)` -> `NoteRecord` (schema v2).
pub const NOTES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("notes");
/// `peer device id (32) ++ order (u64 BE)` -> note id (raw, 16 bytes): each conversation in the
/// order its notes were stored (schema v2). Exactly one key per note.
pub const NOTE_ORDER: TableDefinition<&[u8], &[u8]> = TableDefinition::new("note_order");
/// `device id (32)` -> empty: devices whose notes are refused (schema v2).
pub const MUTED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("muted");
/// `share id (10)` -> `ShareSettings` (schema v3).
pub const SHARE_SETTINGS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("share_settings");

/// `transfer id (16)` -> `TransferRecord`: one-shot sends, both directions (schema v3).
pub const TRANSFERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("transfers");
/// `device id (32)` -> empty: devices whose sends are accepted without a prompt (schema v3).
pub const AUTO_ACCEPT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("auto_accept");

/// `device id (32)` -> `RemovalRecord`: devices this one removed (refused from then on) and
/// devices that removed this one (schema v4). The id is the SHA-256 of the device's
/// certificate, so this is also the record of refused certificate fingerprints.
pub const REMOVED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("removed");

/// `device id (32)` -> `KdeDeviceRecord`: KDE Connect devices (schema v5). The id is derived
/// from the KDE Connect device id (see `KdeDeviceRecord::ferry_id`), never a certificate's
/// SHA-256, so no Ferry connection can ever claim one; the device's name and pairing live in
/// `devices` like every device's.
pub const KDECONNECT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kdeconnect");

/// `device id (32)` -> `LsDeviceRecord`: LocalSend devices (schema v6). The id is derived from
/// the certificate fingerprint the device showed (see `LsDeviceRecord::ferry_id`): a device
/// that comes back with another certificate is another device, never the same one re-keyed.
pub const LOCALSEND: TableDefinition<&[u8], &[u8]> = TableDefinition::new("localsend");

/// Every table, for migrations and for tests.
pub const ALL_TABLES: [TableDefinition<&[u8], &[u8]>; 19] = [
    META,
    DEVICES,
    SHARES,
    SHARE_STATE,
    LOCAL,
    LOCAL_SEQ,
    REMOTE,
    REMOTE_STATE,
    VERSIONS,
    PROMPTS,
    NOTES,
    NOTE_ORDER,
    MUTED,
    TRANSFERS,
    AUTO_ACCEPT,
    SHARE_SETTINGS,
    REMOVED,
    KDECONNECT,
    LOCALSEND,
];

/// `meta` key of the schema version (u32 BE).
pub const META_SCHEMA_VERSION: &str = "schema_version";
/// `meta` key of the next prompt id to hand out (u64 BE).
pub const META_NEXT_PROMPT_ID: &str = "next_prompt_id";
/// `meta` key of the next note order number to hand out (u64 BE).
pub const META_NEXT_NOTE_ORDER: &str = "next_note_order";
/// `meta` key of the index generation (u64 BE, none = 0): moved by every transaction that writes
/// a local or remote index, in that transaction, so what was computed from the indexes at
/// generation `g` is current while the stored generation is `g`, across restarts too.
pub const META_INDEX_GENERATION: &str = "index_generation";
/// `meta` key prefix of a share's pull mark, followed by the share id's bytes (see
/// `Store::pull_mark`).
pub const META_PULL_MARK: &str = "pull_mark/";

/// The `meta` key of `share`'s pull mark.
pub fn pull_mark_key(share: &ShareId) -> Vec<u8> {
    [META_PULL_MARK.as_bytes(), share.0.as_slice()].concat()
}

/// Prefix of each share's kept status counts (see [`crate::KeptCounts`]), followed by the
/// share id.
pub const META_KEPT_COUNTS: &str = "status_counts/";

pub fn kept_counts_key(share: &ShareId) -> Vec<u8> {
    [META_KEPT_COUNTS.as_bytes(), share.0.as_slice()].concat()
}

/// The stored index generation (see [`META_INDEX_GENERATION`]).
pub fn stored_index_generation(meta: &impl ReadableTable<&'static [u8], &'static [u8]>) -> Result<u64, StoreError> {
    let Some(v) = meta.get(META_INDEX_GENERATION.as_bytes())? else { return Ok(0) };
    let bytes: [u8; 8] = v
        .value()
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("index_generation is {} bytes, expected 8", v.value().len())))?;
    Ok(u64::from_be_bytes(bytes))
}

// ---------------------------------------------------------------------------------------------
// Values

/// The on-disk wrapper of every structured value. The variant tag comes first, so a value from
/// a future version fails to decode with an error instead of being misread.
#[derive(Serialize, Deserialize)]
pub enum Versioned<T> {
    V1(T),
}

/// Encoding-side twin of [`Versioned`] (same wire form) that borrows instead of owning.
#[derive(Serialize)]
enum VersionedRef<'a, T> {
    V1(&'a T),
}

pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(&VersionedRef::V1(value)).map_err(|source| StoreError::Encode { what, source })
}

pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    match postcard::from_bytes::<Versioned<T>>(bytes) {
        Ok(Versioned::V1(v)) => Ok(v),
        Err(source) => Err(StoreError::Decode { what, source }),
    }
}

/// [`decode`] of a view that may borrow from `bytes` and may stop before the value's end (the
/// leading fields of a longer value: see `lean.rs`).
pub(crate) fn decode_view<'a, T: serde::Deserialize<'a>>(what: &'static str, bytes: &'a [u8]) -> Result<T, StoreError> {
    match postcard::from_bytes::<Versioned<T>>(bytes) {
        Ok(Versioned::V1(v)) => Ok(v),
        Err(source) => Err(StoreError::Decode { what, source }),
    }
}

// ---------------------------------------------------------------------------------------------
// Keys

pub fn share_key(share: &ShareId) -> Vec<u8> {
    share.0.to_vec()
}

pub fn device_key(device: &DeviceId) -> Vec<u8> {
    device.0.to_vec()
}

pub fn local_key(share: &ShareId, path: &RelPath) -> Vec<u8> {
    let mut k = share_key(share);
    k.extend_from_slice(path.as_str().as_bytes());
    k
}

pub fn seq_key(share: &ShareId, seq: u64) -> Vec<u8> {
    let mut k = share_key(share);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The seq in a `LOCAL_SEQ` key.
pub fn seq_of_key(key: &[u8]) -> Result<u64, StoreError> {
    key.get(10..)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt(format!("seq index key of {} bytes", key.len())))
}

pub fn remote_state_key(share: &ShareId, device: &DeviceId) -> Vec<u8> {
    let mut k = share_key(share);
    k.extend_from_slice(&device.0);
    k
}

pub fn remote_key(share: &ShareId, device: &DeviceId, path: &RelPath) -> Vec<u8> {
    let mut k = remote_state_key(share, device);
    k.extend_from_slice(path.as_str().as_bytes());
    k
}

/// `share ++ path ++ 0x00`: the prefix of every version key of exactly this path.
pub fn versions_prefix(share: &ShareId, path: &RelPath) -> Vec<u8> {
    let mut k = local_key(share, path);
    k.push(0);
    k
}

pub fn version_key(share: &ShareId, path: &RelPath, id: u64) -> Vec<u8> {
    let mut k = versions_prefix(share, path);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub fn note_order_key(peer: &DeviceId, order: u64) -> Vec<u8> {
    let mut k = device_key(peer);
    k.extend_from_slice(&order.to_be_bytes());
    k
}

pub fn prompt_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Owned key bounds; see [`as_slices`].
pub type KeyBounds = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Bounds covering every key that starts with `prefix`.
pub fn prefix_bounds(prefix: &[u8]) -> KeyBounds {
    // The smallest key greater than every key with this prefix: drop trailing 0xFF bytes and
    // increment the last remaining one. An all-0xFF prefix has no such key.
    let mut upper = prefix.to_vec();
    while upper.last() == Some(&0xFF) {
        upper.pop();
    }
    let upper = match upper.last_mut() {
        Some(b) => {
            *b += 1;
            Bound::Excluded(upper)
        }
        None => Bound::Unbounded,
    };
    (Bound::Included(prefix.to_vec()), upper)
}

/// Borrowed form of bounds, as redb's `range` wants them.
pub fn as_slices(b: &KeyBounds) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (b.0.as_ref().map(Vec::as_slice), b.1.as_ref().map(Vec::as_slice))
}

/// Decodes every value in `bounds`, in key order.
pub fn scan<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bounds: &KeyBounds,
    what: &'static str,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for item in table.range::<&[u8]>(as_slices(bounds))? {
        let (_, v) = item?;
        out.push(decode(what, v.value())?);
    }
    Ok(out)
}

/// Decodes the value at `key`, if any.
pub fn get<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    match table.get(key)? {
        Some(v) => Ok(Some(decode(what, v.value())?)),
        None => Ok(None),
    }
}

/// Removes every key in `bounds` from `table`.
pub fn remove_range(
    table: &mut redb::Table<&'static [u8], &'static [u8]>,
    bounds: &KeyBounds,
) -> Result<(), StoreError> {
    table.retain_in::<&[u8], _>(as_slices(bounds), |_, _| false)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Migrations

/// Reads the schema version (0 for a fresh database) and upgrades it to [`SCHEMA_VERSION`]
/// inside `txn`. A version newer than ours is refused with [`StoreError::TooNew`].
pub fn migrate(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut version = read_schema_version(txn)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew { found: version, supported: SCHEMA_VERSION });
    }
    while version < SCHEMA_VERSION {
        match version {
            0 => migrate_v0_to_v1(txn)?,
            1 => migrate_v1_to_v2(txn)?,
            2 => migrate_v2_to_v3(txn)?,
            3 => migrate_v3_to_v4(txn)?,
            4 => migrate_v4_to_v5(txn)?,
            5 => migrate_v5_to_v6(txn)?,
            v => unreachable!("no migration from schema version {v}"),
        }
        version += 1;
        txn.open_table(META)?.insert(META_SCHEMA_VERSION.as_bytes(), version.to_be_bytes().as_slice())?;
    }
    Ok(())
}

fn read_schema_version(txn: &WriteTransaction) -> Result<u32, StoreError> {
    let meta = txn.open_table(META)?;
    let Some(v) = meta.get(META_SCHEMA_VERSION.as_bytes())? else {
        return Ok(0);
    };
    let bytes: [u8; 4] = v
        .value()
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("schema_version is {} bytes, expected 4", v.value().len())))?;
    Ok(u32::from_be_bytes(bytes))
}

/// v0 (empty database) -> v1: create every table.
fn migrate_v0_to_v1(txn: &WriteTransaction) -> Result<(), StoreError> {
    for table in ALL_TABLES {
        txn.open_table(table)?;
    }
    Ok(())
}

/// v1 -> v2: the notes tables.
fn migrate_v1_to_v2(txn: &WriteTransaction) -> Result<(), StoreError> {
    for table in [NOTES, NOTE_ORDER, MUTED] {
        txn.open_table(table)?;
    }
    Ok(())
}

/// v2 -> v3: the one-shot send tables and per-share settings (conflict policy, retention,
/// mass-delete guard).
fn migrate_v2_to_v3(txn: &WriteTransaction) -> Result<(), StoreError> {
    for table in [TRANSFERS, AUTO_ACCEPT, SHARE_SETTINGS] {
        txn.open_table(table)?;
    }
    Ok(())
}

/// v3 -> v4: the removed devices.
fn migrate_v3_to_v4(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(REMOVED)?;
    Ok(())
}

/// v4 -> v5: KDE Connect devices.
fn migrate_v4_to_v5(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(KDECONNECT)?;
    Ok(())
}

fn migrate_v5_to_v6(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(LOCALSEND)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_bounds_handle_ff() {
        assert_eq!(prefix_bounds(&[1, 0xFF]), (Bound::Included(vec![1, 0xFF]), Bound::Excluded(vec![2])));
        assert_eq!(prefix_bounds(&[0xFF, 0xFF]).1, Bound::Unbounded);
        assert_eq!(prefix_bounds(b"ab").1, Bound::Excluded(b"ac".to_vec()));
    }

    #[test]
    fn versioned_roundtrip_and_unknown_tag() {
        let bytes = encode("n", &42u64).unwrap();
        assert_eq!(bytes[0], 0, "V1 is tag 0");
        assert_eq!(decode::<u64>("n", &bytes).unwrap(), 42);
        let mut future = bytes.clone();
        future[0] = 1; // a V2 this build does not know
        assert!(matches!(decode::<u64>("n", &future), Err(StoreError::Decode { what: "n", .. })));
        assert!(decode::<u64>("n", &[]).is_err());
    }
}
