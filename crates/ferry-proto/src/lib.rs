//! Ferry's vocabulary, shared by every other crate: typed IDs ([`DeviceId`], [`ShareId`],
//! [`ChunkHash`], [`Seq`]), validated share-relative paths ([`RelPath`]), version vectors,
//! file records, and the wire messages with their length-prefixed framing.
//!
//! This crate does no IO. Everything a peer sends is decoded here first, so validation lives
//! here too: a [`RelPath`] can only be built from a string that is safe to join onto a share
//! root, and a frame's length is checked against [`MAX_FRAME`] before anything is allocated.

mod ids;
mod path;
mod policy;
mod record;
mod version;
pub mod wire;

pub use ids::{ChunkHash, DeviceId, IdError, NoteId, Seq, ShareId, TransferId};
pub use path::{FERRY_DIR, NameProblem, PathError, RelPath, System, TEMP_PREFIX};
pub use policy::{ConflictPolicy, Retention};
pub use record::{ChunkInfo, FileKind, FileRecord, ShareMode};
pub use version::{Ordering as VersionOrdering, VersionVector};
pub use wire::{MAX_FRAME, PROTOCOL_VERSION};
