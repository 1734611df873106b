//! The chunk-fetch pipeline: fills a file with a known content, chunk by chunk, for a share's
//! pull (`share::apply`) and for a one-shot send (`send::receive`) alike.
//!
//! First the chunk list is classified ([`plan`]): a chunk of zeros is never fetched nor written
//! (the file gets a hole there), and a chunk whose hash already occurred earlier in the list is
//! fetched once per transfer: the repeat is read back from the file where its first occurrence
//! was written. For every other chunk, in order of preference: the bytes already in the file (a
//! kept partial download, when resuming), then whatever the caller's [`Source`] gives (a copy
//! from a local file, then a peer). Every chunk is checked against its hash before it is used,
//! whichever way it came (a repeat whose read-back does not match is fetched like the others).
//! Up to `parallel` chunks are read or fetched at once; they are handed to one writer in file
//! order ([`assemble`]), which writes them and hashes the whole content in the same pass, so
//! the result's hash is known when the last byte is written, with no second read. Long files
//! are synced early ([`writeback`]) so the final fsync has little left to do.
//!
//! "File order" may be rotated ([`Fill::start`]): chunks `start..` first, then `..start`, so that
//! devices fetching the same file at once start in different places and can serve each other
//! the parts they hold (see `share::swarm`). Every rule above is in that order: a repeat's first
//! occurrence is the earlier one in it, and the writer hashes the file in file order anyway.
//!
//! Invariant: when [`fill`] returns `Ok`, the file holds exactly the assembled bytes (holes
//! read as the zeros that were hashed for them; its length is checked) and their BLAKE3 is
//! `Assembled::hash`; the caller compares it with the content's hash before the file may
//! replace anything.

pub(crate) mod assemble;
mod plan;
#[cfg(test)]
mod tests;
mod writeback;

use std::fs::File;
use std::future::Future;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use ferry_proto::ChunkHash;
use futures::StreamExt;
use tokio::sync::watch;

pub(crate) use assemble::Assembled;
use assemble::{Assembler, Body, Order, Piece};
use plan::Kind;
use writeback::Writeback;

/// One chunk of the content being built, at its place in the file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chunk {
    pub offset: u64,
    pub len: u32,
    pub hash: ChunkHash,
}

/// Where a chunk's bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Already in the file (a resumed download): hashed, not rewritten.
    Kept,
    /// Copied from a file on this device.
    Local,
    /// Fetched over the network.
    Remote,
    /// Read back from an earlier place in the same file (a chunk repeated in the content).
    Repeat,
    /// All zeros: left as a hole, nothing read or fetched.
    Zero,
}

/// Why a fill stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FetchError {
    /// Nobody could give a chunk now (no device connected, the connection dropped): worth
    /// trying again later with what is already in the file.
    Unavailable(String),
    /// Bad data from a device: the content cannot be built this way.
    Failed(String),
    /// A write or an early sync of the file failed: nothing in it can be trusted, drop it.
    Disk(String),
}

impl FetchError {
    pub fn message(&self) -> &str {
        match self {
            FetchError::Unavailable(m) | FetchError::Failed(m) | FetchError::Disk(m) => m,
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for FetchError {}

/// Gives the bytes of chunks the file does not hold yet. Whatever it returns is checked by the
/// pipeline (length and hash) before it is used.
pub(crate) trait Source: Sync {
    /// A copy of chunk number `index` from a file on this device, if the caller knows one. A
    /// copy that no longer matches (the file changed) falls through to [`Source::remote`].
    fn local(&self, _index: usize, _chunk: Chunk) -> impl Future<Output = Option<Vec<u8>>> + Send {
        async { None }
    }

    /// The chunk from another device: try number `attempt` (0, 1, ...; each may ask another
    /// device). `None`: no more devices to ask.
    fn remote(
        &self,
        index: usize,
        chunk: Chunk,
        attempt: usize,
    ) -> impl Future<Output = Option<Result<Vec<u8>, FetchError>>> + Send;
}

/// What a fill did before it ended (also on failure: a caller keeps a partial download only
/// when it holds something).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Filled {
    pub kept: u64,
    pub local: u64,
    pub remote: u64,
    pub repeated: u64,
    pub zero: u64,
}

impl Filled {
    /// Bytes the file holds from this fill or a kept one (holes hold nothing).
    pub fn total(&self) -> u64 {
        self.kept + self.local + self.remote + self.repeated
    }

    fn add(&mut self, origin: Origin, n: u64) {
        match origin {
            Origin::Kept => self.kept += n,
            Origin::Local => self.local += n,
            Origin::Remote => self.remote += n,
            Origin::Repeat => self.repeated += n,
            Origin::Zero => self.zero += n,
        }
    }
}

/// How a [`fill`] goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fill {
    /// The file may already hold some chunks (each is verified before it is kept); otherwise
    /// it is fresh (empty, or zeros throughout).
    pub resume: bool,
    /// Chunks read or fetched at once.
    pub parallel: usize,
    /// The chunk to start at (see the module's doc); 0 (or beyond the list) is file order.
    pub start: usize,
}

/// The order a [`fill`] with `start` hands `n` chunks to the writer: `start..n`, then `..start`.
pub(crate) fn rotation(n: usize, start: usize) -> impl Iterator<Item = usize> {
    let start = if start < n { start } else { 0 };
    (start..n).chain(0..start)
}

/// Fills `file` with `chunks` (which tile the content from offset 0). `written` gets how many
/// chunks (in the order [`rotation`] gives) are on the file. `progress` is called after each
/// chunk is handed to the writer, with its length and origin.
pub(crate) async fn fill<S: Source>(
    file: Arc<File>,
    chunks: &[Chunk],
    how: Fill,
    written: watch::Sender<u64>,
    source: &S,
    mut progress: impl FnMut(u64, Origin),
) -> (Filled, Result<Assembled, FetchError>) {
    let (resume, parallel) = (how.resume, how.parallel);
    let order: Vec<usize> = rotation(chunks.len(), how.start).collect();
    let list: Vec<Chunk> = order.iter().map(|&i| chunks[i]).collect();
    let assembler_order = match list.first() {
        Some(c) if c.offset > 0 => Order { start: c.offset, size: chunks.iter().map(|c| c.len as u64).sum() },
        _ => Order::default(),
    };
    let for_plan = list.clone();
    let tail = order.iter().position(|&i| i + 1 == chunks.len()).unwrap_or(0);
    // Hashes zeros for a few lengths: off the async threads.
    let kinds = tokio::task::spawn_blocking(move || plan::classify(&for_plan, tail)).await;
    let Ok(kinds) = kinds else {
        return (Filled::default(), Err(FetchError::Disk("internal: planning the chunks failed".into())));
    };
    let assembler = Assembler::start_in(file.clone(), parallel, resume, assembler_order, written);
    let job = Job { file: &file, chunks: &list, resume, source, written: assembler.written() };
    let job = &job;
    // Owned items only in the closure's arguments (a borrowed one makes the future's Send
    // bound higher-ranked, which the compiler cannot prove).
    let jobs = order.into_iter().zip(list.clone()).zip(kinds).map(move |((i, c), kind)| job.get(i, c, kind));
    let mut writeback = Writeback::new(file.clone());
    // No deadlock: a repeat waits only for its first occurrence, which is earlier in file
    // order, so it is either in this ordered window ahead of it (and needs nothing from later
    // chunks) or already handed to the writer, which drains its queue on its own.
    let mut stream = futures::stream::iter(jobs).buffered(parallel.max(1));
    let mut filled = Filled::default();
    let mut failed = None;
    while let Some(res) = stream.next().await {
        match res {
            Ok((piece, origin)) => {
                let n = piece.len();
                let wrote = matches!(piece.body, Body::Write(_));
                if assembler.push(piece).await.is_err() {
                    break; // the writer stopped; finish() says why
                }
                filled.add(origin, n);
                if wrote {
                    writeback.wrote(n);
                }
                progress(n, origin);
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop(stream);
    // Everything handed over is written before the file is judged.
    let assembled = assembler.finish().await.map_err(FetchError::Disk);
    let synced = writeback.finish().await.map_err(FetchError::Disk);
    let result = match (failed, assembled, synced) {
        (Some(e), _, _) => Err(e),
        (None, Err(e), _) | (None, Ok(_), Err(e)) => Err(e),
        (None, Ok(a), Ok(())) => Ok(a),
    };
    (filled, result)
}

/// What every chunk's job of one [`fill`] shares.
struct Job<'a, S> {
    file: &'a Arc<File>,
    /// The chunks in the order they are handed to the writer.
    chunks: &'a [Chunk],
    resume: bool,
    source: &'a S,
    /// How many chunks the writer has written, for repeats.
    written: watch::Receiver<u64>,
}

impl<S: Source> Job<'_, S> {
    /// Chunk number `i`'s bytes (verified) or hole, and where they came from (`kind`'s
    /// `Repeat` counts in the writer's order).
    async fn get(&self, i: usize, c: Chunk, kind: Kind) -> Result<(Piece, Origin), FetchError> {
        let piece = |body| Piece { offset: c.offset, body };
        if kind == Kind::Zero {
            // Not even a kept one is read: the writer clears whatever is there.
            return Ok((piece(Body::Hole(c.len)), Origin::Zero));
        }
        if self.resume
            && let Some(data) = read_verified(self.file.clone(), c.offset, c).await
        {
            return Ok((piece(Body::Kept(data)), Origin::Kept));
        }
        if let Kind::Repeat(first) = kind
            && let Some(data) = self.repeat(first, c).await
        {
            return Ok((piece(Body::Write(data)), Origin::Repeat));
        }
        if let Some(data) = self.source.local(i, c).await
            && matches(&data, c)
        {
            return Ok((piece(Body::Write(data)), Origin::Local));
        }
        let mut last = FetchError::Unavailable("no device to fetch from".into());
        for attempt in 0.. {
            match self.source.remote(i, c, attempt).await {
                None => break,
                Some(Ok(data)) if matches(&data, c) => return Ok((piece(Body::Write(data)), Origin::Remote)),
                Some(Ok(_)) => last = FetchError::Failed("a device sent a chunk that does not match its hash".into()),
                Some(Err(e)) => last = e,
            }
        }
        Err(last)
    }

    /// `c`'s bytes read back from the chunk at place `first` of the writer's order, its first
    /// occurrence, once the writer is past it. `None` (fetch it the usual way) if the writer
    /// stopped or the bytes do not match.
    async fn repeat(&self, first: usize, c: Chunk) -> Option<Vec<u8>> {
        self.written.clone().wait_for(|&w| w > first as u64).await.ok()?;
        read_verified(self.file.clone(), self.chunks[first].offset, c).await
    }
}

fn matches(data: &[u8], c: Chunk) -> bool {
    data.len() == c.len as usize && ChunkHash::of(data) == c.hash
}

/// Chunk `c`'s bytes if the file holds them at `at` (verified).
async fn read_verified(file: Arc<File>, at: u64, c: Chunk) -> Option<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; c.len as usize];
        file.read_exact_at(&mut buf, at).ok()?;
        matches(&buf, c).then_some(buf)
    })
    .await
    .ok()
    .flatten()
}
