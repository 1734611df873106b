//! Target `message`: a frame body as the node decodes it ([`wire::decode`], postcard into a
//! [`Message`]), for every variant (the seeds hold one valid encoding of each).
//!
//! Asserts: no panic; what decodes re-encodes, decodes again to the same value and encodes to
//! the same bytes (canonical); the framed reader takes the re-encoded frame back whole; every
//! path inside is a safe [`ferry_proto::RelPath`] (deserialization validates, it cannot be
//! bypassed); and the structural checks the node runs on a message (record, send offer and
//! batch checks, chunk offsets) never panic, whatever numbers the peer sent.

use ferry_proto::wire::{self, Message};

pub fn check(data: &[u8]) {
    let Ok(msg) = wire::decode(data) else { return };
    round_trip(&msg);
    for path in paths(&msg) {
        crate::relpath::assert_safe(path);
    }
    receiver_checks(&msg);
}

/// Encode, decode, encode: the same value and the same bytes; the frame reader agrees.
pub fn round_trip(msg: &Message) {
    let frame = wire::encode(msg).expect("a decoded message encodes");
    let again = wire::decode(&frame[4..]).expect("an encoded message decodes");
    assert_eq!(&again, msg, "decode(encode(m)) != m");
    assert_eq!(wire::encode(&again).expect("encodes"), frame, "encoding is not canonical");
    let read = ferry_net::decode_frame(&frame).expect("the frame reader takes an encoded frame");
    assert_eq!(read, Some((again, frame.len())), "the frame reader disagrees with wire::decode");
}

/// The checks a receiver runs before acting on a message: they must refuse, never panic.
fn receiver_checks(msg: &Message) {
    match msg {
        Message::IndexUpdate { records, .. } | Message::IndexUpdateCompact { records, .. } => {
            for r in records {
                let _ = r.check();
                let _ = r.chunk_offsets().last();
            }
        }
        Message::BlocksRequest { blocks, .. } => {
            let _ = Message::check_blocks_request(blocks);
        }
        Message::Progress { have, .. } => {
            let _ = Message::check_progress(have);
        }
        Message::SendOffer { files, .. } => {
            for f in files {
                let _ = f.check();
                let _ = f.chunk_offsets().last();
            }
        }
        _ => {}
    }
    if let Message::IndexUpdateCompact { chunks_from, .. } = msg {
        for c in chunks_from {
            // Against an empty base (what a receiver holding nothing has) and a base of the
            // declared length when small enough to build.
            let _ = c.apply(&[]);
            if c.base_chunks <= 64 {
                let base = vec![ferry_proto::ChunkInfo { hash: c.base_hash, len: 1 }; c.base_chunks as usize];
                if let Ok(list) = c.apply(&base) {
                    assert_eq!(list.len(), c.prefix as usize + c.middle.len() + c.suffix as usize);
                }
            }
        }
    }
}

/// Every peer-supplied path in `msg`.
fn paths(msg: &Message) -> Vec<&ferry_proto::RelPath> {
    match msg {
        Message::IndexUpdate { records, .. } => records.iter().map(|r| &r.path).collect(),
        Message::IndexUpdateCompact { records, chunks_from, .. } => {
            records.iter().map(|r| &r.path).chain(chunks_from.iter().map(|c| &c.base_path)).collect()
        }
        Message::BlockRequest { path, .. } | Message::VersionBlockRequest { path, .. } => vec![path],
        Message::BlocksRequest { blocks, .. } => blocks.iter().map(|b| &b.path).collect(),
        Message::SendOffer { files, dirs, .. } => files.iter().map(|f| &f.path).chain(dirs).collect(),
        Message::Progress { path, .. } => vec![path],
        _ => Vec::new(),
    }
}

/// The variant's name; exhaustive, so a new variant does not build until it is named here
/// (and [`VARIANTS`] makes the seed generator give it a seed).
pub fn variant(msg: &Message) -> &'static str {
    match msg {
        Message::Hello(_) => "Hello",
        Message::PairRequest { .. } => "PairRequest",
        Message::PairResponse { .. } => "PairResponse",
        Message::ClusterConfig { .. } => "ClusterConfig",
        Message::IndexUpdate { .. } => "IndexUpdate",
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
        Message::IndexUpdateCompact { .. } => "IndexUpdateCompact",
        Message::VersionBlockRequest { .. } => "VersionBlockRequest",
        Message::Progress { .. } => "Progress",
    }
}

/// Every variant name [`variant`] gives: the seeds must cover them all.
pub const VARIANTS: [&str; 22] = [
    "Hello",
    "PairRequest",
    "PairResponse",
    "ClusterConfig",
    "IndexUpdate",
    "Ack",
    "BlockRequest",
    "Block",
    "Ping",
    "Pong",
    "Error",
    "Unpaired",
    "Note",
    "NoteAck",
    "NoteRead",
    "SendOffer",
    "SendBlockRequest",
    "SendUpdate",
    "BlocksRequest",
    "Blocks",
    "IndexUpdateCompact",
    "VersionBlockRequest",
];
