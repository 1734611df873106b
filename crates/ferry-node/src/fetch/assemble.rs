//! The in-order writer of a file being assembled.
//!
//! The chunks of a file being built arrive (fetched from a peer, copied from a local file, or
//! found in a kept partial download) each already verified against its hash; the whole file
//! must then match its record's hash before it may replace anything. Reading the finished temp
//! back to hash it was a second pass over every byte, on the critical path after the transfer
//! (about 0.35 s per GiB). Instead the chunks are handed over in file order to one blocking
//! thread that writes each at its offset and feeds the same bytes to a whole-file BLAKE3: when
//! the last chunk is written the file's hash is known. Every byte of the temp comes from exactly
//! these buffers, or is a hole (all zeros, and zeros are what is hashed for it), and the temp's
//! length is checked on the file itself at the end, so the hash is the hash of the temp's
//! content, as before.
//!
//! Holes: a chunk of zeros is not written. Where the file cannot hold anything yet (a fresh
//! temp, or beyond the end of a kept partial download) reading it gives zeros already; where
//! a resumed partial download may hold other bytes the range is deallocated (or, where the file
//! system cannot, overwritten with zeros). A file ending in a hole is extended to its size.
//!
//! The writer publishes how many pieces it has written ([`Assembler::written`]): a chunk
//! repeated in the file is read back from its first occurrence once that is on disk, and a
//! download in progress serves the chunks it has written to the share's other devices.
//!
//! Rotated order ([`Order`]): the pieces may tile the file starting at a chunk boundary `start`
//! instead of 0 (`start..size`, then `0..start`), so that devices downloading the same file
//! hold different parts of it early and can trade them. The whole-file hash must be taken in
//! file order, so the second segment (`0..start`) is hashed as it is written and the first
//! (`start..size`) is read back from the file at the end and hashed after it: a second read of
//! that segment only, paid only when `start` is not 0 (never for a download with one source).
//!
//! The queue is bounded: a stalled disk holds the transfer back instead of piling chunks up in
//! memory.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use ferry_proto::ChunkHash;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// One chunk of the file, at its place in file order.
pub(crate) struct Piece {
    pub offset: u64,
    pub body: Body,
}

/// What to do with a piece's place in the file.
pub(crate) enum Body {
    /// Bytes to write there.
    Write(Vec<u8>),
    /// Bytes already there (a kept partial download): hashed, not rewritten.
    Kept(Vec<u8>),
    /// This many zero bytes: hashed, left as a hole.
    Hole(u32),
}

impl Piece {
    pub fn len(&self) -> u64 {
        match &self.body {
            Body::Write(d) | Body::Kept(d) => d.len() as u64,
            Body::Hole(n) => *n as u64,
        }
    }
}

/// What was assembled: the BLAKE3 of the content and its length.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Assembled {
    pub hash: ChunkHash,
    pub size: u64,
}

/// Zeros fed to hashers in slices of this size: a hole costs no allocation, whatever its length.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// Feeds `len` zero bytes to `hasher`.
pub(crate) fn hash_zeros(hasher: &mut blake3::Hasher, mut len: u64) {
    while len > 0 {
        let n = len.min(ZEROS.len() as u64) as usize;
        hasher.update(&ZEROS[..n]);
        len -= n as u64;
    }
}

pub(crate) struct Assembler {
    tx: mpsc::Sender<Piece>,
    written: watch::Receiver<u64>,
    task: JoinHandle<Result<Assembled, String>>,
}

/// In which order the pieces tile the file: from byte `start` (a chunk boundary) to the end,
/// then from 0 to `start`. `start` 0 is plain file order.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Order {
    pub start: u64,
    /// The content's length (where the first segment ends).
    pub size: u64,
}

impl Assembler {
    /// Starts the writer for `file` in file order (see [`Assembler::start_in`]).
    #[cfg(test)]
    pub fn start(file: Arc<File>, depth: usize, resume: bool) -> Self {
        Self::start_in(file, depth, resume, Order::default(), watch::channel(0).0)
    }

    /// Starts the writer for `file`, with at most `depth` chunks queued, the pieces coming in
    /// `order`. `resume`: the file is a partial download of the same version and may hold bytes
    /// anywhere below its length; otherwise it is fresh (empty, or extended with `set_len`:
    /// zeros throughout). `written` gets the number of pieces written so far.
    pub fn start_in(file: Arc<File>, depth: usize, resume: bool, order: Order, written: watch::Sender<u64>) -> Self {
        let (tx, rx) = mpsc::channel::<Piece>(depth.max(1));
        let rx_written = written.subscribe();
        let task = tokio::task::spawn_blocking(move || write_all(&file, rx, resume, order, written));
        Assembler { tx, written: rx_written, task }
    }

    /// How many pieces are written (the first that many handed over are all on the file).
    pub fn written(&self) -> watch::Receiver<u64> {
        self.written.clone()
    }

    /// Hands over the next chunk in the writer's [`Order`]; waits while the queue is full. An
    /// `Err` means the writer stopped: [`Assembler::finish`] tells why.
    pub async fn push(&self, piece: Piece) -> Result<(), ()> {
        self.tx.send(piece).await.map_err(|_| ())
    }

    /// Waits until every queued chunk is written; the content's hash and length, or why the
    /// writer failed.
    pub async fn finish(self) -> Result<Assembled, String> {
        drop(self.tx);
        self.task.await.map_err(|e| format!("the writer failed: {e}"))?
    }
}

/// The writer's loop (a blocking thread): writes, hashes and publishes each piece in order.
fn write_all(
    file: &File,
    mut rx: mpsc::Receiver<Piece>,
    resume: bool,
    order: Order,
    written: watch::Sender<u64>,
) -> Result<Assembled, String> {
    // Below this the file may hold bytes this pass did not write: a hole there must be made.
    let stale_end = if resume { file.metadata().map_err(|e| format!("fstat of the temp file: {e}"))?.len() } else { 0 };
    let rotated = order.start > 0 && order.start < order.size;
    let mut whole = blake3::Hasher::new();
    // `next`: where the next piece must start; `size`: bytes assembled; `pieces`: written.
    let (mut next, mut size, mut data_end, mut pieces) = (if rotated { order.start } else { 0 }, 0u64, 0u64, 0u64);
    while let Some(p) = rx.blocking_recv() {
        // Pieces must tile the file (in `order`) with no gap or overlap, or the hash would not
        // be the content's.
        if p.offset != next {
            return Err(format!("internal: chunk at {} handed over where {next} was expected", p.offset));
        }
        let len = p.len();
        // In the first segment of a rotated order nothing is hashed yet: it is read back at
        // the end, after the bytes before it.
        let hashing = !rotated || p.offset < order.start;
        match &p.body {
            Body::Write(data) => {
                file.write_all_at(data, p.offset).map_err(|e| format!("writing the temp file: {e}"))?;
                if hashing {
                    whole.update(data);
                }
            }
            Body::Kept(data) => {
                if hashing {
                    whole.update(data);
                }
            }
            Body::Hole(_) => {
                if p.offset < stale_end {
                    zero_range(file, p.offset, len.min(stale_end - p.offset))
                        .map_err(|e| format!("clearing a range of the temp file: {e}"))?;
                }
                if hashing {
                    hash_zeros(&mut whole, len);
                }
            }
        }
        size += len;
        next = p.offset + len;
        if rotated && next == order.size {
            next = 0;
        }
        if !matches!(p.body, Body::Hole(_)) {
            data_end = data_end.max(p.offset + len);
        }
        pieces += 1;
        written.send_replace(pieces);
    }
    if rotated && (size != order.size || next != order.start) {
        return Err(format!("internal: {size} bytes assembled in a rotated order over {}", order.size));
    }
    let mut len = file.metadata().map_err(|e| format!("fstat of the temp file: {e}"))?.len();
    if len < size && data_end <= len {
        // Only holes lie beyond the end: they read as zeros once the file has its length.
        file.set_len(size).map_err(|e| format!("extending the temp file: {e}"))?;
        len = size;
    }
    if len != size {
        return Err(format!("the temp file holds {len} bytes, {size} were assembled"));
    }
    if rotated {
        hash_back(file, &mut whole, order.start, size)?;
    }
    Ok(Assembled { hash: ChunkHash(*whole.finalize().as_bytes()), size })
}

/// Feeds bytes `from..to` of `file` to `hasher` (the first segment of a rotated order, written
/// before the bytes that precede it in the file).
fn hash_back(file: &File, hasher: &mut blake3::Hasher, from: u64, to: u64) -> Result<(), String> {
    /// Read buffer: large enough to keep read calls few, small beside a transfer's memory.
    const BUF: usize = 1 << 20;
    let mut buf = vec![0u8; BUF.min((to - from) as usize)];
    let mut at = from;
    while at < to {
        let n = buf.len().min((to - at) as usize);
        file.read_exact_at(&mut buf[..n], at).map_err(|e| format!("reading the temp file back: {e}"))?;
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(())
}

/// Makes `len` bytes at `offset` read as zeros: deallocated where the file system can punch
/// holes (the file's length unchanged), written with zeros elsewhere.
fn zero_range(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::FallocateFlags;
        if rustix::fs::fallocate(file, FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, offset, len).is_ok() {
            return Ok(());
        }
    }
    let mut done = 0;
    while done < len {
        let n = (len - done).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> (tempfile::TempDir, Arc<File>, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        let f = std::fs::OpenOptions::new().create(true).read(true).write(true).truncate(true).open(&p).unwrap();
        (dir, Arc::new(f), p)
    }

    #[tokio::test]
    async fn writes_in_order_and_hashes_what_it_wrote() {
        let (_d, f, p) = temp();
        let parts: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 1000 + i as usize * 37]).collect();
        let a = Assembler::start(f, 3, false);
        let mut off = 0;
        for data in &parts {
            a.push(Piece { offset: off, body: Body::Write(data.clone()) }).await.unwrap();
            off += data.len() as u64;
        }
        let got = a.finish().await.unwrap();
        let content = std::fs::read(&p).unwrap();
        assert_eq!(content, parts.concat());
        assert_eq!(got, Assembled { hash: ChunkHash::of(&content), size: content.len() as u64 });
    }

    #[tokio::test]
    async fn kept_bytes_are_hashed_not_rewritten() {
        let (_d, f, p) = temp();
        std::fs::write(&p, b"hello world").unwrap();
        let a = Assembler::start(f, 2, true);
        a.push(Piece { offset: 0, body: Body::Kept(b"hello".to_vec()) }).await.unwrap();
        a.push(Piece { offset: 5, body: Body::Write(b" WORLD".to_vec()) }).await.unwrap();
        let got = a.finish().await.unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"hello WORLD");
        assert_eq!(got.hash, ChunkHash::of(b"hello WORLD"));
    }

    #[tokio::test]
    async fn a_gap_or_a_longer_file_is_an_error() {
        let (_d, f, _p) = temp();
        let a = Assembler::start(f, 2, false);
        a.push(Piece { offset: 0, body: Body::Write(vec![1; 10]) }).await.unwrap();
        // Skips bytes 10..20: refused (the push may or may not see the writer stop first).
        let _ = a.push(Piece { offset: 20, body: Body::Write(vec![2; 10]) }).await;
        assert!(a.finish().await.unwrap_err().contains("expected"));

        // A partial download longer than what is assembled: its tail was not hashed.
        let (_d, f, p) = temp();
        std::fs::write(&p, b"0123456789").unwrap();
        let a = Assembler::start(f, 2, true);
        a.push(Piece { offset: 0, body: Body::Kept(b"0123".to_vec()) }).await.unwrap();
        assert!(a.finish().await.unwrap_err().contains("10 bytes"));
    }

    #[tokio::test]
    async fn a_rotated_order_writes_and_hashes_the_content_in_file_order() {
        let (_d, f, p) = temp();
        let parts: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 1000 + i as usize * 37]).collect();
        let offsets: Vec<u64> =
            parts.iter().scan(0u64, |o, d| Some(std::mem::replace(o, *o + d.len() as u64))).collect();
        let size = parts.iter().map(|d| d.len() as u64).sum();
        let (tx, mut w) = watch::channel(0);
        let a = Assembler::start_in(f, 3, false, Order { start: offsets[6], size }, tx);
        for i in (6..10).chain(0..6) {
            let body = if i == 8 { Body::Hole(parts[i].len() as u32) } else { Body::Write(parts[i].clone()) };
            a.push(Piece { offset: offsets[i], body }).await.unwrap();
        }
        w.wait_for(|&n| n == 10).await.unwrap();
        let got = a.finish().await.unwrap();
        let mut want = parts.concat();
        want[offsets[8] as usize..offsets[9] as usize].fill(0);
        assert_eq!(std::fs::read(&p).unwrap(), want);
        assert_eq!(got, Assembled { hash: ChunkHash::of(&want), size });

        // The order must be kept: a piece of the second segment too early is refused.
        let (_d, f, _p) = temp();
        let a = Assembler::start_in(f, 3, false, Order { start: offsets[6], size }, watch::channel(0).0);
        a.push(Piece { offset: offsets[6], body: Body::Write(parts[6].clone()) }).await.unwrap();
        let _ = a.push(Piece { offset: 0, body: Body::Write(parts[0].clone()) }).await;
        assert!(a.finish().await.unwrap_err().contains("expected"));
    }

    #[tokio::test]
    async fn empty_file() {
        let (_d, f, _p) = temp();
        let got = Assembler::start(f, 1, false).finish().await.unwrap();
        assert_eq!(got, Assembled { hash: ChunkHash::of(&[]), size: 0 });
    }

    /// Bytes the file really occupies on disk.
    fn allocated(p: &std::path::Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().blocks() * 512
    }

    const MIB: usize = 1 << 20;

    #[tokio::test]
    async fn holes_are_hashed_as_zeros_and_not_written() {
        let (_d, f, p) = temp();
        let a = Assembler::start(f, 2, false);
        let mut w = a.written();
        a.push(Piece { offset: 0, body: Body::Write(vec![7; 4096]) }).await.unwrap();
        a.push(Piece { offset: 4096, body: Body::Hole(8 * MIB as u32) }).await.unwrap();
        a.push(Piece { offset: 4096 + 8 * MIB as u64, body: Body::Write(vec![9; 4096]) }).await.unwrap();
        // The tail is a hole too: the file must still end up with its full length.
        a.push(Piece { offset: 8192 + 8 * MIB as u64, body: Body::Hole(4 * MIB as u32) }).await.unwrap();
        w.wait_for(|&n| n == 4).await.unwrap();
        let got = a.finish().await.unwrap();
        let mut want = vec![7u8; 4096];
        want.extend(vec![0u8; 8 * MIB]);
        want.extend(vec![9u8; 4096]);
        want.extend(vec![0u8; 4 * MIB]);
        assert_eq!(std::fs::read(&p).unwrap(), want);
        assert_eq!(got, Assembled { hash: ChunkHash::of(&want), size: want.len() as u64 });
        assert!(allocated(&p) < MIB as u64, "the zeros take no space: {} bytes allocated", allocated(&p));
    }

    #[tokio::test]
    async fn a_hole_over_old_bytes_of_a_resumed_download_clears_them() {
        let (_d, f, p) = temp();
        // A partial download whose middle holds bytes that are not the content's.
        std::fs::write(&p, [vec![1u8; MIB], vec![0xEE; 2 * MIB]].concat()).unwrap();
        let a = Assembler::start(f, 2, true);
        a.push(Piece { offset: 0, body: Body::Kept(vec![1; MIB]) }).await.unwrap();
        a.push(Piece { offset: MIB as u64, body: Body::Hole(4 * MIB as u32) }).await.unwrap();
        let got = a.finish().await.unwrap();
        let want = [vec![1u8; MIB], vec![0u8; 4 * MIB]].concat();
        assert_eq!(std::fs::read(&p).unwrap(), want);
        assert_eq!(got.hash, ChunkHash::of(&want));
        assert!(allocated(&p) < 2 * MIB as u64, "the old bytes were deallocated: {}", allocated(&p));
    }

    #[test]
    fn hash_zeros_is_blake3_of_zeros() {
        for len in [0usize, 1, 65535, 65536, 65537, 3 * MIB + 5] {
            let mut h = blake3::Hasher::new();
            hash_zeros(&mut h, len as u64);
            assert_eq!(ChunkHash(*h.finalize().as_bytes()), ChunkHash::of(&vec![0u8; len]), "{len}");
        }
    }
}
