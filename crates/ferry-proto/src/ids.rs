//! Typed identifiers. Bare byte arrays never cross a crate boundary.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("not a valid {kind}: {reason}")]
    Invalid { kind: &'static str, reason: String },
}

/// A device's identity: SHA-256 of its certificate's DER encoding.
///
/// Shown as base32 in groups of seven (`ABCDEFG-HIJKLMN-...`), like Syncthing, because people
/// compare and type these. Parsing accepts any case and ignores dashes and spaces.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceId(pub [u8; 32]);

impl DeviceId {
    /// Group length of the display form.
    const GROUP: usize = 7;

    /// The undashed base32 form (52 characters).
    pub fn compact(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }

    /// The first group: enough to tell a person's devices apart in logs and file names.
    pub fn short(&self) -> String {
        self.compact()[..Self::GROUP].to_string()
    }

    /// True when `prefix` (dashes and case ignored) starts this id's compact form.
    pub fn matches_prefix(&self, prefix: &str) -> bool {
        let norm = normalize(prefix);
        !norm.is_empty() && self.compact().starts_with(&norm)
    }
}

fn normalize(s: &str) -> String {
    s.chars().filter(|c| *c != '-' && !c.is_whitespace()).collect::<String>().to_ascii_uppercase()
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.compact();
        let groups: Vec<&str> =
            s.as_bytes().chunks(Self::GROUP).map(|c| std::str::from_utf8(c).unwrap_or("")).collect();
        f.write_str(&groups.join("-"))
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.short())
    }
}

impl FromStr for DeviceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let norm = normalize(s);
        let bytes = BASE32_NOPAD
            .decode(norm.as_bytes())
            .map_err(|e| IdError::Invalid { kind: "device id", reason: e.to_string() })?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| IdError::Invalid { kind: "device id", reason: "expected 52 base32 characters".into() })?;
        Ok(DeviceId(arr))
    }
}

/// A share's identity, random at creation and the same on every member device.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShareId(pub [u8; 10]);

impl ShareId {
    pub fn random() -> Self {
        ShareId(rand::random())
    }
}

impl fmt::Display for ShareId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = BASE32_NOPAD.encode(&self.0).to_ascii_lowercase();
        write!(f, "{}-{}", &s[..8], &s[8..])
    }
}

impl fmt::Debug for ShareId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShareId({self})")
    }
}

impl FromStr for ShareId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let norm = normalize(s);
        let bytes = BASE32_NOPAD
            .decode(norm.as_bytes())
            .map_err(|e| IdError::Invalid { kind: "share id", reason: e.to_string() })?;
        let arr: [u8; 10] = bytes
            .try_into()
            .map_err(|_| IdError::Invalid { kind: "share id", reason: "expected 16 base32 characters".into() })?;
        Ok(ShareId(arr))
    }
}

/// BLAKE3 hash of a chunk or of a whole file.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChunkHash(pub [u8; 32]);

impl ChunkHash {
    pub fn of(data: &[u8]) -> Self {
        ChunkHash(*blake3::hash(data).as_bytes())
    }
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for ChunkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkHash({})", &self.to_hex()[..12])
    }
}

impl From<blake3::Hash> for ChunkHash {
    fn from(h: blake3::Hash) -> Self {
        ChunkHash(*h.as_bytes())
    }
}

/// A note's identity, random, used to deduplicate redeliveries.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct NoteId(pub [u8; 16]);

/// A one-shot file send's identity, random, chosen by the sender; both sides key their record of
/// the transfer by it, so a redelivered offer is recognised.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct TransferId(pub [u8; 16]);

impl TransferId {
    /// 32 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Position in a device's index of a share: every local change takes the next one, so a peer
/// that has seen everything up to `n` asks only for what came after.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug, Default)]
pub struct Seq(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_roundtrips_through_display() {
        let id = DeviceId([7u8; 32]);
        let shown = id.to_string();
        assert_eq!(shown.split('-').count(), 8);
        assert_eq!(shown.parse::<DeviceId>().unwrap(), id);
        assert_eq!(shown.to_lowercase().parse::<DeviceId>().unwrap(), id);
        assert!(id.matches_prefix(&shown[..5].to_lowercase()));
        assert!(!id.matches_prefix(""));
    }

    #[test]
    fn bad_device_ids_are_refused() {
        assert!("ABC".parse::<DeviceId>().is_err());
        assert!("!!!!".parse::<DeviceId>().is_err());
    }

    #[test]
    fn share_id_roundtrips() {
        let id = ShareId::random();
        assert_eq!(id.to_string().parse::<ShareId>().unwrap(), id);
    }
}
