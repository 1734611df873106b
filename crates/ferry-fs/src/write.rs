//! Atomic, symlink-safe writes inside a share root.
//!
//! Content is never written in place: it goes to a temp file beside the target
//! (`.ferry-tmp-<name>-<random>`), which is fsynced, given its mode and mtime, and renamed over
//! the target; then the directory is fsynced. Before anything is created, opened or renamed,
//! every existing ancestor between the root and the target is checked to be a real directory,
//! so a symlink planted in the share cannot redirect a write outside it. Final components are
//! never followed (`O_NOFOLLOW`, `O_EXCL`, `rename`, `lstat`).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ferry_proto::{FERRY_DIR, FileKind, RelPath, TEMP_PREFIX};
use rand::Rng;

use crate::chunker::open_nofollow;
use crate::error::{FsError, IoContext};
use crate::scan::{Known, known_from_meta};
use crate::{file_time, truncate_str};

/// Longest file name component on Linux file systems.
const NAME_MAX: usize = 255;

/// Walks `components` below `base`, checking each is a real directory. Missing ones are created
/// when `create`, otherwise the walk stops there (nothing further can be in the way).
///
/// A directory created here is made durable before this returns (its parent is fsynced): a
/// file committed into it fsyncs only its own directory, and a new directory's name is durable
/// only once its parent is fsynced, so without this a power cut could take a whole new folder,
/// with files the index already holds, away.
pub(crate) fn ensure_dirs<'a>(
    base: &Path,
    components: impl IntoIterator<Item = &'a str>,
    create: bool,
) -> Result<PathBuf, FsError> {
    let mut cur = base.to_path_buf();
    let mut missing = false;
    for comp in components {
        cur.push(comp);
        if missing {
            continue;
        }
        match fs::symlink_metadata(&cur) {
            Ok(m) => check_is_dir(&cur, &m)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !create {
                    missing = true;
                    continue;
                }
                match fs::create_dir(&cur) {
                    Ok(()) => fsync_dir(cur.parent().unwrap_or(base))?,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        // Raced with someone; whatever is there now must still be a directory.
                        let m = fs::symlink_metadata(&cur).ctx("lstat", &cur)?;
                        check_is_dir(&cur, &m)?;
                    }
                    Err(e) => return Err(FsError::io("create_dir", &cur, e)),
                }
            }
            Err(e) => return Err(FsError::io("lstat", &cur, e)),
        }
    }
    Ok(cur)
}

fn check_is_dir(path: &Path, m: &fs::Metadata) -> Result<(), FsError> {
    let ft = m.file_type();
    if ft.is_dir() {
        Ok(())
    } else if ft.is_symlink() {
        Err(FsError::UnsafePath { path: path.to_path_buf(), reason: "a symlink is in the way".into() })
    } else {
        Err(FsError::UnsafePath { path: path.to_path_buf(), reason: "a non-directory is in the way".into() })
    }
}

fn parent_components(rel: &RelPath) -> impl Iterator<Item = &str> {
    let s = rel.as_str();
    let parent = s.rfind('/').map(|i| &s[..i]).unwrap_or("");
    parent.split('/').filter(|c| !c.is_empty())
}

/// Full path of `rel` under `root` after checking that every existing ancestor between root and
/// the target is a real directory (not a symlink, not a file); missing ancestors are created
/// (`create_dir`, which does not follow links). [`FsError::UnsafePath`] if a symlink or
/// non-directory is in the way. The root itself is trusted (it may be a symlink).
pub fn prepare_parent(root: &Path, rel: &RelPath) -> Result<PathBuf, FsError> {
    ensure_dirs(root, parent_components(rel), true)?;
    Ok(rel.to_fs(root))
}

/// Same checks as [`prepare_parent`], but creates nothing; returns the full path.
pub fn checked_path(root: &Path, rel: &RelPath) -> Result<PathBuf, FsError> {
    ensure_dirs(root, parent_components(rel), false)?;
    Ok(rel.to_fs(root))
}

/// A temp file beside its target, being filled. Dropping it without [`commit_temp`] removes
/// the file.
#[derive(Debug)]
pub struct TempFile {
    pub path: PathBuf,
    pub file: File,
}

impl TempFile {
    /// Removes the temp file (same as dropping it, but reports errors).
    pub fn discard(mut self) -> Result<(), FsError> {
        let path = std::mem::take(&mut self.path);
        fs::remove_file(&path).ctx("remove", &path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.path.as_os_str().is_empty() {
            return;
        }
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %self.path.display(), error = %e, "could not remove temp file"),
        }
    }
}

/// `.ferry-tmp-<name>-<16 hex>`, with `name` truncated so the component stays within NAME_MAX.
fn temp_name(name: &str) -> String {
    let suffix: u64 = rand::thread_rng().r#gen();
    let room = NAME_MAX - TEMP_PREFIX.len() - 1 - 16;
    format!("{TEMP_PREFIX}{}-{suffix:016x}", truncate_str(name, room))
}

/// Creates a temp file beside `rel` (creating missing parent directories safely), mode 0644,
/// with `O_EXCL`.
pub fn create_temp(root: &Path, rel: &RelPath) -> Result<TempFile, FsError> {
    let target = prepare_parent(root, rel)?;
    create_temp_in(target.parent().unwrap_or(root), rel.file_name())
}

/// Creates a temp file in Ferry's own folder of the share (`.ferry/fetched/`) for content that
/// goes into the archive, not to a user-visible path: a version fetched from another device,
/// which `archive::archive_from` then moves into place.
pub fn create_fetched_temp(root: &Path) -> Result<TempFile, FsError> {
    let dir = ensure_dirs(root, [FERRY_DIR, "fetched"], true)?;
    create_temp_in(&dir, "version")
}

fn create_temp_in(dir: &Path, name: &str) -> Result<TempFile, FsError> {
    loop {
        let path = dir.join(temp_name(name));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(file) => {
                let temp = TempFile { path, file };
                // Exact mode regardless of the umask.
                temp.file.set_permissions(fs::Permissions::from_mode(0o644)).ctx("chmod", &temp.path)?;
                return Ok(temp);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(FsError::io("create", &path, e)),
        }
    }
}

/// fsyncs the temp, sets its mode (`executable` => 0755, else 0644) and mtime, renames it over
/// `rel` (after re-checking the ancestors) and fsyncs the parent directory.
pub fn commit_temp(temp: TempFile, root: &Path, rel: &RelPath, mtime_ns: i64, executable: bool) -> Result<(), FsError> {
    let mut temp = temp;
    let mode = if executable { 0o755 } else { 0o644 };
    temp.file.set_permissions(fs::Permissions::from_mode(mode)).ctx("chmod", &temp.path)?;
    let t = file_time(mtime_ns);
    filetime::set_file_handle_times(&temp.file, Some(t), Some(t)).ctx("set times", &temp.path)?;
    temp.file.sync_all().ctx("fsync", &temp.path)?;
    let target = prepare_parent(root, rel)?;
    if target.parent() != temp.path.parent() {
        return Err(FsError::UnsafePath {
            path: temp.path.clone(),
            reason: format!("temp file is not beside its target {}", target.display()),
        });
    }
    fs::rename(&temp.path, &target).ctx("rename", &target)?;
    // Committed: nothing left for Drop to remove.
    temp.path = PathBuf::new();
    fsync_dir(target.parent().unwrap_or(root))
}

/// Bytes an unprivileged writer can still put on the file system that holds `path` (or its
/// nearest existing ancestor, for a folder not made yet).
pub fn available_space(path: &Path) -> io::Result<u64> {
    let mut at = path;
    while !at.exists() {
        at = at.parent().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no existing ancestor"))?;
    }
    let st = rustix::fs::statvfs(at)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// `create_dir_all` that makes what it creates durable: each directory it makes has its parent
/// fsynced right after (a new directory's name is durable only then, so without it a power cut
/// can take a new home, share folder or inbox away with everything later written into it).
/// Directories that exist are left alone.
pub fn create_dirs_durable(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_dirs_durable(parent)?;
    match fs::create_dir(path) {
        Ok(()) => File::open(parent)?.sync_all(),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// fsyncs a directory, making renames and creations in it durable.
pub fn fsync_dir(dir: &Path) -> Result<(), FsError> {
    let f = File::open(dir).ctx("open dir", dir)?;
    f.sync_all().ctx("fsync dir", dir)
}

/// lstats `rel` and compares with `known` (`None` = expect nothing there). True when what is on
/// disk is what the index says: kind, and for files size, mtime_ns, inode and executable; for
/// links the target, mtime_ns and inode; for directories the inode only (a directory's mtime
/// moves whenever its children change). A missing entry matches a deleted or `None` known.
pub fn unchanged_on_disk(root: &Path, rel: &RelPath, known: Option<&Known>) -> Result<bool, FsError> {
    let now = stat_known(root, rel)?;
    let known = known.filter(|k| !k.deleted);
    Ok(match (now, known) {
        (None, None) => true,
        (Some(_), None) | (None, Some(_)) => false,
        (Some(now), Some(k)) => {
            now.kind == k.kind
                && now.inode == k.inode
                && match now.kind {
                    FileKind::Dir => true,
                    FileKind::Symlink { .. } => now.mtime_ns == k.mtime_ns,
                    FileKind::File => {
                        now.size == k.size && now.mtime_ns == k.mtime_ns && now.executable == k.executable
                    }
                }
        }
    })
}

/// Stat info of what is at `rel` now (for the index after writing); `None` if nothing is there
/// (or an ancestor is missing). FIFOs, sockets and devices are reported as
/// [`FsError::WrongKind`].
pub fn stat_known(root: &Path, rel: &RelPath) -> Result<Option<Known>, FsError> {
    let full = checked_path(root, rel)?;
    let meta = match fs::symlink_metadata(&full) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FsError::io("lstat", &full, e)),
    };
    match known_from_meta(|| full.clone(), &meta)? {
        Some(k) => Ok(Some(k)),
        None => Err(FsError::WrongKind { path: full, expected: "file, directory or symlink", found: "other" }),
    }
}

/// Reads exactly `len` bytes at `offset` from the regular file at `rel` (no symlinks followed).
pub fn read_range(root: &Path, rel: &RelPath, offset: u64, len: u32) -> Result<Vec<u8>, FsError> {
    read_file_range(&checked_path(root, rel)?, offset, len)
}

/// Reads exactly `len` bytes at `offset` from the regular file at `full` (a path the caller has
/// checked, e.g. an archived version; the last component is not followed if it is a symlink).
pub fn read_file_range(full: &Path, offset: u64, len: u32) -> Result<Vec<u8>, FsError> {
    let full = full.to_path_buf();
    let file = open_nofollow(&full)?;
    let meta = file.metadata().ctx("fstat", &full)?;
    if !meta.file_type().is_file() {
        return Err(FsError::WrongKind { path: full, expected: "regular file", found: "other" });
    }
    let short = || FsError::ShortRead { path: full.clone(), offset, len, size: meta.size() };
    // Check before allocating: `len` may come from a peer.
    if offset.checked_add(len as u64).is_none_or(|end| end > meta.size()) {
        return Err(short());
    }
    // Read into the buffer's spare capacity: zeroing it first wrote every served byte twice
    // (memset was 2 % of a sender's CPU in W1's profile).
    let mut buf = Vec::with_capacity(len as usize);
    while buf.len() < len as usize {
        let at = offset + buf.len() as u64;
        match rustix::io::pread(&file, rustix::buffer::spare_capacity(&mut buf), at) {
            // The file shrank since the fstat above.
            Ok(0) => return Err(short()),
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(FsError::io("read", &full, e.into())),
        }
    }
    Ok(buf)
}

/// Creates the directory `rel` (and missing parents); fine if it is already a directory. Sets its
/// mtime when given.
pub fn create_dir(root: &Path, rel: &RelPath, mtime_ns: Option<i64>) -> Result<(), FsError> {
    let full = prepare_parent(root, rel)?;
    let parent = full.parent().unwrap_or(root).to_path_buf();
    ensure_dirs(&parent, [rel.file_name()], true).map_err(|e| match e {
        FsError::UnsafePath { path, .. } => FsError::WrongKind { path, expected: "directory", found: "non-directory" },
        other => other,
    })?;
    if let Some(ns) = mtime_ns {
        set_mtime(root, rel, ns)?;
    }
    fsync_dir(&parent)
}

/// Creates (or replaces) a symlink at `rel` pointing at `target`, atomically via a temp link and
/// a rename. The link is never followed. Replacing a directory fails.
pub fn create_symlink(root: &Path, rel: &RelPath, target: &str) -> Result<(), FsError> {
    let full = prepare_parent(root, rel)?;
    if target.is_empty() || target.contains('\0') {
        return Err(FsError::UnsafePath { path: full, reason: format!("bad link target {target:?}") });
    }
    let dir = full.parent().unwrap_or(root).to_path_buf();
    let tmp = loop {
        let tmp = dir.join(temp_name(rel.file_name()));
        match std::os::unix::fs::symlink(target, &tmp) {
            Ok(()) => break tmp,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(FsError::io("symlink", &tmp, e)),
        }
    };
    if let Err(e) = fs::rename(&tmp, &full) {
        let _ = fs::remove_file(&tmp);
        return Err(FsError::io("rename", &full, e));
    }
    fsync_dir(&dir)
}

/// Removes an empty directory or a symlink at `rel`. Files are refused ([`FsError::WrongKind`]):
/// they are archived instead (see the `archive` module). Fine if already gone. A non-empty
/// directory gives [`FsError::NotEmpty`].
pub fn remove_entry(root: &Path, rel: &RelPath) -> Result<(), FsError> {
    let full = match checked_path(root, rel) {
        Ok(p) => p,
        // An ancestor is a file or link: nothing of ours can be at `rel`.
        Err(FsError::UnsafePath { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let meta = match fs::symlink_metadata(&full) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(FsError::io("lstat", &full, e)),
    };
    let ft = meta.file_type();
    let res = if ft.is_symlink() {
        fs::remove_file(&full)
    } else if ft.is_dir() {
        fs::remove_dir(&full)
    } else {
        return Err(FsError::WrongKind { path: full, expected: "directory or symlink", found: "file" });
    };
    match res {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty || e.raw_os_error() == Some(libc::ENOTEMPTY) => {
            return Err(FsError::NotEmpty(full));
        }
        Err(e) => return Err(FsError::io("remove", &full, e)),
    }
    fsync_dir(full.parent().unwrap_or(root))
}

/// Removes the temp files and links among `temps` (a full scan's [`crate::ScanOutcome::temps`])
/// last modified before `before`: what a crash or a kill left in the middle of a write. A temp
/// modified since (a write of this run, by whatever wrote it) is left alone, so the caller
/// needs no promise that nothing writes meanwhile. Returns how many were removed.
pub fn remove_stale_temps(temps: &[PathBuf], before: std::time::SystemTime) -> Result<usize, FsError> {
    let mut removed = 0;
    for path in temps {
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(FsError::io("lstat", path, e)),
        };
        let ft = meta.file_type();
        if !(ft.is_file() || ft.is_symlink()) || meta.modified().ctx("mtime", path)? >= before {
            continue;
        }
        match fs::remove_file(path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(FsError::io("remove", path, e)),
        }
    }
    Ok(removed)
}

/// Sets the mtime of whatever is at `rel` without following a symlink; the atime is kept.
pub fn set_mtime(root: &Path, rel: &RelPath, mtime_ns: i64) -> Result<(), FsError> {
    let full = checked_path(root, rel)?;
    let meta = fs::symlink_metadata(&full).ctx("lstat", &full)?;
    let atime = filetime::FileTime::from_last_access_time(&meta);
    filetime::set_symlink_file_times(&full, atime, file_time(mtime_ns)).ctx("set mtime", &full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn rel(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn prepare_parent_creates_missing_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let p = prepare_parent(dir.path(), &rel("a/b/c.txt")).unwrap();
        assert_eq!(p, dir.path().join("a/b/c.txt"));
        assert!(dir.path().join("a/b").is_dir());
        assert!(!p.exists());
    }

    #[test]
    fn symlinked_ancestor_is_refused() {
        let share = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), share.path().join("a")).unwrap();
        let err = prepare_parent(share.path(), &rel("a/x")).unwrap_err();
        assert!(matches!(err, FsError::UnsafePath { .. }), "{err}");
        assert!(matches!(prepare_parent(share.path(), &rel("a/b/x")), Err(FsError::UnsafePath { .. })));
        assert!(matches!(create_temp(share.path(), &rel("a/x")), Err(FsError::UnsafePath { .. })));
        assert!(matches!(checked_path(share.path(), &rel("a/x")), Err(FsError::UnsafePath { .. })));
        assert!(matches!(create_dir(share.path(), &rel("a/d"), None), Err(FsError::UnsafePath { .. })));
        assert!(matches!(create_symlink(share.path(), &rel("a/l"), "/etc"), Err(FsError::UnsafePath { .. })));
        assert!(matches!(read_range(share.path(), &rel("a/x"), 0, 1), Err(FsError::UnsafePath { .. })));
        assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0, "something was created outside the share");

        // A file in the way is refused too.
        fs::write(share.path().join("f"), b"x").unwrap();
        assert!(matches!(prepare_parent(share.path(), &rel("f/x")), Err(FsError::UnsafePath { .. })));
    }

    #[test]
    fn commit_temp_leaves_content_mode_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let r = rel("sub/file.bin");
        let mut t = create_temp(dir.path(), &r).unwrap();
        let name = t.path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with(".ferry-tmp-file.bin-"), "{name}");
        assert_eq!(fs::metadata(&t.path).unwrap().permissions().mode() & 0o777, 0o644);
        t.file.write_all(b"hello world").unwrap();
        let mtime = 1_700_000_000_123_456_789i64;
        commit_temp(t, dir.path(), &r, mtime, true).unwrap();
        let full = dir.path().join("sub/file.bin");
        assert_eq!(fs::read(&full).unwrap(), b"hello world");
        let meta = fs::metadata(&full).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        assert_eq!(crate::mtime_ns(&meta), mtime);
        // No temp left behind.
        assert_eq!(fs::read_dir(dir.path().join("sub")).unwrap().count(), 1);

        // Replace, not executable.
        let mut t = create_temp(dir.path(), &r).unwrap();
        t.file.write_all(b"v2").unwrap();
        commit_temp(t, dir.path(), &r, 5_000_000_000, false).unwrap();
        assert_eq!(fs::read(&full).unwrap(), b"v2");
        let meta = fs::metadata(&full).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        assert_eq!(crate::mtime_ns(&meta), 5_000_000_000);

        let k = stat_known(dir.path(), &r).unwrap().unwrap();
        assert_eq!(k.kind, FileKind::File);
        assert_eq!(k.size, 2);
        assert_eq!(k.mtime_ns, 5_000_000_000);
        assert!(!k.executable);
        assert!(unchanged_on_disk(dir.path(), &r, Some(&k)).unwrap());
        fs::write(&full, b"v3!").unwrap();
        assert!(!unchanged_on_disk(dir.path(), &r, Some(&k)).unwrap());
        assert!(unchanged_on_disk(dir.path(), &rel("nothing"), None).unwrap());
        assert!(!unchanged_on_disk(dir.path(), &r, None).unwrap());
    }

    #[test]
    fn dropped_temp_is_removed_and_long_names_fit() {
        let dir = tempfile::tempdir().unwrap();
        let long = "x".repeat(250);
        let t = create_temp(dir.path(), &rel(&long)).unwrap();
        assert!(t.path.file_name().unwrap().len() <= 255);
        let p = t.path.clone();
        assert!(p.exists());
        drop(t);
        assert!(!p.exists());
    }

    #[test]
    fn read_range_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), b"0123456789").unwrap();
        assert_eq!(read_range(dir.path(), &rel("f"), 2, 3).unwrap(), b"234");
        assert_eq!(read_range(dir.path(), &rel("f"), 0, 10).unwrap(), b"0123456789");
        assert_eq!(read_range(dir.path(), &rel("f"), 10, 0).unwrap(), b"");
        assert!(matches!(read_range(dir.path(), &rel("f"), 8, 3), Err(FsError::ShortRead { .. })));
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        assert!(read_range(dir.path(), &rel("l"), 0, 1).is_err());
    }

    #[test]
    fn dirs_links_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        create_dir(root, &rel("d/e"), Some(1_000_000_000)).unwrap();
        create_dir(root, &rel("d/e"), None).unwrap();
        assert!(root.join("d/e").is_dir());
        assert_eq!(crate::mtime_ns(&fs::metadata(root.join("d/e")).unwrap()), 1_000_000_000);

        create_symlink(root, &rel("d/link"), "../../outside").unwrap();
        assert_eq!(fs::read_link(root.join("d/link")).unwrap(), Path::new("../../outside"));
        create_symlink(root, &rel("d/link"), "other").unwrap();
        assert_eq!(fs::read_link(root.join("d/link")).unwrap(), Path::new("other"));
        set_mtime(root, &rel("d/link"), 2_000_000_000).unwrap();
        let k = stat_known(root, &rel("d/link")).unwrap().unwrap();
        assert_eq!(k.kind, FileKind::Symlink { target: "other".into() });
        assert_eq!(k.mtime_ns, 2_000_000_000);

        fs::write(root.join("d/file"), b"x").unwrap();
        assert!(matches!(create_dir(root, &rel("d/file"), None), Err(FsError::WrongKind { .. })));
        assert!(matches!(remove_entry(root, &rel("d/file")), Err(FsError::WrongKind { .. })));
        assert!(matches!(remove_entry(root, &rel("d")), Err(FsError::NotEmpty(_))));
        remove_entry(root, &rel("d/link")).unwrap();
        remove_entry(root, &rel("d/e")).unwrap();
        remove_entry(root, &rel("d/e")).unwrap();
        assert!(!root.join("d/link").exists() && !root.join("d/e").exists());
        assert!(root.join("d/file").exists());
        // Only .ferry-tmp- entries remain from nothing: the directory has just the file.
        assert_eq!(fs::read_dir(root.join("d")).unwrap().count(), 1);
    }
}
