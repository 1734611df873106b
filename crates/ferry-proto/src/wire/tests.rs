//! Tests of the wire format: round trips, frames and the size checks on what a peer sends.

use super::*;
use crate::{ChunkInfo, FileKind, Seq, VersionVector};

fn sample() -> Message {
    let d = DeviceId([3; 32]);
    Message::IndexUpdate {
        share: ShareId([1; 10]),
        epoch: 9,
        records: vec![FileRecord {
            path: RelPath::new("a/b.txt").unwrap(),
            kind: FileKind::File,
            deleted: false,
            size: 5,
            mtime_ns: 1,
            executable: true,
            version: VersionVector::new().bumped(d),
            seq: Seq(4),
            hash: ChunkHash::of(b"hello"),
            chunks: vec![ChunkInfo { hash: ChunkHash::of(b"hello"), len: 5 }],
            modified_by: d,
        }],
    }
}

#[test]
fn frames_roundtrip() {
    let msg = sample();
    let frame = encode(&msg).unwrap();
    let len = body_len(frame[..4].try_into().unwrap()).unwrap();
    assert_eq!(len, frame.len() - 4);
    assert_eq!(decode(&frame[4..]).unwrap(), msg);
}

#[test]
fn block_bytes_keep_the_wire_format() {
    // The byte-string encoding of a block is byte for byte the old sequence-of-u8 one
    // (`Block` is variant 7 of `Message`).
    #[derive(Serialize)]
    enum Old {
        #[allow(dead_code)]
        Pad0,
        #[allow(dead_code)]
        Pad1,
        #[allow(dead_code)]
        Pad2,
        #[allow(dead_code)]
        Pad3,
        #[allow(dead_code)]
        Pad4,
        #[allow(dead_code)]
        Pad5,
        #[allow(dead_code)]
        Pad6,
        Block {
            data: Vec<u8>,
        },
    }
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let new = postcard::to_allocvec(&Message::Block { data: data.clone() }).unwrap();
    let old = postcard::to_allocvec(&Old::Block { data: data.clone() }).unwrap();
    assert_eq!(new, old);
    let frame = encode(&Message::Block { data: data.clone() }).unwrap();
    assert_eq!(&frame[4..], &new[..]);
    assert_eq!(decode(&frame[4..]).unwrap(), Message::Block { data });
    // A truncated block is refused.
    assert!(decode(&new[..new.len() - 1]).is_err());
}

#[test]
fn block_batches_round_trip_and_are_bounded() {
    let b = |len: u32| BlockRef { path: RelPath::new("a/b.txt").unwrap(), offset: 0, len, hash: ChunkHash::of(b"x") };
    let req = Message::BlocksRequest { share: ShareId([7; 10]), blocks: vec![b(10), b(20)] };
    assert_eq!(decode(&encode(&req).unwrap()[4..]).unwrap(), req);
    let answer = Message::Blocks { blocks: vec![BlockReply::Data(vec![1, 2, 3]), BlockReply::Missing("gone".into())] };
    assert_eq!(decode(&encode(&answer).unwrap()[4..]).unwrap(), answer);
    assert!(Message::check_blocks_request(&[b(10), b(20)]).is_ok());
    assert!(Message::check_blocks_request(&[]).is_err());
    assert!(Message::check_blocks_request(&vec![b(1); MAX_BATCH_BLOCKS + 1]).is_err());
    assert!(Message::check_blocks_request(&[b(0)]).is_err());
    assert!(Message::check_blocks_request(&[b(MAX_BLOCK + 1)]).is_err());
    assert!(Message::check_blocks_request(&[b(MAX_BLOCK), b(MAX_BLOCK)]).is_err());
    // The largest answer a batch can bring fits in a frame.
    let full = Message::Blocks { blocks: vec![BlockReply::Data(vec![0; MAX_BATCH_BYTES as usize])] };
    assert!(encode(&full).is_ok());
}

#[test]
fn chunk_references_describe_edits_and_check_their_base() {
    let c = |i: u8, len: u32| ChunkInfo { hash: ChunkHash([i; 32]), len };
    let base: Vec<ChunkInfo> = (0..10).map(|i| c(i, 100)).collect();
    let p = RelPath::new("big.bin").unwrap();
    let h = ChunkHash::of(b"base");
    // Unchanged (a rename or an echo): everything kept, nothing sent.
    let same = ChunksFrom::between(0, p.clone(), h, &base, &base);
    assert_eq!((same.prefix, same.suffix, same.middle.len(), same.saved()), (10, 0, 0, 10));
    assert_eq!(same.apply(&base).unwrap(), base);
    // One chunk replaced in the middle.
    let mut mid = base.clone();
    mid[5] = c(50, 120);
    let r = ChunksFrom::between(1, p.clone(), h, &base, &mid);
    assert_eq!((r.prefix, r.suffix, r.middle.clone()), (5, 4, vec![c(50, 120)]));
    assert_eq!(r.apply(&base).unwrap(), mid);
    // An insert at the start: the first chunk changes, one more appears.
    let mut ins = vec![c(60, 30), c(61, 71)];
    ins.extend_from_slice(&base[1..]);
    let r = ChunksFrom::between(2, p.clone(), h, &base, &ins);
    assert_eq!((r.prefix, r.suffix, r.middle.len()), (0, 9, 2));
    assert_eq!(r.apply(&base).unwrap(), ins);
    // Truncated and grown files.
    for new in [base[..4].to_vec(), [base.clone(), vec![c(70, 5)]].concat(), vec![]] {
        assert_eq!(ChunksFrom::between(0, p.clone(), h, &base, &new).apply(&base).unwrap(), new);
    }
    // A base of another length, or numbers that do not fit, are refused.
    assert!(r.apply(&base[1..]).is_err());
    let over = ChunksFrom { prefix: 6, suffix: 5, ..same.clone() };
    assert!(over.apply(&base).is_err());
    let wrap = ChunksFrom { prefix: u32::MAX, suffix: 2, ..same.clone() };
    assert!(wrap.apply(&base).is_err());
    // The message round-trips.
    let mut msg = sample();
    if let Message::IndexUpdate { share, epoch, records } = msg {
        msg = Message::IndexUpdateCompact { share, epoch, records, chunks_from: vec![r] };
    }
    assert_eq!(decode(&encode(&msg).unwrap()[4..]).unwrap(), msg);
}

#[test]
fn progress_round_trips_and_bad_ranges_are_refused() {
    let msg = Message::Progress {
        share: ShareId([2; 10]),
        path: RelPath::new("big.bin").unwrap(),
        content: ChunkHash::of(b"content"),
        have: vec![(0, 3), (10, 4000)],
    };
    assert_eq!(decode(&encode(&msg).unwrap()[4..]).unwrap(), msg);
    assert!(Message::check_progress(&[]).is_ok(), "empty: the download ended");
    assert!(Message::check_progress(&[(0, 3), (10, 4000)]).is_ok());
    assert!(Message::check_progress(&[(3, 3)]).is_err(), "an empty range");
    assert!(Message::check_progress(&[(5, 3)]).is_err(), "a reversed range");
    assert!(Message::check_progress(&[(0, 5), (4, 9)]).is_err(), "overlapping ranges");
    assert!(Message::check_progress(&[(10, 20), (0, 5)]).is_err(), "out of order");
    assert!(Message::check_progress(&[(0, MAX_PROGRESS_CHUNKS + 1)]).is_err(), "index too large");
    let many: Vec<(u32, u32)> = (0..=MAX_PROGRESS_RANGES as u32).map(|i| (2 * i, 2 * i + 1)).collect();
    assert!(Message::check_progress(&many).is_err(), "too many ranges");
    assert!(Message::check_progress(&many[..MAX_PROGRESS_RANGES]).is_ok());
}

#[test]
fn oversized_header_is_refused_before_allocating() {
    assert!(matches!(body_len((MAX_FRAME as u32 + 1).to_be_bytes()), Err(FrameError::TooLarge(_))));
    assert!(body_len(u32::MAX.to_be_bytes()).is_err());
}

#[test]
fn hostile_path_in_record_is_refused() {
    let frame = encode(&sample()).unwrap();
    let mut body = frame[4..].to_vec();
    let pos = body.windows(7).position(|w| w == b"a/b.txt").unwrap();
    body[pos..pos + 7].copy_from_slice(b"../b.tx");
    assert!(decode(&body).is_err());
}

#[test]
fn send_offer_roundtrips_and_hostile_names_are_refused() {
    let data = b"payload";
    let f = SendFile {
        path: RelPath::new("dir/a.txt").unwrap(),
        size: data.len() as u64,
        mtime_ns: 3,
        executable: true,
        hash: ChunkHash::of(data),
        chunks: vec![ChunkInfo { hash: ChunkHash::of(data), len: data.len() as u32 }],
    };
    f.check().unwrap();
    assert_eq!(f.chunk_offsets().map(|(o, _)| o).collect::<Vec<_>>(), vec![0]);
    let msg = Message::SendOffer { id: TransferId([5; 16]), files: vec![f], dirs: vec![RelPath::new("dir").unwrap()] };
    let frame = encode(&msg).unwrap();
    assert_eq!(decode(&frame[4..]).unwrap(), msg);
    let mut body = frame[4..].to_vec();
    let pos = body.windows(9).position(|w| w == b"dir/a.txt").unwrap();
    body[pos..pos + 9].copy_from_slice(b"../../etc");
    assert!(decode(&body).is_err(), "a traversal in an offered name does not decode");
}

proptest::proptest! {
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = decode(&bytes);
    }
}
