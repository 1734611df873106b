//! Record building: an entry's stat info as a [`Known`], compared with the index's record to
//! decide whether the entry changed and must be observed (hashed) and reported.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ferry_proto::{FileKind, RelPath};

use super::{Change, Known, Scanner, SkipReason, Special};
use crate::error::{FsError, IoContext};
use crate::mtime_ns;

/// Stat info of an entry as a [`Known`] (live), or `None` for FIFOs, sockets and devices, which
/// Ferry does not sync. Reads the link target for symlinks (the only use of `full`, the entry's
/// path on disk: made only then).
pub(crate) fn known_from_meta(full: impl FnOnce() -> PathBuf, meta: &Metadata) -> Result<Option<Known>, FsError> {
    let ft = meta.file_type();
    let (kind, size, executable) = if ft.is_file() {
        (FileKind::File, meta.size(), meta.mode() & 0o111 != 0)
    } else if ft.is_dir() {
        (FileKind::Dir, 0, false)
    } else if ft.is_symlink() {
        let full = full();
        let target = fs::read_link(&full).ctx("readlink", &full)?;
        let target = target.into_os_string().into_string().map_err(|t| FsError::UnsafePath {
            path: full.clone(),
            reason: format!("link target {t:?} is not UTF-8"),
        })?;
        (FileKind::Symlink { target }, 0, false)
    } else {
        return Ok(None);
    };
    Ok(Some(Known { kind, deleted: false, size, mtime_ns: mtime_ns(meta), inode: meta.ino(), executable }))
}

/// What `visit` found.
pub(super) enum Visit {
    Dir,
    Other,
    Skipped,
}

impl Scanner<'_> {
    /// Looks at one entry by its path (a listed path, its ancestors): reports it if changed and
    /// not ignored. Says whether to descend.
    pub(super) fn visit(&mut self, rel: &RelPath, full: &Path) -> Visit {
        let stat = fs::symlink_metadata(full);
        if let Ok(m) = &stat
            && self.ignore.is_ignored(rel, m.file_type().is_dir())
        {
            return Visit::Skipped;
        }
        self.look(rel, stat)
    }

    /// [`Scanner::visit`] of an entry that is not ignored, its `lstat` already made (a walk asks
    /// relative to the open folder: no walk of the full path per file).
    pub(super) fn look(&mut self, rel: &RelPath, stat: io::Result<fs::Metadata>) -> Visit {
        // The entry's path on disk, made only when needed: most entries of a restart's scan
        // are unchanged files, which need none.
        let root = self.root;
        let full = || rel.to_fs(root);
        let meta = match stat {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Visit::Skipped,
            Err(e) => {
                self.skip(rel.as_str(), SkipReason::Unreadable(FsError::io("lstat", full(), e)));
                self.seen.insert(rel);
                self.failed.push(rel.clone());
                return Visit::Skipped;
            }
        };
        let is_dir = meta.file_type().is_dir();
        self.out.seen += 1;
        let now = match known_from_meta(full, &meta) {
            Ok(Some(k)) => k,
            Ok(None) => {
                // Not in `seen`: an indexed entry that became a FIFO (say) is gone as far as
                // syncing goes.
                self.skip(rel.as_str(), SkipReason::Special(Special::of(&meta.file_type())));
                return Visit::Skipped;
            }
            Err(e) => {
                let reason = match e {
                    FsError::UnsafePath { .. } => SkipReason::LinkTargetNotUtf8,
                    e => SkipReason::Unreadable(e),
                };
                self.skip(rel.as_str(), reason);
                self.seen.insert(rel);
                self.failed.push(rel.clone());
                return Visit::Skipped;
            }
        };
        let known = self.live_known(rel);
        if self.track {
            self.seen.insert(rel);
        }
        let unchanged = known.is_some_and(|k| {
            k.kind == now.kind
                && k.size == now.size
                && k.mtime_ns == now.mtime_ns
                && k.inode == now.inode
                && k.executable == now.executable
        });
        if !unchanged {
            match self.observe(rel, &full(), now) {
                Ok(obs) => self.emit(Change::Upsert(obs)),
                Err(e) => {
                    let reason = match e {
                        FsError::Changed(_) => SkipReason::Changed,
                        e => SkipReason::Unreadable(e),
                    };
                    self.skip(rel.as_str(), reason);
                    self.failed.push(rel.clone());
                    return Visit::Skipped;
                }
            }
        }
        if is_dir { Visit::Dir } else { Visit::Other }
    }
}
