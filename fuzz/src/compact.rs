//! Target `compact`: the compact-index resolver ([`ferry_engine::compact`]) that rebuilds chunk
//! lists a peer left out of an `IndexUpdateCompact`. The input's first byte picks one of two
//! cases, the rest are choices ([`Choices`]) that build the records:
//!
//! - honest (even): a batch and what the receiver holds, references made by the sender side
//!   ([`candidate_paths`], [`references`]); the receiver must rebuild the batch exactly, or
//!   answer `Missing` (then the sender sends it in full) only when the batch names one path
//!   twice; never `Malformed`, never a different chunk list;
//! - hostile (odd): references with any numbers against any records; [`resolve`] must refuse or
//!   produce, never panic, and what it produces must be the base's kept chunks around the sent
//!   middle, with records that no reference names left untouched.
//!
//! Chunk lists are edits of one common list (so prefixes and suffixes are shared, as in real
//! edits) and a record's hash is derived from its list: equal hashes mean equal content, as
//! with BLAKE3.

use ferry_engine::compact::{Unresolved, candidate_paths, references, resolve};
use ferry_proto::wire::ChunksFrom;
use ferry_proto::{ChunkHash, ChunkInfo, DeviceId, FileKind, FileRecord, RelPath, Seq, VersionVector};

use crate::Choices;

/// Paths records are drawn from: few, so batches revisit them (renames, echoes, edits).
const PATHS: [&str; 5] = ["a", "b", "c", "d/e", "d/f"];
/// Length of the common chunk list; above `MIN_REF_CHUNKS` so references are worth making.
const COMMON: usize = 24;

pub fn check(data: &[u8]) {
    let mut c = Choices::new(data);
    if c.byte() % 2 == 0 { honest(&mut c) } else { hostile(&mut c) }
}

fn chunk(k: u8) -> ChunkInfo {
    ChunkInfo { hash: ChunkHash([k; 32]), len: 1 + u32::from(k) }
}

/// A chunk list: the common list with `common[a..b]` replaced by up to 3 other chunks.
fn chunks(c: &mut Choices) -> Vec<ChunkInfo> {
    let common: Vec<ChunkInfo> = (0..COMMON as u8).map(chunk).collect();
    let a = c.below(COMMON + 1);
    let b = a + c.below(COMMON + 1 - a);
    let middle = (0..c.below(4)).map(|_| chunk(100 + c.byte() % 50));
    common[..a].iter().copied().chain(middle).chain(common[b..].iter().copied()).collect()
}

fn record(c: &mut Choices) -> FileRecord {
    let path = RelPath::new(PATHS[c.below(PATHS.len())]).expect("a valid path");
    let d = DeviceId([1; 32]);
    let base = FileRecord {
        path,
        kind: FileKind::File,
        deleted: false,
        size: 0,
        mtime_ns: 1,
        executable: false,
        version: VersionVector::new().bumped(d),
        seq: Seq(1),
        hash: ChunkHash([0; 32]),
        chunks: Vec::new(),
        modified_by: d,
    };
    match c.below(8) {
        0 => FileRecord { deleted: true, ..base },
        1 => FileRecord { kind: FileKind::Dir, ..base },
        _ => {
            let list = chunks(c);
            let bytes: Vec<u8> = list.iter().flat_map(|k| [&k.hash.0[..], &k.len.to_le_bytes()].concat()).collect();
            FileRecord {
                size: list.iter().map(|k| u64::from(k.len)).sum(),
                hash: ChunkHash::of(&bytes),
                chunks: list,
                ..base
            }
        }
    }
}

fn honest(c: &mut Choices) {
    let batch: Vec<FileRecord> = (0..c.below(6)).map(|_| record(c)).collect();
    // What the receiver holds and last told the sender: one record per path.
    let mut held: Vec<FileRecord> = Vec::new();
    for r in (0..c.below(5)).map(|_| record(c)) {
        if !held.iter().any(|h| h.path == r.path) {
            held.push(r);
        }
    }
    let find = |p: &RelPath| held.iter().find(|h| &h.path == p).cloned();
    let theirs: Vec<(RelPath, Option<FileRecord>)> =
        candidate_paths(&batch).into_iter().map(|p| (p.clone(), find(&p))).collect();
    let refs = references(&batch, &theirs);
    let mut wire = batch.clone();
    for r in &refs {
        wire[r.record as usize].chunks.clear();
    }
    let bases: Vec<_> = refs.iter().map(|r| (find(&r.base_path), None)).collect();
    match resolve(&mut wire, &refs, &bases) {
        Ok(()) => assert_eq!(wire, batch, "the receiver rebuilt other chunk lists"),
        Err(Unresolved::Missing(m)) => {
            let twice = batch.iter().enumerate().any(|(i, r)| batch[..i].iter().any(|e| e.path == r.path));
            assert!(twice, "an honest update did not resolve: {m}");
        }
        Err(Unresolved::Malformed(m)) => panic!("an honest sender's references were refused as malformed: {m}"),
    }
}

fn hostile(c: &mut Choices) {
    let records: Vec<FileRecord> = (0..c.below(6))
        .map(|_| {
            let r = record(c);
            // Mostly bare files, as a compact update sends them.
            if c.byte() % 4 == 0 { r } else { FileRecord { chunks: Vec::new(), ..r } }
        })
        .collect();
    let n = c.below(5);
    let mut bases: Vec<(Option<FileRecord>, Option<FileRecord>)> = (0..n)
        .map(|_| {
            let opt = |c: &mut Choices| (c.byte() % 3 != 0).then(|| record(c));
            (opt(c), opt(c))
        })
        .collect();
    let small = |c: &mut Choices| if c.byte() % 8 == 0 { c.u32() } else { c.below(COMMON + 4) as u32 };
    let refs: Vec<ChunksFrom> = bases
        .iter()
        .map(|(mine, theirs)| {
            // Usually naming a base that is there (so the numbers get applied), else anything.
            let named = match c.below(4) {
                0 => record(c),
                1 => theirs.clone().unwrap_or_else(|| record(c)),
                _ => mine.clone().unwrap_or_else(|| record(c)),
            };
            ChunksFrom {
                record: small(c),
                base_path: named.path,
                base_hash: named.hash,
                base_chunks: if c.byte() % 8 == 0 { small(c) } else { named.chunks.len() as u32 },
                prefix: small(c),
                suffix: small(c),
                middle: (0..c.below(4)).map(|_| chunk(c.byte())).collect(),
            }
        })
        .collect();
    if c.byte() % 16 == 0 {
        bases.pop();
    }
    let before = records.clone();
    let mut out = records;
    if resolve(&mut out, &refs, &bases).is_err() {
        return;
    }
    for (i, (was, now)) in before.iter().zip(&out).enumerate() {
        match refs.iter().find(|r| r.record as usize == i) {
            None => assert_eq!(was, now, "record {i} changed without a reference"),
            Some(r) => {
                let (p, s) = (r.prefix as usize, r.suffix as usize);
                assert_eq!(now.chunks.len(), p + r.middle.len() + s);
                assert_eq!(&now.chunks[p..p + r.middle.len()], &r.middle[..]);
                assert_eq!(FileRecord { chunks: Vec::new(), ..now.clone() }, *was);
            }
        }
    }
}
