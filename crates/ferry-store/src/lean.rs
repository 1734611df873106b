//! Lean reads of local entries: the few fields a scan asks about, decoded without building the
//! rest (the version vector, the chunk list, the path when it is not needed).
//!
//! A restart's scan asks the index about every path of the share, then lists every live path
//! to find the deleted ones: a million full decodes each, about four allocations apiece, for a
//! size, an mtime and an inode. These views read the same bytes as [`LocalEntry`] (postcard
//! writes a struct as its fields in order, nested structs inline, and ignores what follows the
//! last field it is asked for), skipping the fields they do not need; the tests hold them to
//! the full decode of the same value.

use std::fmt;
use std::marker::PhantomData;

use ferry_proto::{ChunkHash, ChunkInfo, DeviceId, FileKind, RelPath, Seq};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

#[cfg(doc)]
use crate::LocalEntry;

/// What a scan compares with the disk: a local entry's stat facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalStat {
    pub kind: FileKind,
    /// A tombstone.
    pub deleted: bool,
    pub size: u64,
    pub mtime_ns: i64,
    pub executable: bool,
    pub inode: u64,
}

/// [`LocalEntry`] read as far as [`LocalStat`] needs: every field in order, the unused ones
/// skipped without allocating.
#[derive(serde::Deserialize)]
pub(crate) struct StatView<'a> {
    #[serde(borrow)]
    _path: &'a str,
    kind: FileKind,
    deleted: bool,
    size: u64,
    mtime_ns: i64,
    executable: bool,
    _version: SkipMap<DeviceId, u64>,
    _seq: Seq,
    _hash: ChunkHash,
    _chunks: SkipSeq<ChunkInfo>,
    _modified_by: DeviceId,
    inode: u64,
}

impl From<StatView<'_>> for LocalStat {
    fn from(v: StatView<'_>) -> LocalStat {
        LocalStat {
            kind: v.kind,
            deleted: v.deleted,
            size: v.size,
            mtime_ns: v.mtime_ns,
            executable: v.executable,
            inode: v.inode,
        }
    }
}

/// [`LocalEntry`] read as far as its path and whether it is a tombstone (the first fields).
#[derive(serde::Deserialize)]
pub(crate) struct HeadView {
    pub(crate) path: RelPath,
    _kind: FileKind,
    pub(crate) deleted: bool,
}

/// A map read to its end and dropped entry by entry.
struct SkipMap<K, V>(PhantomData<(K, V)>);

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for SkipMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Skip<K, V>(PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for Skip<K, V> {
            type Value = SkipMap<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<K, V>()?.is_some() {}
                Ok(SkipMap(PhantomData))
            }
        }
        d.deserialize_map(Skip(PhantomData))
    }
}

/// A sequence read to its end and dropped element by element.
struct SkipSeq<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for SkipSeq<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Skip<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Skip<T> {
            type Value = SkipSeq<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<T>()?.is_some() {}
                Ok(SkipSeq(PhantomData))
            }
        }
        d.deserialize_seq(Skip(PhantomData))
    }
}
