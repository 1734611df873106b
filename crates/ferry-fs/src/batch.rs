//! Committing many files at once, and moving a file within a share.
//!
//! [`commit_temp`](crate::commit_temp) costs two synchronous flushes per file (the temp, then
//! its directory). For thousands of small files that is most of the time, so
//! [`commit_temps`] keeps the same guarantees with far fewer waits: every temp is made durable
//! first (a big group with one `syncfs` per file system where `syncfs` is known to be a
//! barrier, see [`SYNCFS_BARRIERS`]; otherwise, and for a small group, an fsync per temp from
//! several threads at once, so the file system groups them into a few journal commits),
//! only then renamed over its target, and each touched directory is fsynced once at
//! the end. A file is never visible at its final name before its content is durable, and the
//! caller learns a file is committed only after its directory is durable too.
//!
//! [`move_file`] renames a file to another path of the same share (a rename seen on a peer),
//! with the same path checks as every write.

use std::collections::BTreeMap;
use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ferry_proto::RelPath;

use crate::error::{FsError, IoContext};
use crate::file_time;
use crate::write::{TempFile, checked_path, fsync_dir, prepare_parent};

/// Threads fsyncing temps at once. A handful is enough for the journal to batch their commits;
/// more only adds threads on a small machine.
const SYNC_THREADS: usize = 4;
/// From this many files on, the temps are made durable with one `syncfs` per file system
/// instead of one `fsync` each: a single journal commit and device flush for the whole group
/// (it also flushes whatever else is dirty on that file system, which costs less than
/// thousands of flushes once the group is this big).
const SYNCFS_MIN: usize = 32;

/// File systems whose `syncfs` is known to make everything written on them durable (their
/// `sync_fs` is a journal or log commit followed by a device flush), by `statfs` magic: there
/// one `syncfs` may stand for a group's fsyncs. Every other type gets one fsync per file:
/// above all FUSE (the kernel passes `syncfs` on to no FUSE file system but virtiofs, so ntfs-3g
/// drives, gocryptfs and other encrypted folders, sshfs and rclone mounts get the writes and no
/// flush: a power cut there left files of 0 bytes at their final names), and whatever we cannot
/// vouch for (network file systems, overlays, file systems added later).
const SYNCFS_BARRIERS: [(u32, &str); 4] = [
    // One magic for ext2, ext3 and ext4; ext4's sync_fs commits the journal and flushes.
    (0xEF53, "ext4"),
    // xfs_fs_sync_fs forces the log to disk.
    (0x5846_5342, "xfs"),
    // btrfs_sync_fs commits the transaction.
    (0x9123_683E, "btrfs"),
    // Memory only: nothing survives a power cut whatever is called, and fsync is a no-op too.
    (0x0102_1994, "tmpfs"),
];

/// Whether `syncfs` on `file`'s file system is a barrier ([`SYNCFS_BARRIERS`]). An unknown or
/// unreadable type is not.
pub(crate) fn syncfs_is_barrier(file: &fs::File) -> bool {
    // f_type is a 32-bit magic in a signed word of the platform's width.
    rustix::fs::fstatfs(file).is_ok_and(|s| SYNCFS_BARRIERS.iter().any(|(magic, _)| s.f_type as u32 == *magic))
}

/// A filled temp file and where it goes.
#[derive(Debug)]
pub struct PendingFile {
    pub temp: TempFile,
    pub rel: RelPath,
    pub mtime_ns: i64,
    pub executable: bool,
}

/// Commits every pending file like [`commit_temp`](crate::commit_temp) does one: mode, mtime,
/// fsync (all temps, before any rename), then rename over the target (ancestors re-checked;
/// refused if something appeared at a target expected to be empty, see `expect_absent`), then
/// one fsync per parent directory. Returns one result per input, in input order; a temp that
/// was not renamed is removed.
///
/// `expect_absent[i]`: the caller checked that nothing was at item i's target; if something is
/// there now (created since), the item fails with [`FsError::Exists`] instead of replacing it.
pub fn commit_temps(root: &Path, items: Vec<PendingFile>, expect_absent: &[bool]) -> Vec<Result<(), FsError>> {
    let n = items.len();
    let mut results: Vec<Result<(), FsError>> = (0..n).map(|_| Ok(())).collect();
    let mut slots: Vec<Option<PendingFile>> = items.into_iter().map(Some).collect();

    // 1. Mode, times and content durable: one syncfs per file system for a big group where
    //    syncfs is a barrier, else one fsync per temp on a few threads.
    let syncfs = n >= SYNCFS_MIN && slots.iter().flatten().all(|p| syncfs_is_barrier(&p.temp.file));
    let prepared: Vec<Result<(), FsError>> = if syncfs {
        prepare_and_syncfs(&slots)
    } else {
        let per = n.div_ceil(SYNC_THREADS).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = slots
                .chunks(per)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|p| {
                                let p = p.as_ref().expect("all present");
                                let mode = if p.executable { 0o755 } else { 0o644 };
                                let t = &p.temp;
                                t.file.set_permissions(Permissions::from_mode(mode)).ctx("chmod", &t.path)?;
                                let ft = file_time(p.mtime_ns);
                                filetime::set_file_handle_times(&t.file, Some(ft), Some(ft))
                                    .ctx("set times", &t.path)?;
                                t.file.sync_all().ctx("fsync", &t.path)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|_| panic!("fsync thread panicked"))).collect()
        })
    };

    // 2. Renames, each after its own temp is durable.
    let mut dirs: BTreeMap<PathBuf, Vec<usize>> = BTreeMap::new();
    for (i, r) in prepared.into_iter().enumerate() {
        let p = slots[i].take().expect("present");
        if let Err(e) = r {
            results[i] = Err(e);
            continue; // the temp is dropped (removed)
        }
        match rename_into_place(root, p, expect_absent.get(i).copied().unwrap_or(false)) {
            Ok(dir) => dirs.entry(dir).or_default().push(i),
            Err(e) => results[i] = Err(e),
        }
    }

    // 3. One fsync per directory makes all its renames durable.
    for (dir, members) in dirs {
        if let Err(e) = fsync_dir(&dir) {
            let msg = e.to_string();
            for i in members {
                results[i] = Err(FsError::io("fsync dir", &dir, io::Error::other(msg.clone())));
            }
        }
    }
    results
}

/// Mode and times on every temp, then one `syncfs` per file system the temps live on (a share
/// may hold mount points). `syncfs` reports write-back errors of that file system since the
/// temps were opened (Linux 5.8 and later), so a failed flush fails every temp on it.
fn prepare_and_syncfs(slots: &[Option<PendingFile>]) -> Vec<Result<(), FsError>> {
    use std::os::unix::fs::MetadataExt;
    let mut results = Vec::with_capacity(slots.len());
    let mut by_dev: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, p) in slots.iter().enumerate() {
        let p = p.as_ref().expect("all present");
        let t = &p.temp;
        let mode = if p.executable { 0o755 } else { 0o644 };
        let r = (|| {
            t.file.set_permissions(Permissions::from_mode(mode)).ctx("chmod", &t.path)?;
            let ft = file_time(p.mtime_ns);
            filetime::set_file_handle_times(&t.file, Some(ft), Some(ft)).ctx("set times", &t.path)?;
            t.file.metadata().ctx("fstat", &t.path).map(|m| m.dev())
        })();
        match r {
            Ok(dev) => {
                by_dev.entry(dev).or_default().push(i);
                results.push(Ok(()));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    for members in by_dev.values() {
        let t = &slots[members[0]].as_ref().expect("present").temp;
        if let Err(e) = rustix::fs::syncfs(&t.file) {
            let msg = e.to_string();
            for &i in members {
                let path = &slots[i].as_ref().expect("present").temp.path;
                results[i] = Err(FsError::io("syncfs", path, io::Error::other(msg.clone())));
            }
        }
    }
    results
}

fn rename_into_place(root: &Path, mut p: PendingFile, expect_absent: bool) -> Result<PathBuf, FsError> {
    let target = prepare_parent(root, &p.rel)?;
    let dir = target.parent().unwrap_or(root).to_path_buf();
    if p.temp.path.parent() != Some(dir.as_path()) {
        return Err(FsError::UnsafePath {
            path: p.temp.path.clone(),
            reason: format!("temp file is not beside its target {}", target.display()),
        });
    }
    if expect_absent {
        match fs::symlink_metadata(&target) {
            Ok(_) => return Err(FsError::Exists(target)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(FsError::io("lstat", &target, e)),
        }
    }
    fs::rename(&p.temp.path, &target).ctx("rename", &target)?;
    // Committed: nothing left for Drop to remove.
    p.temp.path = PathBuf::new();
    Ok(dir)
}

/// Moves the file at `from` to `to` (both inside `root`, ancestors checked, missing parents of
/// `to` created), refusing to replace anything at `to` ([`FsError::Exists`]); then fsyncs both
/// directories. The content is not copied: a rename on a peer costs a rename here.
pub fn move_file(root: &Path, from: &RelPath, to: &RelPath) -> Result<(), FsError> {
    let src = checked_path(root, from)?;
    let dst = prepare_parent(root, to)?;
    match fs::symlink_metadata(&dst) {
        Ok(_) => return Err(FsError::Exists(dst)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(FsError::io("lstat", &dst, e)),
    }
    let meta = fs::symlink_metadata(&src).ctx("lstat", &src)?;
    if !meta.file_type().is_file() {
        return Err(FsError::WrongKind { path: src, expected: "regular file", found: "other" });
    }
    fs::rename(&src, &dst).ctx("rename", &dst)?;
    let (sd, dd) = (src.parent().unwrap_or(root), dst.parent().unwrap_or(root));
    fsync_dir(dd)?;
    if sd != dd {
        fsync_dir(sd)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::create_temp;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    fn rel(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    fn pending(root: &Path, path: &str, content: &[u8], mtime_ns: i64) -> PendingFile {
        let r = rel(path);
        let mut t = create_temp(root, &r).unwrap();
        t.file.write_all(content).unwrap();
        PendingFile { temp: t, rel: r, mtime_ns, executable: false }
    }

    #[test]
    fn commits_many_files_with_content_and_mtime() {
        // Below and above SYNCFS_MIN: fsync per temp, then one syncfs for the group.
        for n in [5i64, 50] {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            let items: Vec<PendingFile> = (0..n)
                .map(|i| {
                    let mut p = pending(
                        root,
                        &format!("d{}/f{i}.txt", i % 3),
                        format!("content {i}").as_bytes(),
                        1_000_000_000 * i,
                    );
                    p.executable = i % 2 == 1;
                    p
                })
                .collect();
            let res = commit_temps(root, items, &vec![true; n as usize]);
            assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
            for i in 0..n {
                let p = root.join(format!("d{}/f{i}.txt", i % 3));
                assert_eq!(fs::read_to_string(&p).unwrap(), format!("content {i}"));
                let meta = fs::metadata(&p).unwrap();
                assert_eq!(meta.mtime(), i);
                assert_eq!(meta.mode() & 0o777, if i % 2 == 1 { 0o755 } else { 0o644 }, "mode of {p:?}");
            }
            // No temp is left behind.
            for d in 0..3 {
                let names: Vec<String> = fs::read_dir(root.join(format!("d{d}")))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                assert!(names.iter().all(|n| !n.starts_with(ferry_proto::TEMP_PREFIX)), "{names:?}");
            }
        }
    }

    #[test]
    fn syncfs_stands_for_fsyncs_only_on_known_file_systems() {
        // procfs is no file system anything is made durable on: an unknown type gets fsyncs.
        assert!(!syncfs_is_barrier(&fs::File::open("/proc/self/status").unwrap()));
        // A FUSE mount is shown in ferry-e2e's tests/powercut_fs.rs (it needs root to mount).
    }

    #[test]
    fn refuses_a_target_that_appeared_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let a = pending(root, "a.txt", b"theirs a", 0);
        let b = pending(root, "b.txt", b"theirs b", 0);
        fs::write(root.join("b.txt"), b"mine, written meanwhile").unwrap();
        let res = commit_temps(root, vec![a, b], &[true, true]);
        assert!(res[0].is_ok());
        assert!(matches!(res[1], Err(FsError::Exists(_))), "{:?}", res[1]);
        assert_eq!(fs::read(root.join("b.txt")).unwrap(), b"mine, written meanwhile");
        assert_eq!(fs::read(root.join("a.txt")).unwrap(), b"theirs a");
        assert_eq!(fs::read_dir(root).unwrap().count(), 2, "the refused temp is removed");
    }

    #[test]
    fn replaces_when_not_expected_absent() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("a.txt"), b"old").unwrap();
        let a = pending(root, "a.txt", b"new", 0);
        let res = commit_temps(root, vec![a], &[false]);
        assert!(res[0].is_ok());
        assert_eq!(fs::read(root.join("a.txt")).unwrap(), b"new");
    }

    #[test]
    fn refuses_a_symlinked_parent() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path();
        let a = pending(root, "sub/a.txt", b"x", 0);
        // The parent is swapped for a symlink after the temp was made.
        fs::rename(root.join("sub"), root.join("sub-moved")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("sub")).unwrap();
        let res = commit_temps(root, vec![a], &[true]);
        assert!(res[0].is_err());
        assert!(!outside.path().join("a.txt").exists(), "nothing written through the link");
    }

    #[test]
    fn moves_a_file_without_replacing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("big.bin"), b"content").unwrap();
        move_file(root, &rel("big.bin"), &rel("x/moved.bin")).unwrap();
        assert!(!root.join("big.bin").exists());
        assert_eq!(fs::read(root.join("x/moved.bin")).unwrap(), b"content");
        fs::write(root.join("other"), b"o").unwrap();
        assert!(matches!(move_file(root, &rel("other"), &rel("x/moved.bin")), Err(FsError::Exists(_))));
        assert_eq!(fs::read(root.join("x/moved.bin")).unwrap(), b"content");
        assert!(move_file(root, &rel("missing"), &rel("y")).is_err());
    }
}
