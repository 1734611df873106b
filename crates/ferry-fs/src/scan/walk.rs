//! Walking: directories in name order (skipping Ferry's own folder and temp files), listed paths
//! with their ancestors, and the known paths that were not found, which become deletes.

use std::fs;
use std::io;
use std::path::Path;

use ferry_proto::{FERRY_DIR, FileKind, RelPath, TEMP_PREFIX};

use super::record::Visit;
use super::{KnownPaths, Scanner, SkipReason};
use crate::error::FsError;

impl Scanner<'_> {
    /// Walks the directory `dir` (whose relative path is `dir_rel`, `None` for the root).
    pub(super) fn walk(&mut self, dir: &Path, dir_rel: Option<&RelPath>) {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => return self.unreadable_dir(dir, dir_rel, e),
        };
        // Kept (not just their names): `DirEntry::metadata` is an lstat relative to the open
        // folder, so no path walk per file (a quarter of a restart's kernel time).
        let mut listed = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => listed.push((e.file_name(), e)),
                Err(e) => self.unreadable_dir(dir, dir_rel, e),
            }
        }
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, entry) in listed {
            if self.stopped {
                return;
            }
            if dir_rel.is_none() && name == FERRY_DIR {
                continue;
            }
            if name.as_encoded_bytes().starts_with(TEMP_PREFIX.as_bytes()) {
                // Never synced, never looked into; listed for the caller (see `temps`). The
                // kind comes from the listing: no lstat.
                if entry.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()) {
                    self.out.temps.push(dir.join(&name));
                }
                continue;
            }
            let joined = |name: &str| match dir_rel {
                Some(d) => format!("{d}/{name}"),
                None => name.to_string(),
            };
            let Some(name) = name.to_str() else {
                // Shown lossily; lstat only, so nothing of it is opened either.
                self.skip(joined(&name.to_string_lossy()), SkipReason::NotUtf8);
                continue;
            };
            let rel = match RelPath::new(joined(name)) {
                Ok(r) => r,
                Err(e) => {
                    self.skip(joined(name), SkipReason::BadPath(e));
                    continue;
                }
            };
            let stat = entry.metadata();
            if let Ok(m) = &stat
                && self.ignore.is_ignored(&rel, m.file_type().is_dir())
            {
                continue;
            }
            if let Visit::Dir = self.look(&rel, stat) {
                self.walk(&dir.join(name), Some(&rel));
            }
        }
    }

    /// A directory that cannot be listed: reported, and nothing below it is reported deleted.
    fn unreadable_dir(&mut self, dir: &Path, dir_rel: Option<&RelPath>, e: io::Error) {
        let shown = dir_rel.map(|r| r.to_string()).unwrap_or_default();
        self.skip(shown, SkipReason::Unreadable(FsError::Io { op: "read_dir", path: dir.to_path_buf(), source: e }));
        if let Some(r) = dir_rel {
            self.failed.push(r.clone());
        }
    }

    /// Known live paths (every one with `below` None, else those strictly below it) that were
    /// not seen become deletes (unless ignored or below something that failed).
    pub(super) fn collect_deletes(&mut self, below: Option<&RelPath>, known_paths: KnownPaths<'_>) {
        known_paths(below, &mut |p| {
            if self.seen.contains(&p) || self.failed.iter().any(|f| p.is_within(f)) {
                return true;
            }
            let is_dir = self.live_known(&p).is_some_and(|k| k.kind == FileKind::Dir);
            if !self.ignore.is_ignored(&p, is_dir) {
                self.deleted.push(p);
            }
            true
        });
    }

    /// Scope::Paths: one listed path.
    pub(super) fn scan_path(&mut self, p: &RelPath, known_paths: KnownPaths<'_>) {
        // Ancestors must be real directories; otherwise the path is gone. Ancestors the index does
        // not have yet as directories are reported first, so parents come before children.
        let mut gone = false;
        for a in p.ancestors() {
            let full = a.to_fs(self.root);
            match fs::symlink_metadata(&full) {
                Ok(m) if m.file_type().is_dir() => {
                    let known_dir = self.live_known(&a).is_some_and(|k| k.kind == FileKind::Dir);
                    if !known_dir && !self.seen.contains(&a) {
                        self.visit(&a, &full);
                    }
                }
                Ok(_) => {
                    gone = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
                    gone = true;
                    break;
                }
                Err(e) => {
                    self.skip(a.as_str(), SkipReason::Unreadable(FsError::Io { op: "lstat", path: full, source: e }));
                    return;
                }
            }
        }
        if !gone {
            let full = p.to_fs(self.root);
            match fs::symlink_metadata(&full) {
                Ok(_) => {
                    if let Visit::Dir = self.visit(p, &full) {
                        self.walk(&full, Some(p));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => gone = true,
                Err(e) => {
                    self.skip(p.as_str(), SkipReason::Unreadable(FsError::Io { op: "lstat", path: full, source: e }));
                    return;
                }
            }
        }
        if gone && !self.seen.contains(p) && self.live_known(p).is_some() {
            let is_dir = self.live_known(p).is_some_and(|k| k.kind == FileKind::Dir);
            if !self.ignore.is_ignored(p, is_dir) {
                self.deleted.push(p.clone());
            }
        }
        self.collect_deletes(Some(p), known_paths);
    }
}
