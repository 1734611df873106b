//! Content-defined chunking with FastCDC (the 2020 variant) and BLAKE3.
//!
//! Cut points depend on the content around them, not on offsets, so inserting or deleting
//! bytes only changes the chunks near the edit; the rest keep their hashes and need not be
//! transferred again.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use fastcdc::v2020::{FastCDC, StreamCDC};
use ferry_proto::{ChunkHash, ChunkInfo};

use crate::error::{FsError, IoContext};

/// Smallest chunk (except a file's last one). Below ~64 KiB the per-chunk overhead (a 36-byte
/// index entry, a request round trip, a store row) starts to dominate small edits.
pub const MIN_CHUNK: u32 = 64 * 1024;
/// Target average. 256 KiB keeps the chunk list of a 1 GiB file around 4000 entries (~140 KiB
/// of index) while an edit still only re-sends a few hundred KiB.
pub const AVG_CHUNK: u32 = 256 * 1024;
/// Hard upper bound: a chunk always fits in one wire frame and one buffer, and long runs of
/// content without a cut point (zeros) still split.
pub const MAX_CHUNK: u32 = 1024 * 1024;

/// Read buffer in front of the chunker.
const READ_BUF: usize = 256 * 1024;

/// A file's (or buffer's) content split into chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunked {
    pub size: u64,
    /// BLAKE3 of the whole content.
    pub hash: ChunkHash,
    pub chunks: Vec<ChunkInfo>,
}

/// Chunks the regular file at `path`, streaming (at most [`MAX_CHUNK`] plus a read buffer in
/// memory). The final component is opened with `O_NOFOLLOW`: a symlink is an error, not
/// followed. Non-regular files (FIFOs, devices) are refused without blocking.
pub fn chunk_file(path: &Path) -> Result<Chunked, FsError> {
    let file = open_nofollow(path)?;
    let meta = file.metadata().ctx("fstat", path)?;
    if !meta.file_type().is_file() {
        return Err(FsError::WrongKind { path: path.to_path_buf(), expected: "regular file", found: "other" });
    }
    chunk_reader(path, file)
}

/// BLAKE3 of the whole content of the regular file at `path`, and its size: one streaming
/// pass, no chunking (for checking a file assembled from already verified chunks against its
/// record). Opened like [`chunk_file`] (no symlink followed, non-regular files refused).
pub fn hash_file(path: &Path) -> Result<(ChunkHash, u64), FsError> {
    let mut file = open_nofollow(path)?;
    let meta = file.metadata().ctx("fstat", path)?;
    if !meta.file_type().is_file() {
        return Err(FsError::WrongKind { path: path.to_path_buf(), expected: "regular file", found: "other" });
    }
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; READ_BUF.min(meta.len() as usize + 1).max(4096)];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FsError::io("read", path, e)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((ChunkHash(*hasher.finalize().as_bytes()), size))
}

/// Chunks an in-memory buffer; gives exactly what [`chunk_file`] gives for the same bytes.
pub fn chunk_bytes(data: &[u8]) -> Chunked {
    let chunks = FastCDC::new(data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
        .map(|c| ChunkInfo { hash: ChunkHash::of(&data[c.offset..c.offset + c.length]), len: c.length as u32 })
        .collect();
    Chunked { size: data.len() as u64, hash: ChunkHash::of(data), chunks }
}

/// Opens `path` read-only without following a final symlink and without blocking on FIFOs.
pub(crate) fn open_nofollow(path: &Path) -> Result<File, FsError> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ctx("open", path)
}

/// Chunks everything `reader` yields; `path` is for error messages.
pub(crate) fn chunk_reader(path: &Path, reader: impl Read) -> Result<Chunked, FsError> {
    let mut whole = blake3::Hasher::new();
    let mut chunks = Vec::new();
    let mut size = 0u64;
    for chunk in StreamCDC::new(BufReader::with_capacity(READ_BUF, reader), MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
        let chunk = chunk.map_err(|e| match e {
            fastcdc::v2020::Error::IoError(io) => FsError::io("read", path, io),
            other => FsError::Chunk { path: path.to_path_buf(), message: other.to_string() },
        })?;
        whole.update(&chunk.data);
        size += chunk.length as u64;
        chunks.push(ChunkInfo { hash: ChunkHash::of(&chunk.data), len: chunk.length as u32 });
    }
    Ok(Chunked { size, hash: whole.finalize().into(), chunks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};
    use std::collections::HashSet;

    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut data = vec![0u8; len];
        rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
        data
    }

    #[test]
    fn empty_input() {
        let c = chunk_bytes(&[]);
        assert_eq!(c.size, 0);
        assert!(c.chunks.is_empty());
        assert_eq!(c.hash, ChunkHash::of(&[]));

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty");
        std::fs::write(&p, b"").unwrap();
        assert_eq!(chunk_file(&p).unwrap(), c);
    }

    #[test]
    fn chunks_respect_bounds_and_add_up() {
        let data = random(5 * 1024 * 1024 + 123, 1);
        let c = chunk_bytes(&data);
        assert_eq!(c.size, data.len() as u64);
        assert_eq!(c.hash, ChunkHash::of(&data));
        assert_eq!(c.chunks.iter().map(|c| c.len as u64).sum::<u64>(), data.len() as u64);
        assert!(c.chunks.len() > 5, "expected several chunks, got {}", c.chunks.len());
        let (last, rest) = c.chunks.split_last().unwrap();
        assert!(rest.iter().all(|c| c.len >= MIN_CHUNK && c.len <= MAX_CHUNK));
        assert!(last.len <= MAX_CHUNK);
        // Each chunk hash is the hash of its bytes.
        let mut off = 0usize;
        for ch in &c.chunks {
            assert_eq!(ch.hash, ChunkHash::of(&data[off..off + ch.len as usize]));
            off += ch.len as usize;
        }
    }

    #[test]
    fn boundaries_survive_an_insert_at_the_start() {
        let data = random(4 * 1024 * 1024, 2);
        let mut shifted = vec![0x5a];
        shifted.extend_from_slice(&data);
        let a = chunk_bytes(&data);
        let b = chunk_bytes(&shifted);
        let hashes_a: HashSet<_> = a.chunks.iter().map(|c| c.hash).collect();
        let shared = b.chunks.iter().filter(|c| hashes_a.contains(&c.hash)).count();
        assert!(a.chunks.len() >= 4, "too few chunks: {}", a.chunks.len());
        // Only the first chunk (or two) may differ.
        assert!(shared + 2 >= a.chunks.len(), "only {shared} of {} chunks shared", a.chunks.len());
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn file_and_bytes_agree() {
        let dir = tempfile::tempdir().unwrap();
        for (i, len) in [1usize, 70_000, 3 * 1024 * 1024 + 7].into_iter().enumerate() {
            let data = random(len, 10 + i as u64);
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, &data).unwrap();
            assert_eq!(chunk_file(&p).unwrap(), chunk_bytes(&data), "len {len}");
        }
    }

    #[test]
    fn hash_file_is_the_whole_content_hash() {
        let dir = tempfile::tempdir().unwrap();
        for (i, len) in [0usize, 1, 300_000, 3 * 1024 * 1024 + 7].into_iter().enumerate() {
            let data = random(len, 20 + i as u64);
            let p = dir.path().join(format!("h{i}"));
            std::fs::write(&p, &data).unwrap();
            assert_eq!(hash_file(&p).unwrap(), (ChunkHash::of(&data), len as u64), "len {len}");
        }
        std::os::unix::fs::symlink("h1", dir.path().join("link")).unwrap();
        assert!(hash_file(&dir.path().join("link")).is_err());
    }

    #[test]
    fn chunk_file_does_not_follow_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real"), b"x").unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
        assert!(chunk_file(&dir.path().join("link")).is_err());
    }
}
