//! The pipeline end to end on a real temp file, with a fake peer that counts what it is asked.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use super::*;

const MIB: usize = 1 << 20;

/// A peer holding every chunk of one content, counting requests per hash.
#[derive(Default)]
struct Peer {
    data: HashMap<ChunkHash, Vec<u8>>,
    calls: Mutex<HashMap<ChunkHash, usize>>,
}

impl Peer {
    fn calls(&self) -> HashMap<ChunkHash, usize> {
        self.calls.lock().unwrap().clone()
    }
}

impl Source for Peer {
    async fn remote(&self, _index: usize, c: Chunk, attempt: usize) -> Option<Result<Vec<u8>, FetchError>> {
        if attempt > 0 {
            return None;
        }
        // Answers come back out of order, as from a real peer.
        for _ in 0..(c.offset / 4096) % 5 {
            tokio::task::yield_now().await;
        }
        *self.calls.lock().unwrap().entry(c.hash).or_default() += 1;
        Some(self.data.get(&c.hash).cloned().ok_or_else(|| FetchError::Unavailable("not here".into())))
    }
}

/// The chunk list, the content and a peer holding it, for content made of `parts`.
fn content(parts: &[&[u8]]) -> (Vec<Chunk>, Vec<u8>, Peer) {
    let (mut chunks, mut bytes, mut peer) = (Vec::new(), Vec::new(), Peer::default());
    for p in parts {
        let c = Chunk { offset: bytes.len() as u64, len: p.len() as u32, hash: ChunkHash::of(p) };
        peer.data.insert(c.hash, p.to_vec());
        chunks.push(c);
        bytes.extend_from_slice(p);
    }
    (chunks, bytes, peer)
}

fn pseudo_random(seed: u8, len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed as u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn open(p: &Path) -> Arc<File> {
    Arc::new(std::fs::OpenOptions::new().create(true).read(true).write(true).truncate(false).open(p).unwrap())
}

/// Whether the file system under `dir` leaves unwritten ranges unallocated (ext4, xfs, btrfs,
/// tmpfs do); the sparseness checks only make sense there.
fn has_holes(dir: &Path) -> bool {
    let p = dir.join("probe");
    std::fs::File::create(&p).unwrap().set_len(MIB as u64).unwrap();
    let holes = std::fs::metadata(&p).unwrap().blocks() == 0;
    std::fs::remove_file(p).unwrap();
    holes
}

async fn run(file: Arc<File>, chunks: &[Chunk], resume: bool, peer: &Peer) -> (Filled, Result<Assembled, FetchError>) {
    run_from(file, chunks, resume, peer, 0).await
}

/// [`run`], handing the chunks to the writer from chunk number `start` (see [`rotation`]).
async fn run_from(
    file: Arc<File>,
    chunks: &[Chunk],
    resume: bool,
    peer: &Peer,
    start: usize,
) -> (Filled, Result<Assembled, FetchError>) {
    let how = Fill { resume, parallel: 4, start };
    fill(file, chunks, how, watch::channel(0).0, peer, |_, _| {}).await
}

#[tokio::test]
async fn any_start_builds_the_same_file_with_its_repeats_and_holes() {
    let (z, a, b, c) =
        (vec![0u8; MIB], pseudo_random(11, 300_000), pseudo_random(12, 70_000), pseudo_random(13, 90_000));
    let parts: Vec<&[u8]> = vec![&a, &z, &b, &a, &c, &z, &b, &c, &a, &z[..100_000]];
    let (chunks, bytes, peer) = content(&parts);
    for start in 0..=chunks.len() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        let (filled, got) = run_from(open(&p), &chunks, false, &peer, start).await;
        let got = got.unwrap_or_else(|e| panic!("start {start}: {e}"));
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "start {start}");
        assert_eq!(got, Assembled { hash: ChunkHash::of(&bytes), size: bytes.len() as u64 }, "start {start}");
        assert_eq!(filled.remote, (a.len() + b.len() + c.len()) as u64, "start {start}: each chunk fetched once");
    }
    assert_eq!(rotation(4, 1).collect::<Vec<_>>(), [1, 2, 3, 0]);
    assert_eq!(rotation(4, 9).collect::<Vec<_>>(), [0, 1, 2, 3], "a start beyond the list is file order");
}

#[tokio::test]
async fn a_repeated_chunk_is_fetched_once() {
    let (a, b, c) = (pseudo_random(1, 300_000), pseudo_random(2, 70_000), pseudo_random(3, MIB));
    // The same three chunks over and over (more repeats than the window of parallel fetches
    // and the writer's queue together), then once more in another order.
    let mut parts: Vec<&[u8]> = Vec::new();
    for _ in 0..12 {
        parts.extend([&a[..], &b[..], &c[..]]);
    }
    parts.extend([&c[..], &a[..]]);
    let (chunks, bytes, peer) = content(&parts);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t");
    let (filled, got) = run(open(&p), &chunks, false, &peer).await;
    let got = got.unwrap();
    assert_eq!(peer.calls().len(), 3);
    assert!(peer.calls().values().all(|&n| n == 1), "each distinct chunk asked once: {:?}", peer.calls());
    assert_eq!(filled.remote, (a.len() + b.len() + c.len()) as u64);
    assert_eq!(filled.repeated, bytes.len() as u64 - filled.remote);
    assert_eq!(std::fs::read(&p).unwrap(), bytes);
    assert_eq!(got, Assembled { hash: ChunkHash::of(&bytes), size: bytes.len() as u64 });
}

#[tokio::test]
async fn zero_chunks_are_holes_never_fetched() {
    let (z, d) = (vec![0u8; MIB], pseudo_random(4, 200_000));
    let tail = vec![0u8; 100_000];
    let mut parts: Vec<&[u8]> = vec![&d];
    parts.extend(std::iter::repeat_n(&z[..], 24));
    parts.extend([&d[..], &z[..], &tail[..]]);
    let (chunks, bytes, peer) = content(&parts);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t");
    let (filled, got) = run(open(&p), &chunks, false, &peer).await;
    let got = got.unwrap();
    assert_eq!(peer.calls(), HashMap::from([(ChunkHash::of(&d), 1)]), "only the data chunk is asked for");
    assert_eq!(filled.zero, 25 * MIB as u64 + tail.len() as u64);
    assert_eq!(std::fs::metadata(&p).unwrap().len(), bytes.len() as u64, "a tail hole still counts");
    assert_eq!(std::fs::read(&p).unwrap(), bytes);
    assert_eq!(got, Assembled { hash: ChunkHash::of(&bytes), size: bytes.len() as u64 });
    if has_holes(dir.path()) {
        let on_disk = std::fs::metadata(&p).unwrap().blocks() * 512;
        assert!(on_disk < 2 * MIB as u64, "{on_disk} bytes allocated for a file of {}", bytes.len());
    }
}

#[tokio::test]
async fn a_resumed_download_keeps_its_prefix_and_ends_exact() {
    let (z, d, e) = (vec![0u8; MIB], pseudo_random(5, 500_000), pseudo_random(6, 90_000));
    let parts: Vec<&[u8]> = vec![&d, &z, &e, &z, &z, &d, &e, &z];
    let (chunks, bytes, peer) = content(&parts);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t");
    // A partial download: the first three chunks (zeros written as data, the way an older
    // version wrote them), then bytes that belong to nothing over the fourth.
    let kept = chunks[2].offset as usize + e.len();
    std::fs::write(&p, [&bytes[..kept], &vec![0xAB; MIB / 2]].concat()).unwrap();
    let (filled, got) = run(open(&p), &chunks, true, &peer).await;
    let got = got.unwrap();
    assert_eq!(filled.kept, (d.len() + e.len()) as u64, "the kept data chunks are not fetched");
    assert!(peer.calls().is_empty(), "the rest repeats what is kept: {:?}", peer.calls());
    assert_eq!(std::fs::read(&p).unwrap(), bytes);
    assert_eq!(got, Assembled { hash: ChunkHash::of(&bytes), size: bytes.len() as u64 });
    if has_holes(dir.path()) {
        let on_disk = std::fs::metadata(&p).unwrap().blocks() * 512;
        assert!(on_disk < 2 * MIB as u64, "zeros and stale bytes deallocated: {on_disk}");
    }
}

#[tokio::test]
async fn a_repeat_of_a_chunk_nobody_has_fails_without_hanging() {
    let (a, b) = (pseudo_random(7, 100_000), pseudo_random(8, 100_000));
    let parts: Vec<&[u8]> = vec![&b, &a, &b, &a, &a];
    let (chunks, _, mut peer) = content(&parts);
    peer.data.remove(&ChunkHash::of(&a));
    let dir = tempfile::tempdir().unwrap();
    let (filled, got) = run(open(&dir.path().join("t")), &chunks, false, &peer).await;
    assert!(matches!(got, Err(FetchError::Unavailable(_))), "{got:?}");
    assert_eq!(filled.remote, b.len() as u64);
}
