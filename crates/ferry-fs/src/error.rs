//! The one error type of this crate. Every variant names the path it is about.

use std::io;
use std::path::PathBuf;

use ferry_proto::PathError;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// An IO call failed; `op` says which (e.g. "open", "rename").
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A symlink or a non-directory sits where a directory must be, or the target is not
    /// something we may touch.
    #[error("unsafe path {path}: {reason}")]
    UnsafePath { path: PathBuf, reason: String },
    /// A directory to remove still has entries.
    #[error("directory {0} is not empty")]
    NotEmpty(PathBuf),
    /// The entry is of another kind than the operation needs (e.g. a file where a directory was
    /// asked for).
    #[error("{path}: expected {expected}, found {found}")]
    WrongKind { path: PathBuf, expected: &'static str, found: &'static str },
    /// Something is already at the destination of a rename that must not overwrite.
    #[error("{0} already exists")]
    Exists(PathBuf),
    /// A file changed (size or mtime) while it was being read.
    #[error("{0}: changed during scan")]
    Changed(PathBuf),
    /// Fewer bytes than asked for are available.
    #[error("{path}: cannot read {len} bytes at offset {offset} (file has {size})")]
    ShortRead { path: PathBuf, offset: u64, len: u32, size: u64 },
    /// A name on disk or a derived name is not a valid share-relative path.
    #[error("bad path {path}: {source}")]
    BadPath {
        path: String,
        #[source]
        source: PathError,
    },
    /// The ignore file could not be read.
    #[error("ignore file {path}: {message}")]
    Ignore { path: PathBuf, message: String },
    /// The watcher could not be started.
    #[error("watching {path}: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The inotify watch budget (`fs.inotify.max_user_watches`) is spent: the share's folders
    /// cannot all be watched.
    #[error(
        "watching {path}: the inotify watch limit is reached (raise fs.inotify.max_user_watches; `ferry doctor` shows the budget)"
    )]
    WatchLimit { path: PathBuf },
}

impl FsError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        FsError::Io { op, path: path.into(), source }
    }

    /// True when this is an IO error saying the path does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, FsError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Helper: attach an operation and path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T, FsError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T, FsError> {
        self.map_err(|e| FsError::io(op, path, e))
    }
}
