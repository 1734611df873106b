//! The chunk-fetch pipeline: fills a file with a known content, chunk by chunk, for a share's
//! pull (`share::apply`) and for a one-shot send (`send::receive`) alike.
//!
//! For each chunk, in order of preference: the bytes already in the file (a kept partial
//! download, when resuming), then whatever the caller's [`Source`] gives (a copy from a local
//! file, then a peer). Every chunk is checked against its hash before it is used, whichever
//! way it came. Up to `parallel` chunks are read or fetched at once; they are handed to one
//! writer in file order ([`assemble`]), which writes them and hashes the whole content in the
//! same pass, so the result's hash is known when the last byte is written, with no second read.
//! Long files are synced early ([`writeback`]) so the final fsync has little left to do.
//!
//! Invariant: when [`fill`] returns `Ok`, the file holds exactly the assembled bytes (its
//! length is checked) and their BLAKE3 is `Assembled::hash`; the caller compares it with the
//! content's hash before the file may replace anything.

pub(crate) mod assemble;
mod writeback;

use std::fs::File;
use std::future::Future;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use ferry_proto::ChunkHash;
use futures::StreamExt;

pub(crate) use assemble::Assembled;
use assemble::{Assembler, Piece};
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
}

impl Filled {
    pub fn total(&self) -> u64 {
        self.kept + self.local + self.remote
    }
}

/// Fills `file` with `chunks` (which tile the content from offset 0). `resume`: the file may
/// already hold some of them (each is verified before it is kept). `progress` is called after
/// each chunk is handed to the writer, with its length and origin.
pub(crate) async fn fill<S: Source>(
    file: Arc<File>,
    chunks: &[Chunk],
    resume: bool,
    parallel: usize,
    source: &S,
    mut progress: impl FnMut(u64, Origin),
) -> (Filled, Result<Assembled, FetchError>) {
    let jobs = chunks.iter().copied().enumerate().map(|(i, c)| {
        let file = file.clone();
        async move {
            if resume && let Some(data) = kept(file, c).await {
                return Ok((Piece { offset: c.offset, data, write: false }, Origin::Kept));
            }
            if let Some(data) = source.local(i, c).await
                && matches(&data, c)
            {
                return Ok((Piece { offset: c.offset, data, write: true }, Origin::Local));
            }
            let mut last = FetchError::Unavailable("no device to fetch from".into());
            for attempt in 0.. {
                match source.remote(i, c, attempt).await {
                    None => break,
                    Some(Ok(data)) if matches(&data, c) => {
                        return Ok((Piece { offset: c.offset, data, write: true }, Origin::Remote));
                    }
                    Some(Ok(_)) => {
                        last = FetchError::Failed("a device sent a chunk that does not match its hash".into())
                    }
                    Some(Err(e)) => last = e,
                }
            }
            Err(last)
        }
    });
    let assembler = Assembler::start(file.clone(), parallel);
    let mut writeback = Writeback::new(file.clone());
    let mut stream = futures::stream::iter(jobs).buffered(parallel.max(1));
    let mut filled = Filled::default();
    let mut failed = None;
    while let Some(res) = stream.next().await {
        match res {
            Ok((piece, origin)) => {
                let n = piece.data.len() as u64;
                let wrote = piece.write;
                if assembler.push(piece).await.is_err() {
                    break; // the writer stopped; finish() says why
                }
                match origin {
                    Origin::Kept => filled.kept += n,
                    Origin::Local => filled.local += n,
                    Origin::Remote => filled.remote += n,
                }
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

fn matches(data: &[u8], c: Chunk) -> bool {
    data.len() == c.len as usize && ChunkHash::of(data) == c.hash
}

/// The chunk's bytes if the file already holds them (verified).
async fn kept(file: Arc<File>, c: Chunk) -> Option<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; c.len as usize];
        file.read_exact_at(&mut buf, c.offset).ok()?;
        matches(&buf, c).then_some(buf)
    })
    .await
    .ok()
    .flatten()
}
