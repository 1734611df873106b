//! Devices fetching the same file at once serve each other the parts they already hold
//! (Syncthing's "download progress" idea), so that the device that made the file does not send
//! it whole to every other member of the share.
//!
//! - A share's downloads in progress are registered in its [`Downloads`] (the share actor
//!   registers; the handle holds the same registry so a peer's `BlockRequest` can read it). A
//!   block request for a chunk the live file does not hold may be answered from there, if that
//!   chunk is already written to the temp file: its bytes are hashed again before they leave.
//! - The downloading device tells the share's connected members which chunks it holds
//!   ([`Message::Progress`], see `share::progress`); each `PeerLink` keeps what its device told
//!   ([`Heard`], bounded, gone with the connection).
//! - A pull asks for a chunk first the devices that announced it, then the devices whose index
//!   has the whole content ([`candidates`]); devices start fetching at different chunks
//!   ([`start_for`]) so that they have something to trade early.
//!
//! Safety does not depend on any of it: whichever device sends a chunk, the fetch pipeline checks
//! it against its hash and the whole file against the record's hash before it replaces anything.
//! A device that announces chunks it does not have costs one `Missing` answer per chunk, and the
//! pull moves on to the next device in the (finite) list.
//!
//! [`Message::Progress`]: ferry_proto::wire::Message::Progress

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use ferry_proto::{ChunkHash, ChunkInfo, DeviceId, RelPath, ShareId};
use tokio::sync::watch;

/// Chunk index ranges (half-open), as in [`ferry_proto::wire::Message::Progress`].
pub(crate) type Ranges = Vec<(u32, u32)>;

/// One file being fetched into a temp file.
pub(crate) struct Download {
    /// Whole-file hash of the content being built.
    pub content: ChunkHash,
    /// The temp file (written by the fetch pipeline's writer only).
    pub file: Arc<File>,
    /// The content's chunks in file order, and where each starts.
    pub chunks: Vec<ChunkInfo>,
    pub offsets: Vec<u64>,
    /// The chunk the writer started at (see `fetch::rotation`).
    pub start: usize,
    /// How many chunks, in the writer's order, are on the file.
    pub written: watch::Receiver<u64>,
}

impl Download {
    /// The chunks on the file so far, as index ranges.
    pub fn have(&self) -> Ranges {
        have_ranges(self.chunks.len(), self.start, *self.written.borrow())
    }

    /// Chunk `offset`/`len`/`hash`'s bytes if it is one of this content's chunks, already on
    /// the file, and the file's bytes still hash to it. Blocking (reads the file).
    pub fn read(&self, offset: u64, len: u32, hash: ChunkHash) -> Option<Vec<u8>> {
        let i = self.offsets.binary_search(&offset).ok()?;
        let c = *self.chunks.get(i)?;
        if c.len != len || c.hash != hash {
            return None;
        }
        // Its place in the writer's order: written when that is below the count.
        let n = self.chunks.len();
        let start = if self.start < n { self.start } else { 0 };
        let place = (i + n - start) % n;
        if place as u64 >= *self.written.borrow() {
            return None;
        }
        let mut buf = vec![0u8; len as usize];
        self.file.read_exact_at(&mut buf, offset).ok()?;
        (ChunkHash::of(&buf) == hash).then_some(buf)
    }
}

/// Chunks `0..n` written from `start` on (wrapping), the first `written` of them, as ranges in
/// ascending order: at most two.
pub(crate) fn have_ranges(n: usize, start: usize, written: u64) -> Ranges {
    let start = if start < n { start } else { 0 };
    let w = (written as usize).min(n);
    let mut out = Vec::with_capacity(2);
    let first_end = (start + w).min(n);
    let wrapped = (start + w).saturating_sub(n);
    if wrapped > 0 {
        out.push((0, wrapped as u32));
    }
    if first_end > start {
        out.push((start as u32, first_end as u32));
    }
    out
}

/// A share's downloads in progress, by path.
#[derive(Default)]
pub(crate) struct Downloads(Mutex<HashMap<RelPath, Arc<Download>>>);

/// Keeps a download registered; dropping it takes it out.
pub(crate) struct Registered {
    downloads: Arc<Downloads>,
    path: RelPath,
    download: Arc<Download>,
}

impl Registered {
    pub fn download(&self) -> &Arc<Download> {
        &self.download
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut map = self.downloads.0.lock().unwrap();
        if map.get(&self.path).is_some_and(|d| Arc::ptr_eq(d, &self.download)) {
            map.remove(&self.path);
        }
    }
}

impl Downloads {
    /// Registers `download` of `path` until the returned guard is dropped (one per path: the
    /// share's actor fetches one version of a path at a time).
    pub fn register(self: &Arc<Self>, path: RelPath, download: Download) -> Registered {
        let download = Arc::new(download);
        self.0.lock().unwrap().insert(path.clone(), download.clone());
        Registered { downloads: self.clone(), path, download }
    }

    pub fn get(&self, path: &RelPath) -> Option<Arc<Download>> {
        self.0.lock().unwrap().get(path).cloned()
    }
}

/// Downloads of one device one connection may tell of at once: a device's share actors fetch
/// one file each at a time, so this is many shares' worth; it bounds what a hostile device
/// can make us keep (each entry holds at most `MAX_PROGRESS_RANGES` ranges).
pub(crate) const MAX_HEARD: usize = 64;

/// What one connected device told of its downloads in progress: for (share, path), the
/// content and the chunks it holds.
#[derive(Default)]
pub(crate) struct Heard(Mutex<HashMap<(ShareId, RelPath), (ChunkHash, Ranges)>>);

impl Heard {
    /// Records a `Progress` (checked by the caller); empty `have` forgets the download. False
    /// when it was refused: a new download past [`MAX_HEARD`].
    pub fn record(&self, share: ShareId, path: RelPath, content: ChunkHash, have: Ranges) -> bool {
        let mut map = self.0.lock().unwrap();
        let key = (share, path);
        if have.is_empty() {
            map.remove(&key);
            return true;
        }
        if map.len() >= MAX_HEARD && !map.contains_key(&key) {
            return false;
        }
        map.insert(key, (content, have));
        true
    }

    /// The chunks this device said it holds of `content` at `path`.
    pub fn ranges(&self, share: ShareId, path: &RelPath, content: ChunkHash) -> Option<Ranges> {
        let map = self.0.lock().unwrap();
        map.get(&(share, path.clone())).filter(|(c, _)| *c == content).map(|(_, r)| r.clone())
    }

    /// Whether this device said it holds chunk `index` of `content` at `path`.
    pub fn covers(&self, share: ShareId, path: &RelPath, content: ChunkHash, index: usize) -> bool {
        self.ranges(share, path, content)
            .is_some_and(|r| r.iter().any(|&(s, e)| (s as usize..e as usize).contains(&index)))
    }

    /// Chunks this device said it holds, over all its downloads of `share`.
    pub fn chunks_in(&self, share: ShareId) -> u64 {
        let map = self.0.lock().unwrap();
        map.iter().filter(|((s, _), _)| *s == share).flat_map(|(_, (_, r))| r).map(|&(s, e)| (e - s) as u64).sum()
    }
}

/// Where this device starts fetching a content of `n` chunks (see `fetch::rotation`).
///
/// - Some device announced chunks of it (it started earlier): the start of the longest range
///   announced, so the first chunks come from that device rather than from the file's holders.
/// - Otherwise, when other devices may be fetching it now (`fetching`: the members that do not
///   hold it whole): a place given by this device's rank among the sorted ids of those and this
///   one, `rank * n / count`, so that devices starting together start apart, each in its own
///   part of the file, and each part is some device's first.
/// - Otherwise (nobody to trade with) file order.
pub(crate) fn start_for(n: usize, me: DeviceId, fetching: &[DeviceId], heard: &[Ranges]) -> usize {
    let longest = heard.iter().flatten().max_by_key(|(s, e)| (e - s, std::cmp::Reverse(*s)));
    if let Some(&(s, _)) = longest
        && (s as usize) < n
    {
        return s as usize;
    }
    let mut all: Vec<DeviceId> = fetching.iter().copied().chain([me]).collect();
    all.sort();
    all.dedup();
    if all.len() < 2 {
        return 0;
    }
    let rank = all.iter().position(|d| *d == me).unwrap_or(0);
    rank * n / all.len()
}

/// The devices to ask for chunk number `index`, in order: those that announced it, then the
/// holders of the whole content not already listed. Each group is rotated by the chunk's index
/// plus `salt` (this device's own), so the chunks, and the devices asking, spread over them.
pub(crate) fn candidates<T: Clone + PartialEq>(index: usize, salt: usize, announced: &[T], holders: &[T]) -> Vec<T> {
    let rotated = |list: Vec<T>| -> Vec<T> {
        let n = list.len();
        (0..n).map(|k| list[(index.wrapping_add(salt).wrapping_add(k)) % n].clone()).collect()
    };
    let mut out = rotated(announced.to_vec());
    let rest: Vec<T> = holders.iter().filter(|h| !announced.contains(h)).cloned().collect();
    out.extend(rotated(rest));
    out
}

/// A number that differs between devices, to spread their choices ([`candidates`]).
pub(crate) fn salt_of(id: &DeviceId) -> usize {
    salt_of_bytes(&id.0)
}

/// The first bytes of a hash (a device id, a content hash) as a number, to spread choices.
pub(crate) fn salt_of_bytes(hash: &[u8; 32]) -> usize {
    usize::from_le_bytes(hash[..std::mem::size_of::<usize>()].try_into().expect("32 bytes"))
}

#[cfg(test)]
mod tests;
