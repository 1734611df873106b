//! The share actor's error ([`ShareError`]): what can go wrong in a share's scan, pull and
//! apply, and in the commands the actor runs for a client (restore, rewind, resolve, revert).
//! Each failure keeps its cause (the store's, the file system's, the fetch pipeline's, a
//! blocking task's); it becomes text only where it leaves the actor: an `Event::Error` message
//! (its `Display`), or a command's reply (`From<ShareError> for ApiError`).
//!
//! A leaf module (it imports only `api` and `fetch`, themselves leaves), so `share`, `history`
//! and `conflicts` can all use it without an import cycle.
//!
//! Invariant: every message is exactly the text the code produced before these errors were
//! typed (the events and the CLI show them; wrapped causes are `transparent`, so a wrapped
//! error reads as it did on its own).

use std::path::PathBuf;
use std::sync::Arc;

use ferry_proto::{DeviceId, RelPath};
use tokio::task::JoinError;

use crate::api::{ApiError, ErrorCode};
use crate::fetch::FetchError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ShareError {
    #[error(transparent)]
    Store(#[from] ferry_store::StoreError),
    #[error(transparent)]
    Fs(#[from] ferry_fs::FsError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A blocking task panicked or was cancelled.
    #[error(transparent)]
    Join(#[from] JoinError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Path(#[from] ferry_proto::PathError),
    /// A call through the shared context (`Context::db`, the guard), which already speaks
    /// `ApiError`: kept whole, code included.
    #[error(transparent)]
    Context(#[from] ApiError),
    /// The file at the path is not what the index says (the caller has asked for a rescan of
    /// it: it may be a local change, even a conflict).
    #[error("changed on this device since it was indexed; rescanning before syncing it")]
    ChangedHere,
    /// Some chunks must come from a peer and none that has this version is connected.
    #[error("no connected device has this version; waiting for one")]
    NoSource,
    /// The chunks `sender` announced do not make the whole-file hash (or size) of its record.
    #[error("{} sent a record whose hash does not match its content; refused", .sender.short())]
    WholeHashMismatch { sender: DeviceId },
    /// Writing a small file's fetched content into its temp file.
    #[error("writing {}: {source}", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
    /// The blocking task writing a batch of small files failed; every file of the batch
    /// shares this one cause.
    #[error("writing failed: {0}")]
    BatchWrite(#[source] Arc<JoinError>),
    /// A version record whose archive path leaves the share's archive (never followed).
    #[error("version path {0:?} is not inside the archive")]
    OutsideArchive(String),
    /// A version's archived copy is there but is not a regular file.
    #[error("{} is not a regular file", .0.display())]
    ArchivedNotAFile(PathBuf),
    #[error("the archived copy {} is gone: {source}", .path.display())]
    ArchivedGone { path: PathBuf, source: std::io::Error },
    /// A version this device holds no copy of, and no connected device of the share keeps.
    #[error("version {version} of {path} is not kept on this device and no connected device keeps it")]
    VersionNotHere { path: RelPath, version: u64 },
    /// Fetching a version from another device failed (its answer, or its bytes, were wrong).
    #[error("fetching the old content of {path} from {} failed: {reason}", .device.short())]
    VersionFetch { path: RelPath, device: DeviceId, reason: String },
    /// Something other than a regular file stands where a file is to be archived.
    #[error("{0} is not a regular file here; move it away first")]
    NotAFileHere(RelPath),
    #[error("{}: {source}", .path.display())]
    OpenArchived { path: PathBuf, source: std::io::Error },
    #[error("copying {}: {source}", .path.display())]
    CopyArchived { path: PathBuf, source: std::io::Error },
    /// A version's archived copy no longer has the content its record promises.
    #[error("the archived copy {} no longer has the recorded content; not restored", .0.display())]
    ArchivedChanged(PathBuf),
    /// The share's folder (or its `.ferry` marker) went away; the text says which and what
    /// happens meanwhile (see `share/missing.rs`).
    #[error("{0}")]
    FolderMissing(String),
}

impl From<ShareError> for ApiError {
    /// Every code is the one the call site gave before the errors were typed: all of these
    /// reached a client as internal errors (a failed restore or resolve), except what came
    /// from the context, which keeps its own code.
    fn from(e: ShareError) -> Self {
        let code = match &e {
            ShareError::Context(api) => return api.clone(),
            ShareError::Store(_)
            | ShareError::Fs(_)
            | ShareError::Fetch(_)
            | ShareError::Join(_)
            | ShareError::Io(_)
            | ShareError::Path(_)
            | ShareError::Write { .. }
            | ShareError::BatchWrite(_) => ErrorCode::Internal,
            ShareError::ChangedHere
            | ShareError::NoSource
            | ShareError::WholeHashMismatch { .. }
            | ShareError::OutsideArchive(_)
            | ShareError::ArchivedNotAFile(_)
            | ShareError::ArchivedGone { .. }
            | ShareError::NotAFileHere(_)
            | ShareError::OpenArchived { .. }
            | ShareError::CopyArchived { .. }
            | ShareError::ArchivedChanged(_)
            | ShareError::FolderMissing(_) => ErrorCode::Internal,
            ShareError::VersionNotHere { .. } | ShareError::VersionFetch { .. } => ErrorCode::Unreachable,
        };
        ApiError::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_before() {
        // The UI and the CLI show these; they must not change with the typing.
        assert_eq!(
            ShareError::ChangedHere.to_string(),
            "changed on this device since it was indexed; rescanning before syncing it"
        );
        assert_eq!(ShareError::NoSource.to_string(), "no connected device has this version; waiting for one");
        let sender = DeviceId([7; 32]);
        assert_eq!(
            ShareError::WholeHashMismatch { sender }.to_string(),
            format!("{} sent a record whose hash does not match its content; refused", sender.short())
        );
        let api = ApiError::from(ShareError::Fetch(FetchError::Unavailable("gone".into())));
        assert_eq!((api.code, api.message.as_str()), (ErrorCode::Internal, "gone"));
        let kept = ApiError::from(ShareError::Context(ApiError::not_found("share removed")));
        assert_eq!((kept.code, kept.message.as_str()), (ErrorCode::NotFound, "share removed"));
    }
}
