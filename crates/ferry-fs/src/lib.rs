//! Ferry's file system side: it owns the watcher ([`watch`]), the scanner ([`scan`]) and its
//! ignore patterns ([`Ignore`]), the content-defined chunker ([`chunk_file`]), the atomic writer
//! ([`create_temp`] / [`commit_temp`] and friends), the version archive ([`archive`]) and path
//! safety ([`prepare_parent`], [`checked_path`]).
//!
//! The API is blocking: callers run it on threads of their own (or `spawn_blocking`). This crate
//! never touches the store or the network; it reports what it sees ([`Change`]) and does what
//! it is told, inside one share root at a time.
//!
//! Path safety: every path comes in as a [`ferry_proto::RelPath`], which is lexically confined
//! to the share. What a `RelPath` cannot rule out is a symlink (or a file) on the way, so every
//! function that touches `root/rel` first checks that each existing ancestor is a real
//! directory, opens final components with `O_NOFOLLOW`, and replaces content by renaming a
//! temp file written beside the target.
//!
//! Linux (Unix) only.

mod archive;
mod batch;
mod chunker;
mod error;
mod ferryignore;
mod scan;
mod snapshot;
mod watch;
mod write;

pub use archive::{ArchiveMode, VERSIONS_DIR, archive, archive_from, conflict_name, rename_within};
pub use batch::{PendingFile, commit_temps, move_file};
pub use chunker::{AVG_CHUNK, Chunked, MAX_CHUNK, MIN_CHUNK, chunk_bytes, chunk_file, hash_file};
pub use error::FsError;
pub use ferryignore::{IGNORE_FILE, Ignore};
pub use scan::{
    Change, Known, KnownPaths, Observed, Reused, ScanOutcome, Scope, Sink, SkipReason, Skipped, Special, scan,
    scan_reusing, scan_streaming,
};
pub use snapshot::{SnapshotOf, Taken, drop_snapshot, link_snapshot, link_snapshots, snapshot_path, take_snapshot};
pub use watch::{ShareWatcher, WatchEvent, watch};
pub use write::{
    TempFile, available_space, checked_path, commit_temp, create_dir, create_dirs_durable, create_fetched_temp,
    create_symlink, create_temp, fsync_dir, prepare_parent, read_file_range, read_range, remove_entry,
    remove_stale_temps, set_mtime, stat_known, unchanged_on_disk,
};

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// Modification time of `meta` in nanoseconds since the Unix epoch.
pub(crate) fn mtime_ns(meta: &Metadata) -> i64 {
    meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec())
}

/// Nanoseconds since the epoch as a [`filetime::FileTime`] (floor division, so times before
/// 1970 work too).
pub(crate) fn file_time(ns: i64) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32)
}

/// Truncates `s` to at most `max` bytes on a char boundary.
pub(crate) fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
