//! The version archive: old content kept under `<root>/.ferry/versions/`, and conflict copies.
//!
//! A file that is deleted, replaced or loses a conflict is not destroyed: it moves (or is hard
//! linked) to `.ferry/versions/<dir>/<stem>~YYYYMMDD-HHMMSS<.ext>`, mirroring its place in the
//! share.

use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ferry_proto::{DeviceId, FERRY_DIR, RelPath};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::chunker::open_nofollow;
use crate::error::{FsError, IoContext};
use crate::write::{checked_path, ensure_dirs, fsync_dir};
use crate::{file_time, mtime_ns, truncate_str};

/// Where archived versions live, relative to the share root.
pub const VERSIONS_DIR: &str = ".ferry/versions";

const NAME_MAX: usize = 255;
const PATH_MAX: usize = 4096;

/// How [`archive`] takes the file away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveMode {
    /// Rename it into the archive: for deletes and conflicts (the file leaves the share).
    Move,
    /// Hard link it into the archive (copy if linking fails): for replaces, where the original
    /// stays in place until the replacing rename.
    Link,
}

/// `YYYYMMDD-HHMMSS` in UTC.
fn stamp(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!("[year][month][day]-[hour][minute][second]"))
        .unwrap_or_else(|_| "00000000-000000".into())
}

/// Splits a file name into stem and extension; a leading dot does not start an extension
/// (".bashrc" has none), nor does a trailing one.
fn split_name(name: &str) -> (&str, Option<&str>) {
    match name.rfind('.') {
        Some(i) if i > 0 && i + 1 < name.len() => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    }
}

/// `<stem><middle>.<ext>`, truncating the stem (then the extension) so it fits in `max` bytes.
fn compose(stem: &str, middle: &str, ext: Option<&str>, max: usize) -> String {
    let ext = ext.map(|e| truncate_str(e, max.saturating_sub(middle.len() + 1) / 2)).unwrap_or("");
    let ext_len = if ext.is_empty() { 0 } else { ext.len() + 1 };
    let stem = truncate_str(stem, max.saturating_sub(middle.len() + ext_len));
    if ext.is_empty() { format!("{stem}{middle}") } else { format!("{stem}{middle}.{ext}") }
}

/// Archives the regular file at `rel` as `.ferry/versions/<dir>/<stem>~YYYYMMDD-HHMMSS<.ext>`
/// (UTC of `now`; `~n` is added before the extension if the name is taken), fsyncs the versions
/// directory and returns the archive path relative to `root`, e.g.
/// `.ferry/versions/a/b~20260102-030405.txt`.
pub fn archive(root: &Path, rel: &RelPath, now: OffsetDateTime, mode: ArchiveMode) -> Result<String, FsError> {
    let src = checked_path(root, rel)?;
    let meta = fs::symlink_metadata(&src).ctx("lstat", &src)?;
    if !meta.file_type().is_file() {
        let found = if meta.file_type().is_dir() {
            "directory"
        } else if meta.file_type().is_symlink() {
            "symlink"
        } else {
            "special file"
        };
        return Err(FsError::WrongKind { path: src, expected: "regular file", found });
    }
    let placed = place_in_archive(root, rel, now, |dst| match mode {
        ArchiveMode::Move => place_move(&src, dst),
        ArchiveMode::Link => place_link(&src, dst, &meta),
    })?;
    if mode == ArchiveMode::Move {
        fsync_dir(src.parent().unwrap_or(root))?;
    }
    Ok(placed)
}

/// Moves `src`, a regular file inside Ferry's own folder of this share (a snapshot link kept by
/// the node), into the archive as a version of `rel`, named as [`archive`] names it.
pub fn archive_from(root: &Path, src: &Path, rel: &RelPath, now: OffsetDateTime) -> Result<String, FsError> {
    let own = root.join(FERRY_DIR);
    if !src.starts_with(&own) {
        return Err(FsError::UnsafePath { path: src.to_path_buf(), reason: "not inside the share's .ferry".into() });
    }
    let meta = fs::symlink_metadata(src).ctx("lstat", src)?;
    if !meta.file_type().is_file() {
        return Err(FsError::WrongKind { path: src.to_path_buf(), expected: "regular file", found: "other" });
    }
    let placed = place_in_archive(root, rel, now, |dst| place_move(src, dst))?;
    fsync_dir(src.parent().unwrap_or(root))?;
    Ok(placed)
}

/// Finds a free archive name for `rel` at `now` and lets `place` put the content there (it
/// returns false when the name is taken); fsyncs the versions directory.
fn place_in_archive(
    root: &Path,
    rel: &RelPath,
    now: OffsetDateTime,
    mut place: impl FnMut(&Path) -> Result<bool, FsError>,
) -> Result<String, FsError> {
    let parent = rel.parent();
    let mut comps = vec![FERRY_DIR, "versions"];
    if let Some(p) = &parent {
        comps.extend(p.as_str().split('/'));
    }
    let vdir = ensure_dirs(root, comps.iter().copied(), true)?;

    let (stem, ext) = split_name(rel.file_name());
    let ts = stamp(now);
    for n in 0u32.. {
        let middle = if n == 0 { format!("~{ts}") } else { format!("~{ts}~{n}") };
        let name = compose(stem, &middle, ext, NAME_MAX);
        let dst = vdir.join(&name);
        if !place(&dst)? {
            continue;
        }
        fsync_dir(&vdir)?;
        let rel_dir = match &parent {
            Some(p) => format!("{VERSIONS_DIR}/{p}"),
            None => VERSIONS_DIR.to_string(),
        };
        return Ok(format!("{rel_dir}/{name}"));
    }
    unreachable!("ran out of archive names")
}

/// Renames `src` to `dst` unless something is at `dst` (returns false then).
fn place_move(src: &Path, dst: &Path) -> Result<bool, FsError> {
    match fs::symlink_metadata(dst) {
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(FsError::io("lstat", dst, e)),
    }
    fs::rename(src, dst).ctx("rename into archive", dst)?;
    Ok(true)
}

/// Hard links `src` at `dst`, or copies it if the file system refuses links. False if `dst` is
/// taken.
fn place_link(src: &Path, dst: &Path, meta: &fs::Metadata) -> Result<bool, FsError> {
    match fs::hard_link(src, dst) {
        Ok(()) => return Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => tracing::debug!(src = %src.display(), error = %e, "hard link failed, copying"),
    }
    let mut out = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dst)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(FsError::io("create", dst, e)),
    };
    let result = (|| {
        let mut input = open_nofollow(src)?;
        io::copy(&mut input, &mut out).ctx("copy into archive", dst)?;
        out.set_permissions(fs::Permissions::from_mode(meta.permissions().mode() & 0o7777)).ctx("chmod", dst)?;
        let t = file_time(mtime_ns(meta));
        filetime::set_file_handle_times(&out, Some(t), Some(t)).ctx("set times", dst)?;
        out.sync_all().ctx("fsync", dst)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(dst);
        return Err(e);
    }
    Ok(true)
}

/// `NAME.sync-conflict-YYYYMMDD-HHMMSS-<device short>.EXT` beside `rel` (no `.EXT` when the name
/// has no extension; ".bashrc" has none). UTC of `when`. Long names are shortened to stay valid.
pub fn conflict_name(rel: &RelPath, when: OffsetDateTime, device: &DeviceId) -> RelPath {
    let (stem, ext) = split_name(rel.file_name());
    let middle = format!(".sync-conflict-{}-{}", stamp(when), device.short());
    let parent_len = rel.parent().map(|p| p.as_str().len() + 1).unwrap_or(0);
    let max = NAME_MAX.min(PATH_MAX.saturating_sub(parent_len));
    let name = compose(stem, &middle, ext, max);
    match rel.with_file_name(&name) {
        Ok(p) => p,
        Err(e) => {
            // Only when the directory path alone leaves no room for the suffix.
            let short = truncate_str(&name, max);
            rel.with_file_name(short).unwrap_or_else(|_| {
                tracing::warn!(path = %rel, error = %e, "no room for a conflict name");
                rel.clone()
            })
        }
    }
}

/// Renames the entry at `from` to `to` in the same directory and fsyncs the directory. Refuses
/// to overwrite something at `to` ([`FsError::Exists`]).
pub fn rename_within(root: &Path, from: &RelPath, to: &RelPath) -> Result<(), FsError> {
    if from.parent() != to.parent() {
        return Err(FsError::UnsafePath {
            path: to.to_fs(root),
            reason: format!("not in the same directory as {from}"),
        });
    }
    let src = checked_path(root, from)?;
    let dst: PathBuf = to.to_fs(root);
    match fs::symlink_metadata(&dst) {
        Ok(_) => return Err(FsError::Exists(dst)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(FsError::io("lstat", &dst, e)),
    }
    fs::rename(&src, &dst).ctx("rename", &dst)?;
    fsync_dir(src.parent().unwrap_or(root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use time::macros::datetime;

    fn rel(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    fn device() -> DeviceId {
        format!("ABCDEFG{}", "A".repeat(45)).parse().unwrap()
    }

    #[test]
    fn conflict_names() {
        let when = datetime!(2026-01-02 03:04:05 UTC);
        let d = device();
        assert_eq!(d.short(), "ABCDEFG");
        assert_eq!(conflict_name(&rel("a/b.txt"), when, &d).as_str(), "a/b.sync-conflict-20260102-030405-ABCDEFG.txt");
        assert_eq!(
            conflict_name(&rel("Makefile"), when, &d).as_str(),
            "Makefile.sync-conflict-20260102-030405-ABCDEFG"
        );
        assert_eq!(conflict_name(&rel(".bashrc"), when, &d).as_str(), ".bashrc.sync-conflict-20260102-030405-ABCDEFG");
        assert_eq!(
            conflict_name(&rel("x/a.tar.gz"), when, &d).as_str(),
            "x/a.tar.sync-conflict-20260102-030405-ABCDEFG.gz"
        );
        // Other offsets are converted to UTC.
        let local = datetime!(2026-01-02 05:04:05 +02:00);
        assert_eq!(conflict_name(&rel("b.txt"), local, &d).as_str(), "b.sync-conflict-20260102-030405-ABCDEFG.txt");
        // Long names stay within NAME_MAX.
        let long = format!("{}.txt", "n".repeat(250));
        let c = conflict_name(&rel(&long), when, &d);
        assert!(c.as_str().len() <= 255 && c.as_str().ends_with("-ABCDEFG.txt"), "{c}");
    }

    #[test]
    fn archive_move_and_link() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let now = datetime!(2026-01-02 03:04:05 UTC);
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(root.join("a/b.txt"), b"first").unwrap();

        let p = archive(root, &rel("a/b.txt"), now, ArchiveMode::Move).unwrap();
        assert_eq!(p, ".ferry/versions/a/b~20260102-030405.txt");
        assert_eq!(fs::read(root.join(&p)).unwrap(), b"first");
        assert!(!root.join("a/b.txt").exists());

        // Same second again: a unique name.
        fs::write(root.join("a/b.txt"), b"second").unwrap();
        let p2 = archive(root, &rel("a/b.txt"), now, ArchiveMode::Link).unwrap();
        assert_eq!(p2, ".ferry/versions/a/b~20260102-030405~1.txt");
        assert_eq!(fs::read(root.join(&p2)).unwrap(), b"second");
        assert_eq!(fs::read(root.join("a/b.txt")).unwrap(), b"second", "Link keeps the original");
        assert_eq!(fs::metadata(root.join(&p2)).unwrap().ino(), fs::metadata(root.join("a/b.txt")).unwrap().ino());

        let p3 = archive(root, &rel("a/b.txt"), now, ArchiveMode::Move).unwrap();
        assert_eq!(p3, ".ferry/versions/a/b~20260102-030405~2.txt");
        assert_eq!(fs::read(root.join(&p)).unwrap(), b"first", "earlier versions untouched");

        // Top level, no extension, dotfile.
        fs::write(root.join("Makefile"), b"all:").unwrap();
        fs::write(root.join(".bashrc"), b"x").unwrap();
        assert_eq!(
            archive(root, &rel("Makefile"), now, ArchiveMode::Move).unwrap(),
            ".ferry/versions/Makefile~20260102-030405"
        );
        assert_eq!(
            archive(root, &rel(".bashrc"), now, ArchiveMode::Link).unwrap(),
            ".ferry/versions/.bashrc~20260102-030405"
        );

        // Not a file.
        assert!(matches!(archive(root, &rel("a"), now, ArchiveMode::Move), Err(FsError::WrongKind { .. })));
        assert!(archive(root, &rel("missing"), now, ArchiveMode::Move).unwrap_err().is_not_found());
    }

    #[test]
    fn archive_refuses_a_symlinked_versions_dir() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join(".ferry")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.join(".ferry/versions")).unwrap();
        fs::write(root.join("f"), b"x").unwrap();
        let now = datetime!(2026-01-02 03:04:05 UTC);
        assert!(matches!(archive(root, &rel("f"), now, ArchiveMode::Move), Err(FsError::UnsafePath { .. })));
        assert!(root.join("f").exists());
        assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    }

    #[test]
    fn rename_within_same_dir_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(root.join("a/x"), b"x").unwrap();
        fs::write(root.join("a/z"), b"z").unwrap();
        rename_within(root, &rel("a/x"), &rel("a/y")).unwrap();
        assert_eq!(fs::read(root.join("a/y")).unwrap(), b"x");
        assert!(!root.join("a/x").exists());
        assert!(matches!(rename_within(root, &rel("a/y"), &rel("a/z")), Err(FsError::Exists(_))));
        assert!(rename_within(root, &rel("a/y"), &rel("b")).is_err());
    }
}
