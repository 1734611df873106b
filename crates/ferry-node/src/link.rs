//! [`PeerLink`]: one connected, paired device. It owns the connection and the tasks that serve
//! it (the index senders, one per shared share); the request side (ping, block fetches) lives
//! here so the modules that fetch (share pulls, sends, notes) depend on the link, not on the
//! module that accepts and serves connections (`peer`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferry_net::PeerConn;
use ferry_proto::wire::{BlockRef, BlockReply, Message, ShareAnnounce};
use ferry_proto::{ChunkHash, DeviceId, RelPath, ShareId};
use tokio::task::JoinHandle;

use crate::api::{ApiError, ApiResult, ErrorCode};

/// Time for a peer to answer an ordinary request.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A paired device we are connected to.
pub(crate) struct PeerLink {
    pub id: DeviceId,
    pub conn: PeerConn,
    /// Index senders by share.
    pub(crate) senders: Mutex<HashMap<ShareId, JoinHandle<()>>>,
    /// The shares this peer last announced to us.
    pub(crate) announced: Mutex<HashMap<ShareId, ShareAnnounce>>,
    /// The file this peer last fetched blocks of.
    pub(crate) blocks: crate::block_cache::BlockCache,
    /// What this peer told of its downloads in progress (see `swarm`).
    pub(crate) heard: crate::swarm::Heard,
}

impl PeerLink {
    pub async fn ping(&self) -> ApiResult<Duration> {
        let nonce: u64 = rand::random();
        let start = Instant::now();
        match self.conn.request(&Message::Ping { nonce }, REQUEST_TIMEOUT).await {
            Ok(Message::Pong { nonce: n }) if n == nonce => Ok(start.elapsed()),
            Ok(other) => Err(ApiError::internal(format!("unexpected answer to ping: {other:?}"))),
            Err(e) => Err(ApiError::new(ErrorCode::Unreachable, format!("ping failed: {e}"))),
        }
    }

    /// Fetches one block of `path` from this peer. The bytes are not checked here: the fetch
    /// pipeline (`fetch::fill`) checks every chunk against its hash, whatever its origin.
    pub async fn fetch_block(
        &self,
        share: ShareId,
        path: &RelPath,
        offset: u64,
        len: u32,
        hash: ChunkHash,
    ) -> Result<Vec<u8>, String> {
        let req = Message::BlockRequest { share, path: path.clone(), offset, len, hash };
        match self.conn.request(&req, REQUEST_TIMEOUT).await {
            Ok(Message::Block { data }) => Ok(data),
            Ok(Message::Error { message, .. }) => Err(message),
            Ok(other) => Err(format!("unexpected answer to a block request: {}", msg_name(&other))),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Fetches bytes of content this peer keeps of `path` with whole-file hash `hash` (an old
    /// version it archived, or its live file): see [`Message::VersionBlockRequest`]. `len` 0
    /// asks only whether it keeps it (`Ok` with no bytes). Unchecked here: the caller checks the
    /// whole-file hash when it has every byte.
    pub async fn fetch_version_block(
        &self,
        share: ShareId,
        path: &RelPath,
        hash: ChunkHash,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, String> {
        let req = Message::VersionBlockRequest { share, path: path.clone(), hash, offset, len };
        match self.conn.request(&req, REQUEST_TIMEOUT).await {
            Ok(Message::Block { data }) if data.len() == len as usize => Ok(data),
            Ok(Message::Block { data }) => Err(format!("{} sent {} bytes for {len}", self.id.short(), data.len())),
            Ok(Message::Error { message, .. }) => Err(message),
            Ok(other) => Err(format!("unexpected answer to a version request: {}", msg_name(&other))),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Fetches a batch of blocks (see [`Message::BlocksRequest`]) in one round trip. Each
    /// result is checked (length and hash); a block the peer did not serve is an `Err` with its
    /// reason, so the caller can fetch it another way.
    pub async fn fetch_blocks(
        &self,
        share: ShareId,
        blocks: &[BlockRef],
    ) -> Result<Vec<Result<Vec<u8>, String>>, String> {
        let req = Message::BlocksRequest { share, blocks: blocks.to_vec() };
        match self.conn.request(&req, REQUEST_TIMEOUT).await {
            Ok(Message::Blocks { blocks: replies }) if replies.len() == blocks.len() => Ok(replies
                .into_iter()
                .zip(blocks)
                .map(|(r, b)| match r {
                    BlockReply::Data(d) if d.len() == b.len as usize && ChunkHash::of(&d) == b.hash => Ok(d),
                    BlockReply::Data(_) => {
                        Err(format!("{} sent a block of {} that does not match its hash", self.id.short(), b.path))
                    }
                    BlockReply::Missing(why) => Err(why),
                })
                .collect()),
            Ok(Message::Blocks { .. }) => {
                Err(format!("{} answered a batch with the wrong number of blocks", self.id.short()))
            }
            Ok(Message::Error { message, .. }) => Err(message),
            Ok(other) => Err(format!("unexpected answer to a batch request: {}", msg_name(&other))),
            Err(e) => Err(e.to_string()),
        }
    }

    pub(crate) fn stop_senders(&self) {
        for (_, h) in self.senders.lock().unwrap().drain() {
            h.abort();
        }
    }
}

pub(crate) fn msg_name(m: &Message) -> &'static str {
    match m {
        Message::Hello(_) => "Hello",
        Message::PairRequest { .. } => "PairRequest",
        Message::PairResponse { .. } => "PairResponse",
        Message::ClusterConfig { .. } => "ClusterConfig",
        Message::IndexUpdate { .. } => "IndexUpdate",
        Message::IndexUpdateCompact { .. } => "IndexUpdateCompact",
        Message::Ack => "Ack",
        Message::BlockRequest { .. } => "BlockRequest",
        Message::Block { .. } => "Block",
        Message::Ping { .. } => "Ping",
        Message::Pong { .. } => "Pong",
        Message::Error { .. } => "Error",
        Message::Unpaired { .. } => "Unpaired",
        Message::Note { .. } => "Note",
        Message::NoteAck { .. } => "NoteAck",
        Message::NoteRead { .. } => "NoteRead",
        Message::SendOffer { .. } => "SendOffer",
        Message::SendBlockRequest { .. } => "SendBlockRequest",
        Message::SendUpdate { .. } => "SendUpdate",
        Message::BlocksRequest { .. } => "BlocksRequest",
        Message::Blocks { .. } => "Blocks",
        Message::VersionBlockRequest { .. } => "VersionBlockRequest",
        Message::Progress { .. } => "Progress",
    }
}
