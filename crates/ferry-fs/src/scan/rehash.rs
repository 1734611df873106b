//! Rehashing: reads a new or changed entry's content (or takes content known from a rename)
//! and refuses the result if the file changed while it was read.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ferry_proto::{ChunkHash, FileKind, RelPath};

use super::{Known, Observed, Scanner};
use crate::chunker::{chunk_reader, open_nofollow};
use crate::error::{FsError, IoContext};
use crate::mtime_ns;

impl Scanner<'_> {
    /// Hashes an entry whose stat info is `now`.
    pub(super) fn observe(&mut self, rel: &RelPath, full: &Path, now: Known) -> Result<Observed, FsError> {
        let reused = if now.kind == FileKind::File { (self.reuse)(rel, &now) } else { None };
        let (hash, chunks) = match &now.kind {
            FileKind::Dir => (ChunkHash([0; 32]), Vec::new()),
            FileKind::Symlink { target } => (ChunkHash::of(target.as_bytes()), Vec::new()),
            FileKind::File if reused.is_some() => reused.expect("checked"),
            FileKind::File => {
                let file = open_nofollow(full)?;
                let before = file.metadata().ctx("fstat", full)?;
                let same = |m: &Metadata| m.ino() == now.inode && m.size() == now.size && mtime_ns(m) == now.mtime_ns;
                if !same(&before) {
                    return Err(FsError::Changed(full.to_path_buf()));
                }
                let chunked = chunk_reader(full, &file, now.size)?;
                self.out.hashed_bytes += chunked.size;
                let after = file.metadata().ctx("fstat", full)?;
                if !same(&after) || chunked.size != now.size {
                    return Err(FsError::Changed(full.to_path_buf()));
                }
                (chunked.hash, chunked.chunks)
            }
        };
        Ok(Observed {
            path: rel.clone(),
            kind: now.kind,
            size: now.size,
            mtime_ns: now.mtime_ns,
            inode: now.inode,
            executable: now.executable,
            hash,
            chunks,
        })
    }
}
