//! Content-defined chunking with FastCDC (the 2020 variant) and BLAKE3.
//!
//! Cut points depend on the content around them, not on offsets, so inserting or deleting
//! bytes only changes the chunks near the edit; the rest keep their hashes and need not be
//! transferred again.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use fastcdc::v2020::FastCDC;
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

/// Read buffer of [`hash_file`].
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
    chunk_reader(path, file, meta.len())
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

/// Opens the regular file at `path` read-only, without following a final symlink.
///
/// Anything else is refused before it is opened: a FIFO or a device is never opened (opening a
/// FIFO with no writer blocks; opening a device can act on it, a tape rewinds). The lstat and
/// the open are two steps, so in case something else is swapped in between, the open does not
/// block (`O_NONBLOCK`, which reads of a regular file ignore) and what was opened is checked.
pub(crate) fn open_nofollow(path: &Path) -> Result<File, FsError> {
    let not_a_file = || FsError::WrongKind { path: path.to_path_buf(), expected: "regular file", found: "other" };
    if !std::fs::symlink_metadata(path).ctx("lstat", path)?.file_type().is_file() {
        return Err(not_a_file());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ctx("open", path)?;
    if !file.metadata().ctx("fstat", path)?.file_type().is_file() {
        return Err(not_a_file());
    }
    Ok(file)
}

/// Files at least this large are chunked with the hashing on a second thread (see
/// [`chunk_reader`]); below it a thread costs more than it saves (and a scan of many small
/// files would start one per file).
pub const PIPELINE_MIN: u64 = 8 << 20;
/// Chunks queued between the cutting thread and the hashing thread (at most [`MAX_CHUNK`]
/// each): enough to absorb jitter, little memory.
const PIPELINE_DEPTH: usize = 8;

/// Chunks everything `reader` yields; `path` is for error messages. `size_hint` (the size
/// the caller expects) picks the pipelined path for big files.
///
/// A big new file is hashed before its record can reach a peer, so this pass is on the critical
/// path of every large transfer. Cutting (reading and FastCDC) and hashing (each chunk and the
/// whole content: two BLAKE3 passes) cost about the same, so for big files they run on two
/// threads, chunks handed over in order through a short queue: the result is identical to the
/// sequential pass, in about half the wall time.
pub(crate) fn chunk_reader(path: &Path, mut reader: impl Read, size_hint: u64) -> Result<Chunked, FsError> {
    // A small file is read whole into a buffer of its size and cut in memory: the streaming
    // chunker zeroes a MAX_CHUNK buffer and moves its contents along for every file, which
    // was a fifth of the CPU of a first scan of a million 1 KiB files. Bounded: a file that
    // grew past WHOLE_MAX while it was read is streamed from what was read on.
    if size_hint < WHOLE_MAX {
        let mut buf = Vec::with_capacity(size_hint as usize + 1);
        (&mut reader).take(WHOLE_MAX).read_to_end(&mut buf).map_err(|e| FsError::io("read", path, e))?;
        if (buf.len() as u64) < WHOLE_MAX {
            return Ok(chunk_bytes(&buf));
        }
        return chunk_stream(path, std::io::Cursor::new(buf).chain(reader), size_hint);
    }
    chunk_stream(path, reader, size_hint)
}

/// Files smaller than this are read whole (see [`chunk_reader`]): at most one chunk's worth of
/// memory, as the streaming chunker's own buffer.
const WHOLE_MAX: u64 = MAX_CHUNK as u64;

/// Streams `reader` through a [`Cutter`]: each chunk hashed here, or (big files) handed to a
/// hashing thread.
fn chunk_stream(path: &Path, reader: impl Read, size_hint: u64) -> Result<Chunked, FsError> {
    let mut cutter = Cutter::new(reader);
    let read_error = |e| FsError::io("read", path, e);
    if size_hint < PIPELINE_MIN {
        let mut hashing = Hashing::default();
        while let Some(chunk) = cutter.next_chunk().map_err(read_error)? {
            hashing.add(chunk);
        }
        return Ok(hashing.finish());
    }
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(PIPELINE_DEPTH);
        let hasher = s.spawn(move || {
            let mut hashing = Hashing::default();
            for data in rx {
                hashing.add(&data);
            }
            hashing.finish()
        });
        let mut failed = None;
        loop {
            match cutter.next_chunk() {
                Ok(None) => break,
                // A send fails only if the hashing thread is gone (it panicked): join reports it.
                Ok(Some(chunk)) => {
                    if tx.send(chunk.to_vec()).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    failed = Some(read_error(e));
                    break;
                }
            }
        }
        drop(tx);
        let hashed = hasher.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        match failed {
            Some(e) => Err(e),
            None => Ok(hashed),
        }
    })
}

/// The window a [`Cutter`] reads into: four chunks' worth, so the at most [`MAX_CHUNK`] bytes
/// carried over at a refill are a quarter of it (moved once), and the window stays small.
const WINDOW: usize = 4 * MAX_CHUNK as usize;

/// FastCDC over a stream, cutting exactly where FastCDC over the whole content cuts (what
/// [`chunk_bytes`] does): a cut depends only on the [`MAX_CHUNK`] bytes from the chunk's start,
/// or on the rest of the content if less is left, so a chunk is cut only once the window holds
/// that much or the reader is done. fastcdc's own `StreamCDC` moved its whole buffer along and
/// zero-filled it again for every chunk (three extra passes over every byte), each of them a
/// byte-by-byte loop in the unoptimised builds tests run.
struct Cutter<R> {
    reader: R,
    window: Vec<u8>,
    /// The bytes not yet cut: `window[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Cutter<R> {
    fn new(reader: R) -> Self {
        Cutter { reader, window: vec![0; WINDOW], start: 0, end: 0, eof: false }
    }

    /// The next chunk, or `None` at the end of the content.
    fn next_chunk(&mut self) -> std::io::Result<Option<&[u8]>> {
        if self.end - self.start < MAX_CHUNK as usize && !self.eof {
            self.refill()?;
        }
        let rest = &self.window[self.start..self.end];
        if rest.is_empty() {
            return Ok(None);
        }
        let (_, len) = FastCDC::new(rest, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK).cut(0, rest.len());
        let chunk = self.start..self.start + len;
        self.start += len;
        Ok(Some(&self.window[chunk]))
    }

    /// Moves what is left to the window's front and reads until it is full or the reader ends.
    fn refill(&mut self) -> std::io::Result<()> {
        self.window.copy_within(self.start..self.end, 0);
        (self.end, self.start) = (self.end - self.start, 0);
        while self.end < self.window.len() {
            match self.reader.read(&mut self.window[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The hashing half of chunking: each chunk's hash and the whole content's, in order.
#[derive(Default)]
struct Hashing {
    whole: blake3::Hasher,
    chunks: Vec<ChunkInfo>,
    size: u64,
}

impl Hashing {
    fn add(&mut self, data: &[u8]) {
        self.whole.update(data);
        self.size += data.len() as u64;
        self.chunks.push(ChunkInfo { hash: ChunkHash::of(data), len: data.len() as u32 });
    }

    fn finish(self) -> Chunked {
        Chunked { size: self.size, hash: self.whole.finalize().into(), chunks: self.chunks }
    }
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
    fn pipelined_and_sequential_agree() {
        let dir = tempfile::tempdir().unwrap();
        let len = PIPELINE_MIN as usize + 3 * 1024 * 1024 + 11;
        let data = random(len, 30);
        let p = dir.path().join("big");
        std::fs::write(&p, &data).unwrap();
        let want = chunk_bytes(&data);
        assert_eq!(chunk_file(&p).unwrap(), want, "chunk_file takes the pipelined path");
        // The same reader, forced down each path by its size hint.
        assert_eq!(chunk_reader(&p, &data[..], 0).unwrap(), want);
        assert_eq!(chunk_reader(&p, &data[..], u64::MAX).unwrap(), want);
        assert_eq!(chunk_reader(&p, &[][..], u64::MAX).unwrap(), chunk_bytes(&[]));
    }

    /// A reader handing out a few bytes at a time (odd sizes), as a pipe or a slow disk may.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn streamed_cuts_are_the_whole_contents_cuts() {
        let p = Path::new("stream");
        let w = WINDOW;
        // Random data; zero runs (every cut at MAX_CHUNK) between data; lengths around the
        // window's refills.
        let mut mixed = random(3 * w, 7);
        mixed[w / 2..w / 2 + 3 * MAX_CHUNK as usize].fill(0);
        let cases = [random(w - 1, 1), random(w, 2), random(w + 1, 3), random(2 * w + 777, 4), mixed, vec![0; w + 5]];
        for data in &cases {
            let want = chunk_bytes(data);
            assert_eq!(chunk_stream(p, &data[..], 0).unwrap(), want, "len {}", data.len());
            assert_eq!(chunk_stream(p, &data[..], u64::MAX).unwrap(), want, "len {}, pipelined", data.len());
            assert_eq!(chunk_stream(p, Trickle(data, 4093), 0).unwrap(), want, "len {}, trickled", data.len());
        }
    }

    #[test]
    fn pipelined_read_error_is_reported() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::other("disk on fire"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(7);
                self.0 -= n;
                Ok(n)
            }
        }
        let p = Path::new("x");
        for hint in [0, u64::MAX] {
            let e = chunk_reader(p, Failing(3 << 20), hint).unwrap_err();
            assert!(e.to_string().contains("disk on fire"), "{e}");
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
