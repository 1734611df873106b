//! The scanner's tests, run against a tiny in-memory index that each scan result updates.

use super::*;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// `paths` handed to a [`KnownPaths`] visitor, until it says stop.
fn feed(paths: Vec<RelPath>, f: &mut dyn FnMut(RelPath) -> bool) {
    for p in paths {
        if !f(p) {
            break;
        }
    }
}

/// A tiny in-memory index fed by scan results.
#[derive(Default)]
struct Index(RefCell<BTreeMap<RelPath, Known>>);

impl Index {
    fn scan(&self, root: &Path, scope: &Scope) -> ScanOutcome {
        let ignore = Ignore::load(root).unwrap();
        let out = scan(
            root,
            &|p| self.0.borrow().get(p).cloned(),
            &|p, f| {
                let live = self
                    .0
                    .borrow()
                    .iter()
                    .filter(|(k, v)| !v.deleted && p.is_none_or(|p| k.is_within(p) && *k != p))
                    .map(|(k, _)| k.clone())
                    .collect();
                feed(live, f)
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
    assert!(out.skipped.is_empty(), "{:?}", out.skipped);
    let mut got = upserts(&out);
    got.sort();
    assert_eq!(got, [".ferryignore", "docs", "docs/a.txt", "docs/sub", "docs/sub/b.bin", "empty", "link", "run.sh"]);
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
    let out = scan_reusing(r, &|_| None, &|_, _| {}, &Scope::Full, &Ignore::load(r).unwrap(), &reuse).unwrap();
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
    assert_eq!(out.skipped.len(), 1, "{:?}", out.skipped);
    // Shown share-relative, lossily: a person can find it.
    assert_eq!(out.skipped[0].path, "bad\u{fffd}name");
    assert!(matches!(out.skipped[0].reason, SkipReason::NotUtf8));
}

#[test]
fn special_files_are_reported_and_never_opened() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    fs::create_dir(r.join("d")).unwrap();
    let fifo = r.join("d/pipe");
    rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o644)).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(r.join("sock")).unwrap();
    fs::write(r.join("d/file"), b"x").unwrap();
    // The FIFO has no writer: a scan that opened it for reading (blocking) would hang here.
    let idx = Index::default();
    let out = idx.scan(r, &Scope::Full);
    assert_eq!(upserts(&out), ["d", "d/file"]);
    let skipped: Vec<(&str, Special)> = out
        .skipped
        .iter()
        .map(|s| match s.reason {
            SkipReason::Special(k) => (s.path.as_str(), k),
            ref other => panic!("{}: {other:?}", s.path),
        })
        .collect();
    assert_eq!(skipped, [("d/pipe", Special::Fifo), ("sock", Special::Socket)]);
    // A listed path that is a FIFO is reported the same way.
    let out = idx.scan(r, &Scope::Paths(vec![RelPath::new("d/pipe").unwrap()]));
    assert!(matches!(out.skipped[..], [Skipped { reason: SkipReason::Special(Special::Fifo), .. }]));
    // Reading one as a file is refused before it is opened.
    assert!(matches!(crate::hash_file(&fifo), Err(FsError::WrongKind { .. })));
}

#[test]
fn too_long_paths_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    // 17 levels of 250-byte names: 16 fit in a path the kernel takes whole; the 17th, made
    // relative to its parent, takes the share path past 4096 bytes.
    let name = "n".repeat(250);
    let rel = vec![name.as_str(); 17].join("/");
    let parent = dir.path().join(vec![name.as_str(); 16].join("/"));
    fs::create_dir_all(&parent).unwrap();
    let fd = fs::File::open(&parent).unwrap();
    rustix::fs::mkdirat(&fd, name.as_str(), rustix::fs::Mode::from_raw_mode(0o755)).unwrap();
    let idx = Index::default();
    let out = idx.scan(dir.path(), &Scope::Full);
    assert_eq!(out.skipped.len(), 1, "{:?}", out.skipped);
    assert_eq!(out.skipped[0].path, rel);
    assert!(matches!(out.skipped[0].reason, SkipReason::BadPath(ferry_proto::PathError::TooLong(_))));
}

/// A tree of `n` files in a few folders, with a known index of every other file (as a
/// previous scan left it) plus `gone`, which is no longer on disk.
fn streamed_tree(n: usize) -> (tempfile::TempDir, Index) {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..n {
        let sub = dir.path().join(format!("d{}", i % 3));
        fs::create_dir_all(&sub).unwrap();
        fs::write(sub.join(format!("f{i:02}")), format!("file {i}")).unwrap();
    }
    let index = Index::default();
    index.scan(dir.path(), &Scope::Full);
    for i in (1..n).step_by(2) {
        fs::write(dir.path().join(format!("d{}/f{i:02}", i % 3)), format!("changed {i}")).unwrap();
    }
    index.0.borrow_mut().insert(
        RelPath::new("d0/gone").unwrap(),
        Known { kind: FileKind::File, deleted: false, size: 1, mtime_ns: 1, inode: 1, executable: false },
    );
    (dir, index)
}

#[test]
fn a_streamed_scan_hands_over_full_batches_and_returns_the_rest_with_the_deletes() {
    let (dir, index) = streamed_tree(20);
    let root = dir.path();
    let ignore = Ignore::load(root).unwrap();
    let known = |p: &RelPath| index.0.borrow().get(p).cloned();
    let known_paths = |p: Option<&RelPath>, f: &mut dyn FnMut(RelPath) -> bool| {
        assert!(p.is_none());
        feed(index.0.borrow().iter().filter(|(_, v)| !v.deleted).map(|(k, _)| k.clone()).collect(), f)
    };
    let mut batches: Vec<Vec<Change>> = Vec::new();
    let mut sink = |b: Vec<Change>| {
        batches.push(b);
        true
    };
    let rest = scan_streaming(root, &known, &known_paths, &Scope::Full, &ignore, &|_, _| None, 3, &mut sink).unwrap();
    // 10 files changed: three full batches of 3 while walking, the last upsert and the delete
    // returned.
    assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 3]);
    assert_eq!(upserts(&rest).len(), 1);
    assert_eq!(deletes(&rest), vec!["d0/gone"]);
    let mut streamed: Vec<String> = batches
        .iter()
        .flatten()
        .filter_map(|c| match c {
            Change::Upsert(o) => Some(o.path.to_string()),
            _ => None,
        })
        .collect();
    streamed.extend(upserts(&rest));
    let want: Vec<String> = (1..20).step_by(2).map(|i| format!("d{}/f{i:02}", i % 3)).collect();
    let (mut got, mut want) = (streamed, want);
    got.sort();
    want.sort();
    assert_eq!(got, want, "every changed file exactly once");
}

#[test]
fn a_refused_batch_stops_the_walk() {
    let (dir, index) = streamed_tree(20);
    let root = dir.path();
    let ignore = Ignore::load(root).unwrap();
    let known = |p: &RelPath| index.0.borrow().get(p).cloned();
    let known_paths = |_: Option<&RelPath>, _: &mut dyn FnMut(RelPath) -> bool| {};
    let mut calls = 0;
    let mut sink = |_: Vec<Change>| {
        calls += 1;
        false
    };
    let rest = scan_streaming(root, &known, &known_paths, &Scope::Full, &ignore, &|_, _| None, 2, &mut sink).unwrap();
    assert_eq!(calls, 1, "nothing more is handed over after a refusal");
    // The walk ends at the next entry: far fewer than the 10 changed files were looked at.
    assert!(upserts(&rest).len() <= 1, "{:?}", upserts(&rest));
}

#[test]
fn a_rehash_scan_that_knows_nothing_deletes_nothing() {
    // A re-hash scan's `known` answers None for every path (so every file is read again), while
    // the index still lists them all as live: none of them may come back as a delete.
    let (dir, index) = streamed_tree(6);
    index.0.borrow_mut().remove(&RelPath::new("d0/gone").unwrap());
    let root = dir.path();
    let ignore = Ignore::load(root).unwrap();
    let known_paths = |_: Option<&RelPath>, f: &mut dyn FnMut(RelPath) -> bool| {
        feed(index.0.borrow().iter().filter(|(_, v)| !v.deleted).map(|(k, _)| k.clone()).collect(), f)
    };
    let out =
        scan_streaming(root, &|_| None, &known_paths, &Scope::Full, &ignore, &|_, _| None, 4, &mut |_| true).unwrap();
    assert!(deletes(&out).is_empty(), "{:?}", deletes(&out));
}

#[test]
fn a_full_scan_lists_temps_and_only_stale_ones_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("a/b")).unwrap();
    fs::create_dir_all(root.join(".ferry/versions")).unwrap();
    fs::create_dir_all(root.join(".ferry-tmp-dir/inner")).unwrap();
    fs::write(root.join(".ferry-tmp-x-1"), b"").unwrap();
    fs::write(root.join("a/b/.ferry-tmp-y-2"), b"").unwrap();
    std::os::unix::fs::symlink("t", root.join("a/.ferry-tmp-l-3")).unwrap();
    fs::write(root.join("a/.ferry-tmp-new-4"), b"a write of this run").unwrap();
    fs::write(root.join(".ferry-tmp-dir/inner/.ferry-tmp-under-5"), b"").unwrap();
    fs::write(root.join(".ferry/versions/.ferry-tmp-keep"), b"").unwrap();
    fs::write(root.join("a/keep.txt"), b"k").unwrap();
    fs::write(root.join("a/b/ferry-tmp-not"), b"k").unwrap();
    // The cutoff: everything above was written before it but the one made "since".
    let before = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    filetime::set_symlink_file_times(
        root.join("a/.ferry-tmp-new-4"),
        filetime::FileTime::from_system_time(before),
        filetime::FileTime::from_system_time(before + std::time::Duration::from_secs(1)),
    )
    .unwrap();

    let out = Index::default().scan(root, &Scope::Full);
    let mut temps: Vec<String> =
        out.temps.iter().map(|t| t.strip_prefix(root).unwrap().to_string_lossy().into_owned()).collect();
    temps.sort();
    // Not inside Ferry's own folder, not inside a temp folder, folders not at all.
    assert_eq!(temps, [".ferry-tmp-x-1", "a/.ferry-tmp-l-3", "a/.ferry-tmp-new-4", "a/b/.ferry-tmp-y-2"]);
    assert!(upserts(&out).iter().all(|p| !p.contains(".ferry-tmp-")), "{:?}", upserts(&out));

    assert_eq!(crate::remove_stale_temps(&out.temps, before).unwrap(), 3);
    assert!(!root.join(".ferry-tmp-x-1").exists());
    assert!(!root.join("a/b/.ferry-tmp-y-2").exists());
    assert!(fs::symlink_metadata(root.join("a/.ferry-tmp-l-3")).is_err());
    assert_eq!(fs::read(root.join("a/.ferry-tmp-new-4")).unwrap(), b"a write of this run", "newer than the cutoff");
    assert!(root.join(".ferry/versions/.ferry-tmp-keep").exists());
    assert!(root.join("a/keep.txt").exists() && root.join("a/b/ferry-tmp-not").exists());
    assert_eq!(crate::remove_stale_temps(&out.temps, before).unwrap(), 0, "gone already");
}
