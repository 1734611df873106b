//! What a device knows about one path in a share.

use serde::{Deserialize, Serialize};

use crate::{ChunkHash, DeviceId, RelPath, Seq, VersionVector};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    File,
    Dir,
    /// Synced as a link; the target is stored verbatim and never followed.
    Symlink {
        target: String,
    },
}

/// One content-defined chunk of a file: where it starts is the sum of the lengths before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkInfo {
    pub hash: ChunkHash,
    pub len: u32,
}

/// A device's record of one path: content, metadata and the version that produced it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: RelPath,
    pub kind: FileKind,
    /// A tombstone: the path was deleted at `version`.
    pub deleted: bool,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    pub executable: bool,
    pub version: VersionVector,
    /// Position in the sending device's index (not part of the content).
    pub seq: Seq,
    /// BLAKE3 of the whole content (files), of the target (links), zero otherwise.
    pub hash: ChunkHash,
    pub chunks: Vec<ChunkInfo>,
    /// The device whose change produced this version.
    pub modified_by: DeviceId,
}

impl FileRecord {
    /// True when both describe the same thing on disk (ignoring version, seq and mtime).
    pub fn same_content(&self, other: &FileRecord) -> bool {
        self.deleted == other.deleted
            && (self.deleted
                || (self.kind == other.kind && self.hash == other.hash && self.executable == other.executable))
    }

    /// Byte offset of each chunk.
    pub fn chunk_offsets(&self) -> impl Iterator<Item = (u64, ChunkInfo)> + '_ {
        let mut off = 0u64;
        self.chunks.iter().map(move |c| {
            let o = off;
            off += c.len as u64;
            (o, *c)
        })
    }

    pub fn is_file(&self) -> bool {
        !self.deleted && self.kind == FileKind::File
    }

    /// Structural checks on a record from a peer: chunk lengths add up to the size, and
    /// nothing claims to be larger than the chunk list.
    pub fn check(&self) -> Result<(), String> {
        if self.deleted {
            return Ok(());
        }
        match &self.kind {
            FileKind::File => {
                let sum: u64 = self.chunks.iter().map(|c| c.len as u64).sum();
                if sum != self.size {
                    return Err(format!("{}: chunks add up to {sum}, size says {}", self.path, self.size));
                }
                if self.chunks.iter().any(|c| c.len == 0) {
                    return Err(format!("{}: empty chunk", self.path));
                }
            }
            FileKind::Dir => {}
            FileKind::Symlink { target } => {
                if target.is_empty() || target.len() > 4096 || target.contains('\0') {
                    return Err(format!("{}: bad link target", self.path));
                }
            }
        }
        Ok(())
    }
}

/// How a share treats changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ShareMode {
    /// Send local changes and apply remote ones.
    #[default]
    SendReceive,
    /// Send local changes; never apply remote ones.
    SendOnly,
    /// Apply remote changes; never send local ones.
    ReceiveOnly,
}

impl ShareMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            ShareMode::SendReceive => "send-receive",
            ShareMode::SendOnly => "send-only",
            ShareMode::ReceiveOnly => "receive-only",
        }
    }
    pub fn sends(&self) -> bool {
        *self != ShareMode::ReceiveOnly
    }
    pub fn receives(&self) -> bool {
        *self != ShareMode::SendOnly
    }
}

impl std::str::FromStr for ShareMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "send-receive" | "sendreceive" => Ok(ShareMode::SendReceive),
            "send-only" | "sendonly" => Ok(ShareMode::SendOnly),
            "receive-only" | "receiveonly" => Ok(ShareMode::ReceiveOnly),
            _ => Err(format!("unknown mode {s:?} (expected send-receive, send-only or receive-only)")),
        }
    }
}
