//! Which chunks of a content need no bytes from anywhere: runs of zeros (left as holes) and
//! repeats of an earlier chunk of the same content (read back from the file being built).
//!
//! A disk image or a preallocated file is mostly zeros and repeated blocks; fetching each of
//! its chunks would move the whole file over the network and allocate every zero on disk.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use ferry_proto::ChunkHash;

use super::Chunk;
use super::assemble::hash_zeros;

/// Chunks shorter than this are never checked for zeros: a hole that small saves next to
/// nothing, and the check hashes that many zeros (a small file's single chunk would be hashed
/// twice for nothing).
const HOLE_MIN: u32 = 64 * 1024;

/// How a chunk gets its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// From the file (a kept partial download), a local copy or a peer.
    Fetch,
    /// All zeros: a hole, nothing fetched.
    Zero,
    /// The same hash as chunk number `first` (earlier in the list, a `Fetch`): its bytes are
    /// read back from the file once that one is written.
    Repeat(usize),
}

/// Classifies every chunk of `chunks` (in the order they are handed to the writer; `tail` is the
/// place of the content's last chunk in it).
///
/// Which lengths are checked for zeros: those that occur more than once, and the last chunk's.
/// FastCDC cuts a run of zeros at fixed lengths (its rolling hash is constant there), so every
/// pure-zero chunk but a file's last shares its length with the others of its run; a chunk
/// mixing zeros and data is no hole anyway. That keeps the zero hashes computed (one per
/// distinct length) to a few, instead of one per chunk of random lengths.
pub(super) fn classify(chunks: &[Chunk], tail: usize) -> Vec<Kind> {
    let mut per_len: HashMap<u32, usize> = HashMap::new();
    for c in chunks {
        *per_len.entry(c.len).or_default() += 1;
    }
    let last = tail;
    let mut zero_hash: HashMap<u32, ChunkHash> = HashMap::new();
    let mut first: HashMap<ChunkHash, usize> = HashMap::with_capacity(chunks.len());
    let mut kinds = Vec::with_capacity(chunks.len());
    for (i, c) in chunks.iter().enumerate() {
        let candidate = c.len >= HOLE_MIN && (i == last || per_len[&c.len] > 1);
        if candidate && *zero_hash.entry(c.len).or_insert_with(|| zeros(c.len)) == c.hash {
            kinds.push(Kind::Zero);
            continue;
        }
        kinds.push(match first.entry(c.hash) {
            Entry::Occupied(e) => Kind::Repeat(*e.get()),
            Entry::Vacant(e) => {
                e.insert(i);
                Kind::Fetch
            }
        });
    }
    kinds
}

/// BLAKE3 of `len` zero bytes.
fn zeros(len: u32) -> ChunkHash {
    let mut h = blake3::Hasher::new();
    hash_zeros(&mut h, len as u64);
    ChunkHash(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(offset: u64, data: &[u8]) -> Chunk {
        Chunk { offset, len: data.len() as u32, hash: ChunkHash::of(data) }
    }

    #[test]
    fn zeros_and_repeats_are_found() {
        let (z, a, b) = (vec![0u8; 1 << 20], vec![1u8; 100_000], vec![2u8; 70_000]);
        let parts: [&[u8]; 7] = [&a, &z, &b, &a, &z, &b, &z[..HOLE_MIN as usize + 3]];
        let mut off = 0;
        let chunks: Vec<Chunk> = parts
            .iter()
            .map(|p| {
                off += p.len() as u64;
                chunk(off - p.len() as u64, p)
            })
            .collect();
        use Kind::*;
        assert_eq!(classify(&chunks, 6), [Fetch, Zero, Fetch, Repeat(0), Zero, Repeat(2), Zero]);
        // Handed over from chunk 5 on: the tail is now at place 1, repeats point to places in
        // that order.
        let rotated: Vec<Chunk> = [5, 6, 0, 1, 2, 3, 4].iter().map(|&i| chunks[i]).collect();
        assert_eq!(classify(&rotated, 1), [Fetch, Zero, Fetch, Zero, Repeat(0), Repeat(2), Zero]);
    }

    #[test]
    fn short_zero_chunks_are_fetched_once() {
        let z = vec![0u8; 4096];
        let chunks = [chunk(0, &z), chunk(4096, &z)];
        assert_eq!(classify(&chunks, 1), [Kind::Fetch, Kind::Repeat(0)]);
    }
}
