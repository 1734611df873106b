//! Index updates without the chunk lists the receiver already holds.
//!
//! A big file's chunk list is most of an index's bytes (~4,000 entries, ~150 KiB for 1 GiB).
//! Three everyday cases send such a list to a device that already has it, or nearly: the echo
//! of a record the receiver just applied (it is the receiver's own content), a rename (the
//! content is at the old path), and a small edit (all but a few chunks are unchanged). The
//! sender judges what the receiver holds from the receiver's own index records (what it last
//! told us) and sends a [`ChunksFrom`] reference instead of the list; the receiver rebuilds the
//! list from content it holds with the named whole-file hash and chunk count, or refuses the
//! whole update (nothing stored), and the sender sends it again in full. A wrong rebuild cannot
//! go unnoticed: the record's chunk lengths must add up to its size, and every block fetched
//! for it is checked against its hash and the whole file against the record's hash.
//!
//! Moved from ferry-node `compact.rs` unchanged (it was already pure): the node calls
//! `ferry_engine::compact::{candidate_paths, references, resolve}` where it called
//! `crate::compact::...` (peer.rs: the index sender and the index receiver).

use std::collections::HashMap;

use ferry_proto::wire::ChunksFrom;
use ferry_proto::{ChunkHash, FileRecord, RelPath};

/// Smallest chunk list (and smallest saving) worth a reference: below it the list costs less
/// than the lookups.
pub const MIN_REF_CHUNKS: usize = 8;

fn worth_it(r: &FileRecord) -> bool {
    r.is_file() && r.chunks.len() >= MIN_REF_CHUNKS
}

/// The paths whose records from the receiver the sender needs for [`references`]: every big
/// file of the batch and every deletion in it (a rename's old path). Empty when the batch has
/// no big file, so batches of small files cost no extra read.
pub fn candidate_paths(batch: &[FileRecord]) -> Vec<RelPath> {
    if !batch.iter().any(worth_it) {
        return Vec::new();
    }
    batch.iter().filter(|r| worth_it(r) || r.deleted).map(|r| r.path.clone()).collect()
}

/// References for the records of `batch` whose chunk lists the receiver holds all or most of.
/// `theirs` is the receiver's record at each of [`candidate_paths`] (None where it has none).
/// A record may also refer to an earlier record of the same batch sent with its list.
pub fn references(batch: &[FileRecord], theirs: &[(RelPath, Option<FileRecord>)]) -> Vec<ChunksFrom> {
    let held: Vec<&FileRecord> =
        theirs.iter().filter_map(|(_, r)| r.as_ref()).filter(|r| r.is_file() && !r.chunks.is_empty()).collect();
    let by_path: HashMap<&RelPath, &FileRecord> = held.iter().map(|r| (&r.path, *r)).collect();
    let mut by_hash: HashMap<ChunkHash, &FileRecord> = held.iter().map(|r| (r.hash, *r)).collect();
    let mut out = Vec::new();
    for (i, r) in batch.iter().enumerate() {
        if !worth_it(r) {
            continue;
        }
        let same_path = by_path.get(&r.path).copied();
        let base = same_path.filter(|b| b.hash == r.hash).or_else(|| by_hash.get(&r.hash).copied());
        let reference = match (base, same_path) {
            (Some(b), _) => Some(ChunksFrom::between(i as u32, b.path.clone(), b.hash, &b.chunks, &r.chunks)),
            (None, Some(b)) => Some(ChunksFrom::between(i as u32, b.path.clone(), b.hash, &b.chunks, &r.chunks))
                .filter(|d| d.saved() as usize >= MIN_REF_CHUNKS),
            (None, None) => None,
        };
        out.extend(reference);
        // Later records of the batch may refer to this one (the receiver resolves in order).
        by_hash.entry(r.hash).or_insert(r);
    }
    out
}

/// Why an update's references were refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// The receiver does not hold the named content (any more): send the records in full.
    Missing(String),
    /// The references do not fit the records: a broken or hostile sender.
    Malformed(String),
}

/// Fills in the chunk lists `refs` point at, in `records` (which come with empty lists for
/// them). `bases[k]` is the receiver's own record and the sender's stored record at
/// `refs[k].base_path`, read before this update is stored. On error the update is refused as
/// a whole: `records` may be partly filled and must be dropped.
pub fn resolve(
    records: &mut [FileRecord],
    refs: &[ChunksFrom],
    bases: &[(Option<FileRecord>, Option<FileRecord>)],
) -> Result<(), Unresolved> {
    if bases.len() != refs.len() {
        return Err(Unresolved::Malformed("internal: bases do not match references".into()));
    }
    // Strictly increasing record numbers: each record once, and a record referring to an
    // earlier one of the update finds it resolved already.
    let mut last = None;
    for c in refs {
        let i = c.record as usize;
        if last.is_some_and(|l| i <= l) || i >= records.len() {
            return Err(Unresolved::Malformed(format!("reference to record {i} out of order or out of range")));
        }
        last = Some(i);
        let r = &records[i];
        if !r.is_file() || !r.chunks.is_empty() {
            return Err(Unresolved::Malformed(format!("{}: a reference for a record that is not a bare file", r.path)));
        }
    }
    for (c, (mine, theirs)) in refs.iter().zip(bases) {
        let i = c.record as usize;
        let fits = |b: &&FileRecord| {
            b.path == c.base_path && b.is_file() && b.hash == c.base_hash && b.chunks.len() == c.base_chunks as usize
        };
        // The latest earlier record of this update at that path, then this device's own
        // content, then what the sender told us before.
        let earlier = records[..i].iter().rev().find(|b| b.path == c.base_path);
        let base = earlier.filter(fits).or(mine.as_ref().filter(fits)).or(theirs.as_ref().filter(fits));
        let Some(base) = base else {
            return Err(Unresolved::Missing(format!(
                "{}: no content {} at {} here",
                records[i].path,
                &c.base_hash.to_hex()[..12],
                c.base_path
            )));
        };
        records[i].chunks = c.apply(&base.chunks).map_err(Unresolved::Malformed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ferry_proto::{ChunkInfo, DeviceId, FileKind, Seq, VersionVector};

    use super::*;

    const D: DeviceId = DeviceId([1; 32]);

    fn chunks(seed: u8, n: usize) -> Vec<ChunkInfo> {
        (0..n).map(|i| ChunkInfo { hash: ChunkHash([seed.wrapping_add(i as u8); 32]), len: 100 }).collect()
    }

    fn file(path: &str, list: Vec<ChunkInfo>) -> FileRecord {
        let all: Vec<u8> = list.iter().flat_map(|c| c.hash.0).collect();
        FileRecord {
            path: RelPath::new(path).unwrap(),
            kind: FileKind::File,
            deleted: false,
            size: list.iter().map(|c| c.len as u64).sum(),
            mtime_ns: 1,
            executable: false,
            version: VersionVector::new().bumped(D),
            seq: Seq(1),
            hash: ChunkHash::of(&all),
            chunks: list,
            modified_by: D,
        }
    }

    fn gone(path: &str) -> FileRecord {
        FileRecord { deleted: true, size: 0, hash: ChunkHash([0; 32]), chunks: vec![], ..file(path, vec![]) }
    }

    /// What the sender puts on the wire and the receiver rebuilds from it.
    fn round_trip(
        batch: &[FileRecord],
        receiver_sent: &[FileRecord],
        receiver_own: &[FileRecord],
    ) -> (Vec<ChunksFrom>, Result<Vec<FileRecord>, Unresolved>) {
        let theirs: Vec<(RelPath, Option<FileRecord>)> = candidate_paths(batch)
            .into_iter()
            .map(|p| {
                let r = receiver_sent.iter().find(|r| r.path == p).cloned();
                (p, r)
            })
            .collect();
        let refs = references(batch, &theirs);
        let mut wire: Vec<FileRecord> = batch.to_vec();
        for c in &refs {
            wire[c.record as usize].chunks.clear();
        }
        let bases: Vec<_> = refs
            .iter()
            .map(|c| (receiver_own.iter().find(|r| r.path == c.base_path).cloned(), None::<FileRecord>))
            .collect();
        let out = resolve(&mut wire, &refs, &bases).map(|()| wire);
        (refs, out)
    }

    #[test]
    fn echo_rename_and_edit_travel_without_their_lists() {
        let big = file("big.bin", chunks(0, 40));
        // The echo of what the receiver just applied: a reference to its own record.
        let (refs, out) =
            round_trip(std::slice::from_ref(&big), std::slice::from_ref(&big), std::slice::from_ref(&big));
        assert_eq!((refs.len(), refs[0].middle.len()), (1, 0));
        assert_eq!(out.unwrap(), vec![big.clone()]);
        // A rename: the old path's tombstone and the new path in one batch.
        let moved = FileRecord { path: RelPath::new("moved.bin").unwrap(), ..big.clone() };
        let batch = [gone("big.bin"), moved.clone()];
        let (refs, out) = round_trip(&batch, std::slice::from_ref(&big), std::slice::from_ref(&big));
        assert_eq!(refs[0].base_path.as_str(), "big.bin");
        assert_eq!(out.unwrap(), batch.to_vec());
        // An edit in the middle: only the changed chunk is sent.
        let mut list = big.chunks.clone();
        list[20] = ChunkInfo { hash: ChunkHash([200; 32]), len: 150 };
        let edited = file("big.bin", list);
        let (refs, out) =
            round_trip(std::slice::from_ref(&edited), std::slice::from_ref(&big), std::slice::from_ref(&big));
        assert_eq!((refs[0].prefix, refs[0].suffix, refs[0].middle.len()), (20, 19, 1));
        assert_eq!(out.unwrap(), vec![edited.clone()]);
        // A copy of a file sent whole earlier in the same batch.
        let copy = FileRecord { path: RelPath::new("copy.bin").unwrap(), ..edited.clone() };
        let fresh = file("fresh.bin", chunks(100, 30));
        let fresh_copy = FileRecord { path: RelPath::new("z.bin").unwrap(), ..fresh.clone() };
        let batch = [fresh.clone(), edited.clone(), copy.clone(), fresh_copy.clone()];
        let (refs, out) = round_trip(&batch, std::slice::from_ref(&big), std::slice::from_ref(&big));
        assert_eq!(refs.iter().map(|c| c.record).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(out.unwrap(), batch.to_vec());
    }

    #[test]
    fn small_or_unrelated_files_go_whole() {
        let small = file("small.txt", chunks(0, MIN_REF_CHUNKS - 1));
        assert!(candidate_paths(std::slice::from_ref(&small)).is_empty());
        let big = file("big.bin", chunks(0, 40));
        let other = file("big.bin", chunks(90, 40));
        // Nothing in common with what the receiver holds: no reference.
        let (refs, out) =
            round_trip(std::slice::from_ref(&other), std::slice::from_ref(&big), std::slice::from_ref(&big));
        assert!(refs.is_empty());
        assert_eq!(out.unwrap(), vec![other]);
    }

    #[test]
    fn a_receiver_without_the_content_asks_for_it_whole() {
        let big = file("big.bin", chunks(0, 40));
        // The receiver changed its copy since it told us: the reference does not resolve.
        let changed = file("big.bin", chunks(50, 40));
        let (refs, out) = round_trip(std::slice::from_ref(&big), std::slice::from_ref(&big), &[changed]);
        assert_eq!(refs.len(), 1);
        assert!(matches!(out, Err(Unresolved::Missing(_))));
        // What the sender told us before also counts as held content.
        let mut wire = vec![FileRecord { chunks: vec![], ..big.clone() }];
        let refs = references(std::slice::from_ref(&big), &[(big.path.clone(), Some(big.clone()))]);
        resolve(&mut wire, &refs, &[(None, Some(big.clone()))]).unwrap();
        assert_eq!(wire, vec![big.clone()]);
    }

    #[test]
    fn malformed_references_are_refused() {
        let big = file("big.bin", chunks(0, 40));
        let bare = FileRecord { chunks: vec![], ..big.clone() };
        let good = ChunksFrom::between(0, big.path.clone(), big.hash, &big.chunks, &big.chunks);
        let bases = vec![(Some(big.clone()), None)];
        let bad = |c: ChunksFrom, records: &mut Vec<FileRecord>, n: usize| {
            let refs = vec![c; n];
            let bases = vec![(Some(big.clone()), None); n];
            resolve(records, &refs, &bases)
        };
        // Out of range, repeated, for a record that carries its list or is a tombstone.
        assert!(matches!(
            bad(ChunksFrom { record: 1, ..good.clone() }, &mut vec![bare.clone()], 1),
            Err(Unresolved::Malformed(_))
        ));
        assert!(matches!(bad(good.clone(), &mut vec![bare.clone()], 2), Err(Unresolved::Malformed(_))));
        assert!(matches!(bad(good.clone(), &mut vec![big.clone()], 1), Err(Unresolved::Malformed(_))));
        assert!(matches!(bad(good.clone(), &mut vec![gone("big.bin")], 1), Err(Unresolved::Malformed(_))));
        // Numbers that do not fit the base.
        let over = ChunksFrom { prefix: 40, suffix: 1, ..good.clone() };
        assert!(matches!(resolve(&mut [bare.clone()], &[over], &bases), Err(Unresolved::Malformed(_))));
        // A base with another chunk count is not the content named.
        let short = ChunksFrom { base_chunks: 39, ..good.clone() };
        assert!(matches!(resolve(&mut [bare.clone()], &[short], &bases), Err(Unresolved::Missing(_))));
        let mut ok = vec![bare];
        resolve(&mut ok, &[good], &bases).unwrap();
        assert_eq!(ok, vec![big]);
    }
}
