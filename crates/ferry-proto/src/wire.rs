//! Wire messages and their framing.
//!
//! Every stream carries frames: a 4-byte big-endian length, then a postcard-encoded
//! [`Message`]. The length is checked against [`MAX_FRAME`] before any buffer is allocated.
//! The first exchange on a connection is a [`Hello`] each way; the protocol version in it is
//! checked before anything else is read.

use serde::{Deserialize, Serialize};

use crate::{ChunkHash, ChunkInfo, DeviceId, FileRecord, NoteId, RelPath, ShareId, TransferId};

/// Bumped on any incompatible change to [`Message`]. v2: `BlocksRequest`/`Blocks` and
/// `IndexUpdateCompact`, which a v1 device would not decode (it would drop the connection).
/// v3: `Progress` (a v2 device would not decode it and would drop the connection; with the
/// bump it refuses the handshake instead, with a message naming both versions).
pub const PROTOCOL_VERSION: u32 = 3;
/// Negotiated in TLS; a peer that does not speak it fails the handshake.
pub const ALPN: &[u8] = b"ferry/1";
/// Largest frame accepted: a block (1 MiB at most, see the chunker) or an index batch,
/// with room to spare, but small enough that a hostile length costs nothing.
pub const MAX_FRAME: usize = 8 << 20;
/// Longest device name or owner accepted from a peer, in bytes.
pub const MAX_NAME: usize = 128;
/// Longest note text accepted, in bytes.
pub const MAX_NOTE: usize = 64 << 10;
/// Largest block a peer may ask for.
pub const MAX_BLOCK: u32 = 4 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub name: String,
    pub owner: String,
}

/// One share as the sender sees it, sent to each member device on connect and on change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareAnnounce {
    pub share: ShareId,
    pub label: String,
    /// The sender's index epoch: changes when its index of this share starts over.
    pub my_epoch: u64,
    /// The receiver's epoch and last sequence the sender holds from the receiver, so the
    /// receiver sends only what is newer (or everything, if the epoch differs).
    pub your_epoch: u64,
    pub your_seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    NotPaired,
    NotFound,
    Refused,
    BadRequest,
    Internal,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Hello(Hello),
    /// The only request an unpaired device may make.
    PairRequest {
        name: String,
        owner: String,
    },
    PairResponse {
        accepted: bool,
        message: String,
    },
    /// The shares the sender has with the receiver as a member; an unknown one is an offer.
    ClusterConfig {
        shares: Vec<ShareAnnounce>,
    },
    /// Records of the sender's index with sequence numbers after what the receiver holds.
    IndexUpdate {
        share: ShareId,
        epoch: u64,
        records: Vec<FileRecord>,
    },
    Ack,
    BlockRequest {
        share: ShareId,
        path: RelPath,
        offset: u64,
        len: u32,
        hash: ChunkHash,
    },
    Block {
        /// Encoded as bytes (one copy), not as a sequence of u8 (a call per byte); postcard
        /// writes both the same way, so the wire format does not change.
        #[serde(with = "raw_bytes")]
        data: Vec<u8>,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    /// Sent by a device that removed the other from its paired list.
    Unpaired {
        device: DeviceId,
    },
    /// A quick note from the sender's user; answered by [`Message::NoteAck`] once stored (or
    /// already stored: redeliveries are acked again), or an `Error` if refused.
    Note {
        id: NoteId,
        sent_at: i64,
        text: String,
    },
    NoteAck {
        id: NoteId,
    },
    /// The receiver's user opened the note `id`; answered by `Ack`.
    NoteRead {
        id: NoteId,
    },
    /// A one-shot send: files (and empty folders) the sender offers. Answered by `Ack` once the
    /// receiver recorded it (or already had it), or an `Error` if refused. The decision comes
    /// later as a [`Message::SendUpdate`]; on accept the receiver pulls the content with
    /// [`Message::SendBlockRequest`].
    SendOffer {
        id: TransferId,
        files: Vec<SendFile>,
        dirs: Vec<RelPath>,
    },
    /// One chunk of file number `file` of an accepted send; answered by `Block` or `Error`.
    SendBlockRequest {
        id: TransferId,
        file: u32,
        offset: u64,
        len: u32,
        hash: ChunkHash,
    },
    /// The receiver tells the sender how a send goes (or the sender cancels it); answered by `Ack`.
    SendUpdate {
        id: TransferId,
        update: SendUpdate,
    },
    /// Many small blocks of one share in one round trip (the whole content of small files):
    /// at most [`MAX_BATCH_BLOCKS`] blocks adding up to at most [`MAX_BATCH_BYTES`]. Answered
    /// by `Blocks` with one reply per block, in order, or an `Error` for the whole request.
    BlocksRequest {
        share: ShareId,
        blocks: Vec<BlockRef>,
    },
    Blocks {
        blocks: Vec<BlockReply>,
    },
    /// An [`Message::IndexUpdate`] in which some file records come without their chunk list:
    /// for each entry of `chunks_from`, the receiver rebuilds it from content it already holds
    /// (see [`ChunksFrom`]). Big files' chunk lists are most of an index's bytes (a 1 GiB file
    /// has ~4,000 chunks, ~150 KiB), and after a rename, an edit or the echo of an applied
    /// record the receiver already has all or most of them. Answered by `Ack`, or by an `Error`
    /// with [`ErrorCode::NotFound`] (nothing stored) if a reference does not resolve, in which
    /// case the sender sends the same records again as a plain `IndexUpdate`.
    IndexUpdateCompact {
        share: ShareId,
        epoch: u64,
        records: Vec<FileRecord>,
        chunks_from: Vec<ChunksFrom>,
    },
    /// Bytes `offset..offset + len` of content the receiver keeps of `path` whose whole-file
    /// hash is `hash`: a version it archived, or its live file. How one device of a share gets
    /// an old version only another device kept (history spans the devices of a share). `len`
    /// 0 only asks whether the receiver has that content. Answered by `Block` (at most
    /// [`MAX_BLOCK`] bytes) or an `Error` ([`ErrorCode::NotFound`] when it does not keep it).
    /// The asker checks the whole-file hash when it has every byte.
    VersionBlockRequest {
        share: ShareId,
        path: RelPath,
        hash: ChunkHash,
        offset: u64,
        len: u32,
    },
    /// The sender is downloading `path` of `share`, the content whose whole-file hash is
    /// `content`, and holds (written and verified) the chunks whose indexes (in that content's
    /// chunk list) lie in the half-open ranges `have`: the receiver may ask it for those with
    /// `BlockRequest`s before the file is whole. An empty `have`: the download ended (finished
    /// or abandoned), forget it. Sent to the share's other members while a download runs;
    /// answered by `Ack`. Checked with [`Message::check_progress`].
    Progress {
        share: ShareId,
        path: RelPath,
        content: ChunkHash,
        have: Vec<(u32, u32)>,
    },
}

/// Most ranges in one [`Message::Progress`]: a download in progress holds one or two (it
/// writes in a rotated file order), so this is room to spare while keeping a hostile message
/// a few hundred bytes.
pub const MAX_PROGRESS_RANGES: usize = 16;
/// Largest chunk index a [`Message::Progress`] may name: a 1 TiB file of the chunker's
/// smallest chunks (64 KiB) has 2^24 of them.
pub const MAX_PROGRESS_CHUNKS: u32 = 1 << 24;

/// Where the receiver of an [`Message::IndexUpdateCompact`] finds the chunk list of
/// `records[record]` (sent with an empty one): take the chunk list of content the receiver
/// holds at `base_path` with whole-file hash `base_hash` and `base_chunks` chunks (its own
/// index, or the sender's record it stored before this message, or an earlier record of the
/// same message), keep its first `prefix` and last `suffix` chunks and put `middle` between them.
/// An unchanged file (a rename, an echo) is `prefix = base_chunks`, `suffix = 0`, no middle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunksFrom {
    pub record: u32,
    pub base_path: RelPath,
    pub base_hash: ChunkHash,
    pub base_chunks: u32,
    pub prefix: u32,
    pub suffix: u32,
    pub middle: Vec<ChunkInfo>,
}

impl ChunksFrom {
    /// The shortest description of `new` as an edit of `base`: the longest common prefix and
    /// then the longest common suffix of what is left.
    pub fn between(
        record: u32,
        base_path: RelPath,
        base_hash: ChunkHash,
        base: &[ChunkInfo],
        new: &[ChunkInfo],
    ) -> Self {
        let prefix = base.iter().zip(new).take_while(|(a, b)| a == b).count();
        let suffix = base[prefix..].iter().rev().zip(new[prefix..].iter().rev()).take_while(|(a, b)| a == b).count();
        ChunksFrom {
            record,
            base_path,
            base_hash,
            base_chunks: base.len() as u32,
            prefix: prefix as u32,
            suffix: suffix as u32,
            middle: new[prefix..new.len() - suffix].to_vec(),
        }
    }

    /// Chunks of `new` this reference saves sending.
    pub fn saved(&self) -> u32 {
        self.prefix + self.suffix
    }

    /// The chunk list this reference describes, given the base's; an error if `base` is not the
    /// list it was made from (length) or the numbers do not fit it.
    pub fn apply(&self, base: &[ChunkInfo]) -> Result<Vec<ChunkInfo>, String> {
        let n = base.len();
        if n != self.base_chunks as usize {
            return Err(format!("{}: base has {n} chunks, the reference says {}", self.base_path, self.base_chunks));
        }
        let (p, s) = (self.prefix as usize, self.suffix as usize);
        if p.checked_add(s).is_none_or(|k| k > n) {
            return Err(format!("{}: keeps {p} + {s} of {n} chunks", self.base_path));
        }
        let mut out = Vec::with_capacity(p + self.middle.len() + s);
        out.extend_from_slice(&base[..p]);
        out.extend_from_slice(&self.middle);
        out.extend_from_slice(&base[n - s..]);
        Ok(out)
    }
}

/// Most blocks in one [`Message::BlocksRequest`].
pub const MAX_BATCH_BLOCKS: usize = 256;
/// Most bytes asked for in one [`Message::BlocksRequest`]: the answer stays well inside a frame.
pub const MAX_BATCH_BYTES: u64 = 4 << 20;

/// One block of a [`Message::BlocksRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRef {
    pub path: RelPath,
    pub offset: u64,
    pub len: u32,
    pub hash: ChunkHash,
}

/// The answer for one block of a [`Message::BlocksRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockReply {
    Data(#[serde(with = "raw_bytes")] Vec<u8>),
    /// Not served (changed, gone, refused), with the reason.
    Missing(String),
}

impl Message {
    /// Checks a [`Message::Progress`]'s ranges: at most [`MAX_PROGRESS_RANGES`], each
    /// non-empty, in ascending order without overlap, below [`MAX_PROGRESS_CHUNKS`].
    pub fn check_progress(have: &[(u32, u32)]) -> Result<(), String> {
        if have.len() > MAX_PROGRESS_RANGES {
            return Err(format!("a progress holds at most {MAX_PROGRESS_RANGES} ranges, not {}", have.len()));
        }
        let mut floor = 0u32;
        for &(start, end) in have {
            if start >= end || start < floor || end > MAX_PROGRESS_CHUNKS {
                return Err(format!("bad chunk range {start}..{end} in a progress"));
            }
            floor = end;
        }
        Ok(())
    }

    /// Checks a [`Message::BlocksRequest`]'s size limits (count, each length, total).
    pub fn check_blocks_request(blocks: &[BlockRef]) -> Result<(), String> {
        if blocks.is_empty() || blocks.len() > MAX_BATCH_BLOCKS {
            return Err(format!("a batch holds 1..={MAX_BATCH_BLOCKS} blocks, not {}", blocks.len()));
        }
        let mut total = 0u64;
        for b in blocks {
            if b.len == 0 || b.len > MAX_BLOCK {
                return Err("bad block length".into());
            }
            total += b.len as u64;
        }
        if total > MAX_BATCH_BYTES {
            return Err(format!("a batch asks for at most {MAX_BATCH_BYTES} bytes, not {total}"));
        }
        Ok(())
    }
}

/// Largest number of files in one send offer: keeps the offer well inside one frame.
pub const MAX_SEND_FILES: usize = 10_000;
/// Largest number of folders in one send offer.
pub const MAX_SEND_DIRS: usize = 10_000;
/// Largest total size of one send (1 TiB): a sanity bound, far above what a LAN send carries.
pub const MAX_SEND_BYTES: u64 = 1 << 40;

/// One file of a [`Message::SendOffer`]: where it goes (relative to the receiver's inbox), its
/// content (size, whole-file hash, content-defined chunks) and metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendFile {
    pub path: RelPath,
    pub size: u64,
    pub mtime_ns: i64,
    pub executable: bool,
    pub hash: ChunkHash,
    pub chunks: Vec<ChunkInfo>,
}

impl SendFile {
    /// Checks the chunk list against the size: every chunk 1..=[`MAX_BLOCK`] bytes, adding up.
    pub fn check(&self) -> Result<(), String> {
        let mut sum = 0u64;
        for c in &self.chunks {
            if c.len == 0 || c.len > MAX_BLOCK {
                return Err(format!("{}: a chunk of {} bytes", self.path, c.len));
            }
            sum += u64::from(c.len);
        }
        if sum != self.size {
            return Err(format!("{}: chunks add up to {sum} bytes, not {}", self.path, self.size));
        }
        Ok(())
    }

    /// Byte offset of each chunk.
    pub fn chunk_offsets(&self) -> impl Iterator<Item = (u64, ChunkInfo)> + '_ {
        self.chunks.iter().scan(0u64, |off, c| {
            let at = *off;
            *off += u64::from(c.len);
            Some((at, *c))
        })
    }
}

/// How a send goes, as told by the receiver (`Accepted`, `Rejected`, `Progress`, `Done`,
/// `Failed`) or the sender (`Failed`, when a source file changed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendUpdate {
    Accepted,
    Rejected(String),
    /// Bytes the receiver holds, verified.
    Progress(u64),
    Done,
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(#[from] postcard::Error),
}

/// The frame for `msg`: length prefix and body (encoded in place after a header placeholder).
pub fn encode(msg: &Message) -> Result<Vec<u8>, FrameError> {
    let mut out = postcard::to_extend(msg, vec![0u8; 4]).map_err(FrameError::Malformed)?;
    let len = out.len() - 4;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// A block's payload as one byte string instead of a sequence of `u8` elements: postcard
/// writes exactly the same bytes either way (a varint length, then the bytes), but without a
/// serde call per byte, which made encoding and decoding blocks the largest CPU cost of a
/// transfer.
mod raw_bytes {
    use std::fmt;

    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Bytes;
        impl<'de> Visitor<'de> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                // Capacity bounded by the frame cap, whatever a hostile length hint says.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(super::MAX_FRAME));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(Bytes)
    }
}

/// The body length announced by a header, refused if over the cap.
pub fn body_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

pub fn decode(body: &[u8]) -> Result<Message, FrameError> {
    Ok(postcard::from_bytes(body)?)
}

#[cfg(test)]
mod tests;
