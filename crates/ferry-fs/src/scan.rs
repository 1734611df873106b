//! The scanner: compares what is on disk with what the index knows and reports the difference.
//!
//! Entries whose stat info (kind, size, mtime, inode, executable bit, link target) matches the
//! index are not read again; everything else is hashed and reported. Symlinks are never
//! followed: they are reported as links with their target.

use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ferry_proto::{ChunkHash, ChunkInfo, FERRY_DIR, FileKind, RelPath, TEMP_PREFIX};
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::chunker::{chunk_reader, open_nofollow};
use crate::error::{FsError, IoContext};
use crate::mtime_ns;

/// Name of the ignore file at the share root (gitignore syntax).
pub const IGNORE_FILE: &str = ".ferryignore";

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

/// What a scan found.
#[derive(Clone, Debug, Default)]
pub struct ScanOutcome {
    /// Upserts parents before children; deletes children before parents.
    pub changes: Vec<Change>,
    /// Entries that could not be scanned: (path, message). Their known records are left alone.
    pub errors: Vec<(String, String)>,
    /// Entries looked at.
    pub seen: usize,
    /// Bytes read and hashed.
    pub hashed_bytes: u64,
}

/// Ignore patterns from `<root>/.ferryignore`, gitignore syntax.
#[derive(Clone, Debug)]
pub struct Ignore {
    gi: Gitignore,
}

impl Ignore {
    /// Reads `<root>/.ferryignore`; a missing file ignores nothing. Lines that are not valid
    /// patterns are logged and skipped.
    pub fn load(root: &Path) -> Result<Ignore, FsError> {
        let path = root.join(IGNORE_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Self::build(root, Some(path), &text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Ignore::none()),
            Err(e) => Err(FsError::Ignore { path, message: e.to_string() }),
        }
    }

    /// Patterns given directly (gitignore syntax, one per line).
    pub fn from_patterns(patterns: &str) -> Ignore {
        Self::build(Path::new("/"), None, patterns)
    }

    /// Ignores nothing.
    pub fn none() -> Ignore {
        Ignore { gi: Gitignore::empty() }
    }

    fn build(root: &Path, from: Option<PathBuf>, text: &str) -> Ignore {
        let mut b = GitignoreBuilder::new(root);
        for (i, line) in text.lines().enumerate() {
            let line = if i == 0 { line.trim_start_matches('\u{feff}') } else { line };
            if let Err(e) = b.add_line(from.clone(), line) {
                tracing::warn!(line = i + 1, pattern = line, error = %e, "skipping bad ignore pattern");
            }
        }
        match b.build() {
            Ok(gi) => Ignore { gi },
            Err(e) => {
                tracing::warn!(error = %e, "ignore patterns could not be compiled; ignoring nothing");
                Ignore::none()
            }
        }
    }

    /// True when `rel` (a directory if `is_dir`) or any of its parents is ignored. As in git, a
    /// `!pattern` cannot re-include something below an ignored directory.
    pub fn is_ignored(&self, rel: &RelPath, is_dir: bool) -> bool {
        if self.gi.is_empty() {
            return false;
        }
        rel.ancestors().iter().any(|a| self.gi.matched(Path::new(a.as_str()), true).is_ignore())
            || self.gi.matched(Path::new(rel.as_str()), is_dir).is_ignore()
    }
}

/// Stat info of an entry as a [`Known`] (live), or `None` for FIFOs, sockets and devices, which
/// Ferry does not sync. Reads the link target for symlinks.
pub(crate) fn known_from_meta(full: &Path, meta: &Metadata) -> Result<Option<Known>, FsError> {
    let ft = meta.file_type();
    let (kind, size, executable) = if ft.is_file() {
        (FileKind::File, meta.size(), meta.mode() & 0o111 != 0)
    } else if ft.is_dir() {
        (FileKind::Dir, 0, false)
    } else if ft.is_symlink() {
        let target = fs::read_link(full).ctx("readlink", full)?;
        let target = target.into_os_string().into_string().map_err(|t| FsError::UnsafePath {
            path: full.to_path_buf(),
            reason: format!("link target {t:?} is not UTF-8"),
        })?;
        (FileKind::Symlink { target }, 0, false)
    } else {
        return Ok(None);
    };
    Ok(Some(Known { kind, deleted: false, size, mtime_ns: mtime_ns(meta), inode: meta.ino(), executable }))
}

/// Scans `scope` under `root`. `known(p)` is the index's record of `p`; `known_paths(None)` lists
/// every live path in the index, `known_paths(Some(p))` the live paths strictly below `p`.
///
/// Ignored paths are neither reported nor deleted (a path that becomes ignored keeps its record
/// as it was). Paths that could not be read go to `errors`, and nothing below them is reported
/// deleted.
pub fn scan(
    root: &Path,
    known: &dyn Fn(&RelPath) -> Option<Known>,
    known_paths: &dyn Fn(Option<&RelPath>) -> Vec<RelPath>,
    scope: &Scope,
    ignore: &Ignore,
) -> Result<ScanOutcome, FsError> {
    scan_reusing(root, known, known_paths, scope, ignore, &|_, _| None)
}

/// Content already known for a file that was moved: its whole-file hash and chunks.
pub type Reused = (ChunkHash, Vec<ChunkInfo>);

/// [`scan`], but before hashing a new or changed file it asks `reuse(path, stat)` for content
/// already known for it (a file renamed from a path the index knows, with the same inode, size
/// and mtime: the same test that lets an unchanged file skip hashing). A renamed 1 GiB file
/// then costs a lookup instead of a full read.
pub fn scan_reusing(
    root: &Path,
    known: &dyn Fn(&RelPath) -> Option<Known>,
    known_paths: &dyn Fn(Option<&RelPath>) -> Vec<RelPath>,
    scope: &Scope,
    ignore: &Ignore,
    reuse: &dyn Fn(&RelPath, &Known) -> Option<Reused>,
) -> Result<ScanOutcome, FsError> {
    let mut s = Scanner {
        root,
        known,
        reuse,
        ignore,
        out: ScanOutcome::default(),
        seen: HashSet::new(),
        failed: Vec::new(),
        deleted: Vec::new(),
    };
    match scope {
        Scope::Full => {
            // The root must be readable; an error here is not a reason to delete everything.
            fs::read_dir(root).ctx("read_dir", root)?;
            s.walk(root, None);
            s.collect_deletes(known_paths(None));
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
    /// Paths that exist on disk (or could not be checked): never reported deleted.
    seen: HashSet<RelPath>,
    /// Paths that could not be read: nothing below them is reported deleted.
    failed: Vec<RelPath>,
    deleted: Vec<RelPath>,
}

/// What `visit` found.
enum Visit {
    Dir,
    Other,
    Skipped,
}

impl Scanner<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let (path, message) = (path.into(), message.into());
        tracing::debug!(%path, %message, "scan error");
        self.out.errors.push((path, message));
    }

    fn live_known(&self, rel: &RelPath) -> Option<Known> {
        (self.known)(rel).filter(|k| !k.deleted)
    }

    /// Walks the directory `dir` (whose relative path is `dir_rel`, `None` for the root).
    fn walk(&mut self, dir: &Path, dir_rel: Option<&RelPath>) {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                let shown = dir_rel.map(|r| r.to_string()).unwrap_or_default();
                self.error(shown, format!("read_dir: {e}"));
                if let Some(r) = dir_rel {
                    self.failed.push(r.clone());
                }
                return;
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => names.push(e.file_name()),
                Err(e) => {
                    let shown = dir_rel.map(|r| r.to_string()).unwrap_or_default();
                    self.error(shown, format!("read_dir: {e}"));
                    if let Some(r) = dir_rel {
                        self.failed.push(r.clone());
                    }
                }
            }
        }
        names.sort();
        for name in names {
            if dir_rel.is_none() && name == FERRY_DIR {
                continue;
            }
            if name.as_encoded_bytes().starts_with(TEMP_PREFIX.as_bytes()) {
                continue;
            }
            let full = dir.join(&name);
            let Some(name) = name.to_str() else {
                self.error(full.to_string_lossy(), "name is not UTF-8");
                continue;
            };
            let joined = match dir_rel {
                Some(d) => format!("{d}/{name}"),
                None => name.to_string(),
            };
            let rel = match RelPath::new(joined.clone()) {
                Ok(r) => r,
                Err(e) => {
                    self.error(joined, e.to_string());
                    continue;
                }
            };
            if let Visit::Dir = self.visit(&rel, &full) {
                self.walk(&full, Some(&rel));
            }
        }
    }

    /// Looks at one entry: reports it if changed. Says whether to descend.
    fn visit(&mut self, rel: &RelPath, full: &Path) -> Visit {
        let meta = match fs::symlink_metadata(full) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Visit::Skipped,
            Err(e) => {
                self.error(rel.as_str(), format!("lstat: {e}"));
                self.seen.insert(rel.clone());
                self.failed.push(rel.clone());
                return Visit::Skipped;
            }
        };
        let is_dir = meta.file_type().is_dir();
        if self.ignore.is_ignored(rel, is_dir) {
            return Visit::Skipped;
        }
        self.out.seen += 1;
        let now = match known_from_meta(full, &meta) {
            Ok(Some(k)) => k,
            Ok(None) => {
                tracing::debug!(path = %rel, "skipping special file");
                return Visit::Skipped;
            }
            Err(e) => {
                self.error(rel.as_str(), e.to_string());
                self.seen.insert(rel.clone());
                self.failed.push(rel.clone());
                return Visit::Skipped;
            }
        };
        self.seen.insert(rel.clone());
        let unchanged = self.live_known(rel).is_some_and(|k| {
            k.kind == now.kind
                && k.size == now.size
                && k.mtime_ns == now.mtime_ns
                && k.inode == now.inode
                && k.executable == now.executable
        });
        if !unchanged {
            match self.observe(rel, full, now) {
                Ok(obs) => self.out.changes.push(Change::Upsert(obs)),
                Err(e) => {
                    self.error(rel.as_str(), e.to_string());
                    self.failed.push(rel.clone());
                    return Visit::Skipped;
                }
            }
        }
        if is_dir { Visit::Dir } else { Visit::Other }
    }

    /// Hashes an entry whose stat info is `now`.
    fn observe(&mut self, rel: &RelPath, full: &Path, now: Known) -> Result<Observed, FsError> {
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

    /// Known live paths in `candidates` that were not seen become deletes (unless ignored or
    /// below something that failed).
    fn collect_deletes(&mut self, candidates: Vec<RelPath>) {
        for p in candidates {
            if self.seen.contains(&p) || self.failed.iter().any(|f| p.is_within(f)) {
                continue;
            }
            let is_dir = self.live_known(&p).is_some_and(|k| k.kind == FileKind::Dir);
            if self.ignore.is_ignored(&p, is_dir) {
                continue;
            }
            self.deleted.push(p);
        }
    }

    /// Scope::Paths: one listed path.
    fn scan_path(&mut self, p: &RelPath, known_paths: &dyn Fn(Option<&RelPath>) -> Vec<RelPath>) {
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
                    self.error(a.as_str(), format!("lstat: {e}"));
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
                    self.error(p.as_str(), format!("lstat: {e}"));
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
        self.collect_deletes(known_paths(Some(p)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// A tiny in-memory index fed by scan results.
    #[derive(Default)]
    struct Index(RefCell<BTreeMap<RelPath, Known>>);

    impl Index {
        fn scan(&self, root: &Path, scope: &Scope) -> ScanOutcome {
            let ignore = Ignore::load(root).unwrap();
            let out = scan(
                root,
                &|p| self.0.borrow().get(p).cloned(),
                &|p| {
                    self.0
                        .borrow()
                        .iter()
                        .filter(|(k, v)| !v.deleted && p.is_none_or(|p| k.is_within(p) && *k != p))
                        .map(|(k, _)| k.clone())
                        .collect()
                },
                scope,
                &ignore,
            )
            .unwrap();
            for c in &out.changes {
                match c {
                    Change::Upsert(o) => {
                        self.0.borrow_mut().insert(
                            o.path.clone(),
                            Known {
                                kind: o.kind.clone(),
                                deleted: false,
                                size: o.size,
                                mtime_ns: o.mtime_ns,
                                inode: o.inode,
                                executable: o.executable,
                            },
                        );
                    }
                    Change::Deleted(p) => {
                        self.0.borrow_mut().get_mut(p).unwrap().deleted = true;
                    }
                }
            }
            out
        }
    }

    fn upserts(out: &ScanOutcome) -> Vec<String> {
        out.changes
            .iter()
            .filter_map(|c| match c {
                Change::Upsert(o) => Some(o.path.to_string()),
                _ => None,
            })
            .collect()
    }

    fn deletes(out: &ScanOutcome) -> Vec<String> {
        out.changes
            .iter()
            .filter_map(|c| match c {
                Change::Deleted(p) => Some(p.to_string()),
                _ => None,
            })
            .collect()
    }

    fn find<'a>(out: &'a ScanOutcome, path: &str) -> &'a Observed {
        out.changes
            .iter()
            .find_map(|c| match c {
                Change::Upsert(o) if o.path.as_str() == path => Some(o),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{path} not reported"))
    }

    fn rel(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    fn setup() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir_all(r.join("docs/sub")).unwrap();
        fs::create_dir_all(r.join("empty")).unwrap();
        fs::write(r.join("docs/a.txt"), b"hello").unwrap();
        fs::write(r.join("docs/sub/b.bin"), vec![7u8; 200_000]).unwrap();
        fs::write(r.join("run.sh"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(r.join("run.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("/etc", r.join("link")).unwrap();
        fs::create_dir_all(r.join(".ferry/versions")).unwrap();
        fs::write(r.join(".ferry/versions/old"), b"old").unwrap();
        fs::write(r.join("docs/.ferry-tmp-a.txt-0123"), b"partial").unwrap();
        fs::write(r.join(".ferryignore"), "*.log\nbuild/\n").unwrap();
        fs::write(r.join("debug.log"), b"noise").unwrap();
        fs::create_dir_all(r.join("build/out")).unwrap();
        fs::write(r.join("build/out/x.o"), b"obj").unwrap();
        dir
    }

    #[test]
    fn full_scan_reports_everything_once() {
        let dir = setup();
        let idx = Index::default();
        let out = idx.scan(dir.path(), &Scope::Full);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let mut got = upserts(&out);
        got.sort();
        assert_eq!(
            got,
            [".ferryignore", "docs", "docs/a.txt", "docs/sub", "docs/sub/b.bin", "empty", "link", "run.sh"]
        );
        assert!(deletes(&out).is_empty());
        // Parents before children.
        let order = upserts(&out);
        let pos = |p: &str| order.iter().position(|x| x == p).unwrap();
        assert!(pos("docs") < pos("docs/sub") && pos("docs/sub") < pos("docs/sub/b.bin"));

        let a = find(&out, "docs/a.txt");
        assert_eq!(a.kind, FileKind::File);
        assert_eq!(a.size, 5);
        assert_eq!(a.hash, ChunkHash::of(b"hello"));
        assert_eq!(a.chunks.len(), 1);
        assert!(!a.executable);
        assert!(find(&out, "run.sh").executable);
        let link = find(&out, "link");
        assert_eq!(link.kind, FileKind::Symlink { target: "/etc".into() });
        assert_eq!(link.hash, ChunkHash::of(b"/etc"));
        assert!(link.chunks.is_empty());
        let empty = find(&out, "empty");
        assert_eq!((empty.kind.clone(), empty.size, empty.hash), (FileKind::Dir, 0, ChunkHash([0; 32])));
        assert_eq!(find(&out, "docs/sub/b.bin").hash, ChunkHash::of(&vec![7u8; 200_000]));
        assert_eq!(out.hashed_bytes, 5 + 200_000 + 10 + 13);

        // Second scan: nothing changed, nothing read.
        let out = idx.scan(dir.path(), &Scope::Full);
        assert!(out.changes.is_empty(), "{:?}", out.changes);
        assert_eq!(out.hashed_bytes, 0);
        assert_eq!(out.seen, 8);
    }

    #[test]
    fn modified_and_deleted_are_reported() {
        let dir = setup();
        let r = dir.path();
        let idx = Index::default();
        idx.scan(r, &Scope::Full);

        fs::write(r.join("docs/a.txt"), b"hello, changed").unwrap();
        fs::remove_file(r.join("run.sh")).unwrap();
        fs::remove_dir_all(r.join("docs/sub")).unwrap();
        let out = idx.scan(r, &Scope::Full);
        assert!(upserts(&out).contains(&"docs/a.txt".to_string()), "{:?}", out.changes);
        assert_eq!(find(&out, "docs/a.txt").hash, ChunkHash::of(b"hello, changed"));
        assert_eq!(deletes(&out), ["run.sh", "docs/sub/b.bin", "docs/sub"]);
        assert_eq!(out.hashed_bytes, 14);

        // Chmod alone is a change too.
        fs::set_permissions(r.join("docs/a.txt"), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let out = idx.scan(r, &Scope::Full);
        assert!(find(&out, "docs/a.txt").executable);

        // A link retargeted.
        fs::remove_file(r.join("link")).unwrap();
        std::os::unix::fs::symlink("elsewhere", r.join("link")).unwrap();
        let out = idx.scan(r, &Scope::Full);
        assert_eq!(find(&out, "link").kind, FileKind::Symlink { target: "elsewhere".into() });
    }

    #[test]
    fn scope_paths_handles_moved_in_dirs_and_removals() {
        let dir = setup();
        let r = dir.path();
        let idx = Index::default();
        idx.scan(r, &Scope::Full);

        // A directory tree moved in from outside.
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir_all(outside.path().join("new/deep")).unwrap();
        fs::write(outside.path().join("new/deep/f.txt"), b"f").unwrap();
        fs::write(outside.path().join("new/g.txt"), b"g").unwrap();
        fs::rename(outside.path().join("new"), r.join("docs/new")).unwrap();
        let out = idx.scan(r, &Scope::Paths(vec![rel("docs/new"), rel("docs/new/g.txt"), rel("docs/new")]));
        assert_eq!(upserts(&out), ["docs/new", "docs/new/deep", "docs/new/deep/f.txt", "docs/new/g.txt"]);
        assert!(deletes(&out).is_empty());

        // Removing it: the listed path and every known descendant.
        fs::remove_dir_all(r.join("docs/new")).unwrap();
        let out = idx.scan(r, &Scope::Paths(vec![rel("docs/new")]));
        assert_eq!(deletes(&out), ["docs/new/g.txt", "docs/new/deep/f.txt", "docs/new/deep", "docs/new"]);

        // A path below a missing ancestor is gone.
        fs::remove_dir_all(r.join("docs/sub")).unwrap();
        let out = idx.scan(r, &Scope::Paths(vec![rel("docs/sub/b.bin")]));
        assert_eq!(deletes(&out), ["docs/sub/b.bin"]);

        // A listed path that appeared under new, unknown directories brings them along.
        fs::create_dir_all(r.join("x/y")).unwrap();
        fs::write(r.join("x/y/z"), b"z").unwrap();
        let out = idx.scan(r, &Scope::Paths(vec![rel("x/y/z")]));
        assert_eq!(upserts(&out), ["x", "x/y", "x/y/z"]);

        // Ignored and unchanged paths are not reported.
        let out = idx.scan(r, &Scope::Paths(vec![rel("debug.log"), rel("build/out/x.o"), rel("docs/a.txt")]));
        assert!(out.changes.is_empty(), "{:?}", out.changes);

        // A directory replaced by a symlink: its children are gone, the link is reported.
        fs::remove_dir_all(r.join("x")).unwrap();
        std::os::unix::fs::symlink("/tmp", r.join("x")).unwrap();
        let out = idx.scan(r, &Scope::Paths(vec![rel("x"), rel("x/y/z")]));
        assert_eq!(upserts(&out), ["x"]);
        assert_eq!(deletes(&out), ["x/y/z", "x/y"]);
    }

    #[test]
    fn reused_content_is_not_hashed_and_only_files_are_asked() {
        let dir = setup();
        let r = dir.path();
        let asked = std::cell::RefCell::new(Vec::new());
        let fake = ChunkHash([7; 32]);
        let reuse = |p: &RelPath, k: &Known| -> Option<Reused> {
            assert_eq!(k.kind, FileKind::File, "only files are offered for reuse");
            asked.borrow_mut().push(p.to_string());
            (p.as_str() == "docs/a.txt").then(|| (fake, vec![ChunkInfo { hash: fake, len: k.size as u32 }]))
        };
        let out = scan_reusing(r, &|_| None, &|_| Vec::new(), &Scope::Full, &Ignore::load(r).unwrap(), &reuse).unwrap();
        let a = out.changes.iter().find_map(|c| match c {
            Change::Upsert(o) if o.path.as_str() == "docs/a.txt" => Some(o),
            _ => None,
        });
        assert_eq!(a.unwrap().hash, fake, "the reused hash is taken as is");
        let b = out.changes.iter().find_map(|c| match c {
            Change::Upsert(o) if o.path.as_str() == "run.sh" => Some(o),
            _ => None,
        });
        assert_eq!(b.unwrap().hash, ChunkHash::of(&fs::read(r.join("run.sh")).unwrap()), "others are hashed");
        assert!(asked.borrow().contains(&"run.sh".to_string()));
        assert!(!asked.borrow().iter().any(|p| p == "docs" || p == "link"), "{:?}", asked.borrow());
    }

    #[test]
    fn bad_names_are_errors() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(std::ffi::OsStr::from_bytes(b"bad\xffname")), b"x").unwrap();
        fs::write(dir.path().join("good"), b"x").unwrap();
        let idx = Index::default();
        let out = idx.scan(dir.path(), &Scope::Full);
        assert_eq!(upserts(&out), ["good"]);
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    }

    #[test]
    fn ignore_matching() {
        let ig = Ignore::from_patterns("*.tmp\n/top-only\nnode_modules/\n!keep.tmp\n");
        assert!(ig.is_ignored(&rel("a/b.tmp"), false));
        assert!(!ig.is_ignored(&rel("a/keep.tmp"), false));
        assert!(ig.is_ignored(&rel("top-only"), false));
        assert!(!ig.is_ignored(&rel("a/top-only"), false));
        assert!(ig.is_ignored(&rel("x/node_modules"), true));
        assert!(ig.is_ignored(&rel("x/node_modules/y/z.js"), false));
        assert!(!ig.is_ignored(&rel("x/node_modules"), false));
        assert!(!Ignore::none().is_ignored(&rel("a"), false));
        let dir = tempfile::tempdir().unwrap();
        assert!(!Ignore::load(dir.path()).unwrap().is_ignored(&rel("a.tmp"), false));
    }
}
