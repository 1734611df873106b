//! The scanner: compares what is on disk with what the index knows and reports the difference.
//!
//! Entries whose stat info (kind, size, mtime, inode, executable bit, link target) matches the
//! index are not read again; everything else is hashed and reported. Symlinks are never
//! followed: they are reported as links with their target.
//!
//! Layout: this module holds the types and the entry points; [`walk`] walks directories and
//! listed paths and decides what was deleted, [`record`] turns an entry's stat info into a
//! [`Known`] and decides whether it changed, and [`rehash`] reads a changed file's content.
//! The submodules add methods to one `Scanner`, the state of one scan.

mod record;
mod rehash;
mod walk;

use std::collections::HashSet;
use std::fs;
use std::hash::BuildHasherDefault;
use std::path::Path;

use ferry_proto::{ChunkHash, ChunkInfo, FileKind, RelPath};

use crate::error::{FsError, IoContext};
use crate::ferryignore::Ignore;
pub(crate) use record::known_from_meta;

/// What the index knows about a path, as far as the scanner needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    pub kind: FileKind,
    pub deleted: bool,
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
    pub executable: bool,
}

/// A path as found on disk, hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub path: RelPath,
    pub kind: FileKind,
    /// Content length for files; 0 for directories and symlinks.
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
    /// Any x bit set (files only).
    pub executable: bool,
    /// BLAKE3 of the content (files), of the target (links), zero (directories).
    pub hash: ChunkHash,
    /// Empty for directories and links.
    pub chunks: Vec<ChunkInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Upsert(Observed),
    Deleted(RelPath),
}

/// What to scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The whole share.
    Full,
    /// These paths (and, for directories, everything below them).
    Paths(Vec<RelPath>),
}

/// A special file's kind: Ferry syncs none of them and never opens one (opening a FIFO with no
/// writer blocks, opening a device can act on the device), it only lstats them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    Fifo,
    Socket,
    BlockDevice,
    CharDevice,
}

impl Special {
    /// The kind of a file type that is neither a file, a directory nor a symlink.
    pub fn of(ft: &std::fs::FileType) -> Special {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            Special::Fifo
        } else if ft.is_socket() {
            Special::Socket
        } else if ft.is_block_device() {
            Special::BlockDevice
        } else {
            Special::CharDevice
        }
    }
}

/// Why the scanner left an entry out of the index.
#[derive(Debug)]
pub enum SkipReason {
    /// The name is not UTF-8 (every device must be able to name the file alike).
    NotUtf8,
    /// The name makes no valid share path (a path or a name too long for Ferry's limits).
    BadPath(ferry_proto::PathError),
    /// A FIFO, socket or device (lstat only; never opened).
    Special(Special),
    /// A symlink whose target is not UTF-8.
    LinkTargetNotUtf8,
    /// It could not be read (lstat, read_dir, open or read failed: permission denied, an IO
    /// error). Its known record is left alone, and nothing below it is reported deleted.
    Unreadable(FsError),
    /// It changed while it was read: not an item that cannot be synced, only one read again
    /// at its next scan (the watcher reports the change that caused it).
    Changed,
}

/// An entry the scanner left out, and why.
#[derive(Debug)]
pub struct Skipped {
    /// The share-relative path, lossily decoded when the name is not UTF-8 (for people to read;
    /// never joined onto a root).
    pub path: String,
    pub reason: SkipReason,
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    /// Upserts parents before children; deletes children before parents.
    pub changes: Vec<Change>,
    /// Entries left out, each with why. Their known records are left alone (a special file
    /// where an indexed file was is, though, that file's deletion).
    pub skipped: Vec<Skipped>,
    /// Entries looked at.
    pub seen: usize,
    /// Bytes read and hashed.
    pub hashed_bytes: u64,
    /// Ferry's temp files (and links) the walk passed, by full path: writes in progress, or
    /// left by a crash (see `crate::remove_stale_temps`). Listed so that a start needs no walk
    /// of its own to find them.
    pub temps: Vec<std::path::PathBuf>,
}

/// Scans `scope` under `root`. `known(p)` is the index's record of `p`; `known_paths` streams
/// the index's live paths (see [`KnownPaths`]).
///
/// Ignored paths are neither reported nor deleted (a path that becomes ignored keeps its record
/// as it was). Entries left out go to `skipped` with their reason; nothing below one that could
/// not be read is reported deleted.
pub fn scan(
    root: &Path,
    known: &dyn Fn(&RelPath) -> Option<Known>,
    known_paths: KnownPaths<'_>,
    scope: &Scope,
    ignore: &Ignore,
) -> Result<ScanOutcome, FsError> {
    scan_reusing(root, known, known_paths, scope, ignore, &|_, _| None)
}

/// The index's live paths, as the scan asks for them: `known_paths(None, f)` hands `f` every
/// live path of the index, `known_paths(Some(p), f)` those strictly below `p`, until `f`
/// returns false. Streamed, so a full scan of a million-file share never holds the list.
pub type KnownPaths<'a> = &'a dyn Fn(Option<&RelPath>, &mut dyn FnMut(RelPath) -> bool);

/// Content already known for a file that was moved: its whole-file hash and chunks.
pub type Reused = (ChunkHash, Vec<ChunkInfo>);

/// Where [`scan_streaming`] hands its changes while it walks: each batch in order (upserts
/// only; deletes are decided at the end and returned). Returns false to stop the scan (the
/// caller could not take the batch: what the scan returns then is incomplete and must not be
/// used).
pub type Sink<'a> = &'a mut dyn FnMut(Vec<Change>) -> bool;

/// [`scan`], but before hashing a new or changed file it asks `reuse(path, stat)` for content
/// already known for it (a file renamed from a path the index knows, with the same inode, size
/// and mtime: the same test that lets an unchanged file skip hashing). A renamed 1 GiB file
/// then costs a lookup instead of a full read.
pub fn scan_reusing(
    root: &Path,
    known: &dyn Fn(&RelPath) -> Option<Known>,
    known_paths: KnownPaths<'_>,
    scope: &Scope,
    ignore: &Ignore,
    reuse: &dyn Fn(&RelPath, &Known) -> Option<Reused>,
) -> Result<ScanOutcome, FsError> {
    scan_streaming(root, known, known_paths, scope, ignore, reuse, usize::MAX, &mut |_| true)
}

/// [`scan_reusing`], handing the changes found so far to `sink` whenever `batch` of them piled
/// up, so a scan that finds a million new files never holds them all: the caller commits each
/// batch while the walk goes on. What is returned holds the rest (the last partial batch, then
/// the deletes). `known` and `known_paths` must answer from the index as it was when the scan
/// began (one snapshot): batches the caller commits meanwhile must not look like paths that
/// were known before the scan and not seen by it.
#[allow(clippy::too_many_arguments)] // the scan's inputs, each a separate question to the index
pub fn scan_streaming(
    root: &Path,
    known: &dyn Fn(&RelPath) -> Option<Known>,
    known_paths: KnownPaths<'_>,
    scope: &Scope,
    ignore: &Ignore,
    reuse: &dyn Fn(&RelPath, &Known) -> Option<Reused>,
    batch: usize,
    sink: Sink<'_>,
) -> Result<ScanOutcome, FsError> {
    let mut s = Scanner {
        root,
        known,
        reuse,
        ignore,
        out: ScanOutcome::default(),
        // Set below: whether any path could become a delete.
        track: true,
        seen: SeenPaths::default(),
        failed: Vec::new(),
        deleted: Vec::new(),
        batch: batch.max(1),
        sink,
        stopped: false,
    };
    match scope {
        Scope::Full => {
            // The root must be readable; an error here is not a reason to delete everything.
            fs::read_dir(root).ctx("read_dir", root)?;
            // With no live path in the index nothing can become a delete, so a first scan of a
            // million new files keeps no set of the paths it saw. (Asked first, not after the
            // walk: the answer is the index as it was when the scan began either way. Not "only
            // the paths `known` has": a re-hash scan's `known` answers None for everything.)
            let mut any = false;
            known_paths(None, &mut |_| {
                any = true;
                false
            });
            s.track = any;
            let started = std::time::Instant::now();
            s.walk(root, None);
            let walked = started.elapsed();
            if any {
                s.collect_deletes(None, known_paths);
            }
            tracing::debug!(
                walk_ms = walked.as_millis() as u64,
                deletes_ms = (started.elapsed() - walked).as_millis() as u64,
                "full scan"
            );
        }
        Scope::Paths(list) => {
            let mut list = list.clone();
            list.sort();
            list.dedup();
            let mut folded: Vec<RelPath> = Vec::new();
            for p in list {
                // Sorted, so an ancestor comes before its descendants.
                if !folded.last().is_some_and(|prev| p.is_within(prev)) {
                    folded.push(p);
                }
            }
            for p in &folded {
                s.scan_path(p, known_paths);
            }
        }
    }
    let mut deleted = std::mem::take(&mut s.deleted);
    // Reverse order puts children before their parents.
    deleted.sort_by(|a, b| b.cmp(a));
    deleted.dedup();
    s.out.changes.extend(deleted.into_iter().map(Change::Deleted));
    Ok(s.out)
}

struct Scanner<'a> {
    root: &'a Path,
    known: &'a dyn Fn(&RelPath) -> Option<Known>,
    reuse: &'a dyn Fn(&RelPath, &Known) -> Option<Reused>,
    ignore: &'a Ignore,
    out: ScanOutcome,
    /// Whether visited paths go into `seen` (false only for a full walk of an empty index;
    /// listed paths may share ancestors, which must be visited once).
    track: bool,
    /// Paths that exist on disk (or could not be checked): never reported deleted.
    seen: SeenPaths,
    /// Paths that could not be read: nothing below them is reported deleted.
    failed: Vec<RelPath>,
    deleted: Vec<RelPath>,
    /// Changes handed to `sink` each time this many piled up in `out.changes`.
    batch: usize,
    sink: Sink<'a>,
    /// The sink refused a batch: the walk ends as soon as it can.
    stopped: bool,
}

impl Scanner<'_> {
    /// Reports a change, handing a full batch to the sink.
    fn emit(&mut self, change: Change) {
        self.out.changes.push(change);
        if self.out.changes.len() >= self.batch && !self.stopped {
            let batch = std::mem::take(&mut self.out.changes);
            if !(self.sink)(batch) {
                self.stopped = true;
            }
        }
    }

    fn skip(&mut self, path: impl Into<String>, reason: SkipReason) {
        let path = path.into();
        tracing::debug!(%path, ?reason, "skipped");
        self.out.skipped.push(Skipped { path, reason });
    }

    fn live_known(&self, rel: &RelPath) -> Option<Known> {
        (self.known)(rel).filter(|k| !k.deleted)
    }
}

/// The paths a scan saw, as 128-bit digests of their names: 20-40 bytes a path in the set
/// (16 and a control byte, at the table's load) instead of the path itself (a full scan of a
/// million files held about 100 MiB of them). Two paths with one
/// digest would make a deleted path look seen, a deletion noticed late, never a false one; at
/// 2^-128 a pair (BLAKE3, so not even a chosen name finds one) it does not happen.
#[derive(Default)]
struct SeenPaths(HashSet<u128, BuildHasherDefault<DigestHasher>>);

impl SeenPaths {
    fn digest(p: &RelPath) -> u128 {
        let hash = blake3::hash(p.as_str().as_bytes());
        u128::from_le_bytes(hash.as_bytes()[..16].try_into().expect("16 of 32 bytes"))
    }

    fn insert(&mut self, p: &RelPath) {
        self.0.insert(Self::digest(p));
    }

    fn contains(&self, p: &RelPath) -> bool {
        self.0.contains(&Self::digest(p))
    }
}

/// The digests are uniform already: the set's hasher takes their low bits instead of hashing
/// them again.
#[derive(Default)]
struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u128s are hashed here (write_u128 lands here by default).
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 |= u64::from(*b) << (8 * i);
        }
    }
}

#[cfg(test)]
mod tests;
