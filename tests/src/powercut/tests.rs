//! The model's rules, each shown by what a cut leaves; then the same through a real mount.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::Path;

use super::model::{Kind, Model, ROOT};
use super::{PowerFs, available};

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn model() -> (tempfile::TempDir, Model) {
    let d = tempfile::tempdir().unwrap();
    let m = Model::new(&d.path().join("backing")).unwrap();
    (d, m)
}

fn new_file(m: &mut Model, parent: u64, name: &str, data: &[u8]) -> u64 {
    let ino = m.create(parent, os(name), Kind::File, 0o644).unwrap();
    m.write(ino, 0, data).unwrap();
    ino
}

fn content(m: &mut Model, parent: u64, name: &str) -> Option<Vec<u8>> {
    let ino = m.lookup(parent, os(name)).ok()?;
    Some(m.read(ino, 0, 1 << 20).unwrap())
}

fn cut(m: &mut Model) {
    m.freeze();
    m.cut().unwrap();
}

#[test]
fn a_write_without_fsync_is_lost() {
    let (_d, mut m) = model();
    let f = new_file(&mut m, ROOT, "f", b"hello");
    m.sync(ROOT, false).unwrap();
    m.write(f, 0, b"HELLO, again").unwrap();
    cut(&mut m);
    assert_eq!(content(&mut m, ROOT, "f").unwrap(), b"", "a name made durable, its data never");

    m.write(f, 0, b"kept").unwrap();
    m.sync(f, true).unwrap();
    m.write(f, 0, b"lost").unwrap();
    cut(&mut m);
    assert_eq!(content(&mut m, ROOT, "f").unwrap(), b"kept", "back to the last fsync");
}

#[test]
fn an_fsynced_file_without_its_directory_fsync_loses_its_name() {
    let (_d, mut m) = model();
    let d = m.create(ROOT, os("d"), Kind::Dir, 0o755).unwrap();
    m.sync(ROOT, false).unwrap();
    let f = new_file(&mut m, d, "f", b"data");
    m.sync(f, false).unwrap();
    cut(&mut m);
    assert!(m.lookup(ROOT, os("d")).is_ok());
    assert_eq!(content(&mut m, d, "f"), None, "the name needs the directory's fsync");

    let f = new_file(&mut m, d, "f", b"data");
    m.sync(f, false).unwrap();
    m.sync(d, false).unwrap();
    cut(&mut m);
    assert_eq!(content(&mut m, d, "f").unwrap(), b"data");
}

#[test]
fn a_rename_is_durable_at_its_directory_fsync() {
    let (_d, mut m) = model();
    let f = new_file(&mut m, ROOT, "a", b"v1");
    m.sync(f, false).unwrap();
    m.sync(ROOT, false).unwrap();
    m.rename(ROOT, os("a"), ROOT, os("b"), false, false).unwrap();
    cut(&mut m);
    assert_eq!(content(&mut m, ROOT, "a").unwrap(), b"v1", "the rename was never made durable");
    assert_eq!(content(&mut m, ROOT, "b"), None);

    // The temp-then-rename pattern: a new temp replaces "a"; only a directory fsync makes it so.
    let t = new_file(&mut m, ROOT, ".tmp", b"v2");
    m.sync(t, false).unwrap();
    m.rename(ROOT, os(".tmp"), ROOT, os("a"), false, false).unwrap();
    m.sync(ROOT, false).unwrap();
    cut(&mut m);
    assert_eq!(content(&mut m, ROOT, "a").unwrap(), b"v2");
    assert_eq!(content(&mut m, ROOT, ".tmp"), None);
}

#[test]
fn a_file_moved_between_directories_reappears_where_only_the_new_one_was_fsynced() {
    let (_d, mut m) = model();
    let x = m.create(ROOT, os("x"), Kind::Dir, 0o755).unwrap();
    let y = m.create(ROOT, os("y"), Kind::Dir, 0o755).unwrap();
    let f = new_file(&mut m, x, "f", b"data");
    for i in [f, x, y, ROOT] {
        m.sync(i, false).unwrap();
    }
    m.rename(x, os("f"), y, os("f"), false, false).unwrap();
    m.sync(y, false).unwrap();
    cut(&mut m);
    assert_eq!(content(&mut m, x, "f").unwrap(), b"data", "strict: the old name was never removed durably");
    assert_eq!(content(&mut m, y, "f").unwrap(), b"data");
    assert_eq!(m.attr(f).unwrap().nlink, 2);
}

#[test]
fn a_directory_moves_at_either_directory_fsync() {
    let (_d, mut m) = model();
    let x = m.create(ROOT, os("x"), Kind::Dir, 0o755).unwrap();
    let y = m.create(ROOT, os("y"), Kind::Dir, 0o755).unwrap();
    let sub = m.create(x, os("sub"), Kind::Dir, 0o755).unwrap();
    for i in [sub, x, y, ROOT] {
        m.sync(i, false).unwrap();
    }
    m.rename(x, os("sub"), y, os("sub"), false, false).unwrap();
    m.sync(x, false).unwrap();
    cut(&mut m);
    assert!(m.lookup(x, os("sub")).is_err());
    assert_eq!(m.lookup(y, os("sub")).unwrap(), sub, "one directory, one place");
}

#[test]
fn hard_links_share_one_durable_content() {
    let (_d, mut m) = model();
    let snap = m.create(ROOT, os("snap"), Kind::Dir, 0o755).unwrap();
    let f = new_file(&mut m, ROOT, "f", b"v1");
    m.sync(f, false).unwrap();
    m.link(f, snap, os("f.1")).unwrap();
    m.sync(snap, false).unwrap();
    m.sync(ROOT, false).unwrap();
    m.write(f, 0, b"v2").unwrap();
    cut(&mut m);
    assert_eq!(content(&mut m, ROOT, "f").unwrap(), b"v1");
    assert_eq!(content(&mut m, snap, "f.1").unwrap(), b"v1");
    assert_eq!(m.attr(f).unwrap().nlink, 2);

    // Data fsynced through one name is durable under both.
    let g = m.lookup(snap, os("f.1")).unwrap();
    m.write(g, 0, b"v3").unwrap();
    m.sync(g, true).unwrap();
    m.remove(ROOT, os("f"), false).unwrap();
    cut(&mut m);
    assert_eq!(content(&mut m, ROOT, "f").unwrap(), b"v3", "the unlink was not made durable");
}

#[test]
fn nothing_becomes_durable_after_the_freeze() {
    let (_d, mut m) = model();
    let f = new_file(&mut m, ROOT, "f", b"data");
    m.freeze();
    assert!(m.sync(f, false).is_err());
    assert!(m.sync(ROOT, false).is_err());
    assert!(m.write(f, 0, b"x").is_err());
    m.cut().unwrap();
    assert_eq!(content(&mut m, ROOT, "f"), None);
}

fn fsync_dir(p: &Path) {
    fs::File::open(p).unwrap().sync_all().unwrap();
}

/// The same pattern as `ferry_fs::commit_temps` made a big group durable with before the fix:
/// through the kernel, `syncfs` does not reach the file system, so the renamed files come back
/// empty at their final names; per-file fsync keeps them.
#[test]
fn through_a_mount_syncfs_is_no_barrier_and_fsync_is() {
    if !available() {
        eprintln!("skipped: needs root and /dev/fuse to mount");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let mnt = d.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut p = PowerFs::mount(&d.path().join("backing"), &mnt).unwrap();
    for (name, per_file) in [("syncfs", false), ("fsync", true)] {
        let tmp = mnt.join(format!(".tmp-{name}"));
        let mut f = fs::File::create(&tmp).unwrap();
        f.write_all(name.as_bytes()).unwrap();
        if per_file {
            f.sync_all().unwrap();
        } else {
            rustix::fs::syncfs(&f).unwrap();
        }
        drop(f);
        fs::rename(&tmp, mnt.join(name)).unwrap();
        fsync_dir(&mnt);
    }
    p.cut().unwrap();
    assert_eq!(fs::read(mnt.join("syncfs")).unwrap(), b"", "syncfs made nothing durable");
    assert_eq!(fs::read(mnt.join("fsync")).unwrap(), b"fsync");
    assert!(!mnt.join(".tmp-fsync").exists());
    let names: Vec<_> = fs::read_dir(&mnt).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(p.stats().cuts, 1);
}
