//! Snapshot links: how Ferry keeps the previous content of a file that is changed or deleted on
//! this device, so that local edits get versions too.
//!
//! When the node indexes a file, it hard links it at `.ferry/snapshots/<BLAKE3 of the path>`.
//! The link costs no space while the file is unchanged. Most programs save by writing a new file
//! and renaming it over the old one (editors, office suites, `git checkout`), and deleting only
//! removes one name: in both cases the old inode, with the old bytes, survives under the
//! snapshot link, and the next scan moves it into the version archive ([`take_snapshot`]).
//!
//! What it cannot do: a program that rewrites a file in place (`>` in a shell, some databases,
//! vim when a file has several links) changes the bytes of the one inode both names share, so
//! the old content is gone before anyone could copy it. The snapshot is then detected as stale
//! (its mtime or size no longer matches the index) and dropped; no version is made, and no wrong
//! content is ever recorded as a version. Copying every file instead would double every write,
//! and the old bytes of an in-place rewrite are not recoverable by any scanner (Syncthing keeps
//! no versions of local edits at all).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ferry_proto::{FERRY_DIR, RelPath};
use time::OffsetDateTime;

use crate::archive::archive_from;
use crate::error::FsError;
use crate::write::{checked_path, ensure_dirs};

/// Where a path's snapshot link lives.
pub fn snapshot_path(root: &Path, rel: &RelPath) -> PathBuf {
    let name = blake3::hash(rel.as_str().as_bytes()).to_hex();
    root.join(FERRY_DIR).join("snapshots").join(name.as_str())
}

/// What the index recorded for the content a snapshot should hold.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotOf {
    pub inode: u64,
    pub size: u64,
    pub mtime_ns: i64,
}

/// Links the file at `rel` as its snapshot, replacing an older one. Best effort: returns false
/// (and keeps nothing) when the file is not a regular file or links are not possible.
pub fn link_snapshot(root: &Path, rel: &RelPath) -> Result<bool, FsError> {
    let src = checked_path(root, rel)?;
    let dir = ensure_dirs(root, [FERRY_DIR, "snapshots"], true)?;
    let dst = dir.join(blake3::hash(rel.as_str().as_bytes()).to_hex().as_str());
    drop_path(&dst)?;
    match fs::symlink_metadata(&src) {
        Ok(m) if m.file_type().is_file() => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(FsError::io("lstat", &src, e)),
    }
    match fs::hard_link(&src, &dst) {
        Ok(()) => Ok(true),
        Err(e) => {
            tracing::debug!(path = %rel, error = %e, "no snapshot link");
            Ok(false)
        }
    }
}

/// Links many files (a group of received files, a scan's new files) as their snapshots, like
/// [`link_snapshot`] but cheaper per file: the snapshot folder is made once, and an older link
/// is removed only where there is one. Best effort, as a single link: a file that cannot be
/// linked (or is no longer a regular file) is skipped. Returns how many were linked.
pub fn link_snapshots<'a>(root: &Path, rels: impl IntoIterator<Item = &'a RelPath>) -> Result<usize, FsError> {
    ensure_dirs(root, [FERRY_DIR, "snapshots"], true)?;
    let mut linked = 0;
    for rel in rels {
        let (src, dst) = (rel.to_fs(root), snapshot_path(root, rel));
        // A link to a symlink or a failed link to a folder would be no snapshot of the file.
        if !fs::symlink_metadata(&src).is_ok_and(|m| m.file_type().is_file()) {
            continue;
        }
        let mut res = fs::hard_link(&src, &dst);
        if matches!(&res, Err(e) if e.kind() == io::ErrorKind::AlreadyExists) {
            drop_path(&dst)?;
            res = fs::hard_link(&src, &dst);
        }
        match res {
            Ok(()) => linked += 1,
            Err(e) => tracing::debug!(path = %rel, error = %e, "no snapshot link"),
        }
    }
    Ok(linked)
}

/// Removes `rel`'s snapshot link, if any.
pub fn drop_snapshot(root: &Path, rel: &RelPath) -> Result<(), FsError> {
    drop_path(&snapshot_path(root, rel))
}

fn drop_path(p: &Path) -> Result<(), FsError> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FsError::io("remove", p, e)),
    }
}

/// Moves `rel`'s snapshot into the version archive if it still holds the content the index
/// recorded (`of`): same inode, size and mtime. Says what became of it ([`Taken`]); a link
/// rewritten in place is dropped.
pub fn take_snapshot(root: &Path, rel: &RelPath, of: SnapshotOf, now: OffsetDateTime) -> Result<Taken, FsError> {
    // Refuses a symlinked .ferry or snapshots directory.
    ensure_dirs(root, [FERRY_DIR, "snapshots"], false)?;
    let snap = snapshot_path(root, rel);
    let meta = match fs::symlink_metadata(&snap) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Taken::NoSnapshot),
        Err(e) => return Err(FsError::io("lstat", &snap, e)),
    };
    let mtime = meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec());
    let intact = meta.file_type().is_file() && meta.ino() == of.inode && meta.len() == of.size && mtime == of.mtime_ns;
    if !intact {
        tracing::debug!(path = %rel, "snapshot was rewritten in place; no version of the old content");
        drop_path(&snap)?;
        return Ok(Taken::RewrittenInPlace);
    }
    archive_from(root, &snap, rel, now).map(Taken::Archived)
}

/// What [`take_snapshot`] could keep of the old content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Archived, at this path relative to the share root.
    Archived(String),
    /// No snapshot: the content was never linked, or was archived already by whoever replaced
    /// it (the node drops the link when it archives content itself).
    NoSnapshot,
    /// The snapshot is the same inode as the file and changed with it: the file was written
    /// in place, and its old bytes are gone from this device.
    RewrittenInPlace,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn rename_save_and_delete_keep_the_old_bytes_in_place_rewrite_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let rel = RelPath::new("a/doc.txt").unwrap();
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(root.join("a/doc.txt"), b"first").unwrap();
        let of = |p: &Path| {
            let m = fs::metadata(p).unwrap();
            SnapshotOf { inode: m.ino(), size: m.len(), mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec() }
        };
        let first = of(&root.join("a/doc.txt"));
        assert!(link_snapshot(root, &rel).unwrap());
        // An editor's save: new file renamed over the old one.
        fs::write(root.join("a/new"), b"second").unwrap();
        fs::rename(root.join("a/new"), root.join("a/doc.txt")).unwrap();
        let now = datetime!(2026-01-02 03:04:05 UTC);
        let Taken::Archived(p) = take_snapshot(root, &rel, first, now).unwrap() else { panic!() };
        assert_eq!(fs::read(root.join(&p)).unwrap(), b"first");
        assert!(!snapshot_path(root, &rel).exists());

        // Delete: the snapshot still has the bytes.
        let second = of(&root.join("a/doc.txt"));
        link_snapshot(root, &rel).unwrap();
        fs::remove_file(root.join("a/doc.txt")).unwrap();
        let Taken::Archived(p2) = take_snapshot(root, &rel, second, now).unwrap() else { panic!() };
        assert_eq!(fs::read(root.join(&p2)).unwrap(), b"second");

        // In place: detected, no (wrong) version.
        fs::write(root.join("a/doc.txt"), b"third").unwrap();
        let third = of(&root.join("a/doc.txt"));
        link_snapshot(root, &rel).unwrap();
        let mut f = fs::OpenOptions::new().write(true).truncate(true).open(root.join("a/doc.txt")).unwrap();
        io::Write::write_all(&mut f, b"fourth, longer").unwrap();
        drop(f);
        assert_eq!(take_snapshot(root, &rel, third, now).unwrap(), Taken::RewrittenInPlace);
        assert!(!snapshot_path(root, &rel).exists());
    }

    #[test]
    fn many_links_at_once_replace_older_ones_and_skip_what_is_not_there() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let rels: Vec<RelPath> = ["x.txt", "d/y.txt", "gone.txt"].iter().map(|p| RelPath::new(*p).unwrap()).collect();
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("x.txt"), b"old x").unwrap();
        link_snapshot(root, &rels[0]).unwrap();
        // x.txt replaced since: its link must follow the new file.
        fs::remove_file(root.join("x.txt")).unwrap();
        fs::write(root.join("x.txt"), b"new x").unwrap();
        fs::write(root.join("d/y.txt"), b"y").unwrap();
        assert_eq!(link_snapshots(root, &rels).unwrap(), 2);
        for rel in &rels[..2] {
            let (snap, file) =
                (fs::metadata(snapshot_path(root, rel)).unwrap(), fs::metadata(rel.to_fs(root)).unwrap());
            assert_eq!(snap.ino(), file.ino(), "{rel}");
        }
        assert_eq!(fs::read(snapshot_path(root, &rels[0])).unwrap(), b"new x");
        assert!(!snapshot_path(root, &rels[2]).exists());
    }
}
