//! Unit tests of sends: offer checks, name candidates, placement.

use super::*;
use ferry_proto::ChunkInfo;

fn file(path: &str, data: &[u8]) -> SendFile {
    SendFile {
        path: RelPath::new(path).unwrap(),
        size: data.len() as u64,
        mtime_ns: 0,
        executable: false,
        hash: ChunkHash::of(data),
        chunks: if data.is_empty() {
            vec![]
        } else {
            vec![ChunkInfo { hash: ChunkHash::of(data), len: data.len() as u32 }]
        },
    }
}

#[test]
fn collision_names_go_before_the_extension() {
    assert_eq!(candidate("a.txt", 0, false), "a.txt");
    assert_eq!(candidate("a.txt", 1, false), "a (1).txt");
    assert_eq!(candidate("a.tar.gz", 2, false), "a.tar (2).gz");
    assert_eq!(candidate(".bashrc", 1, false), ".bashrc (1)");
    assert_eq!(candidate("Photos", 1, true), "Photos (1)");
    assert_eq!(candidate("v1.2", 1, true), "v1.2 (1)");
}

#[test]
fn place_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let (st, inbox) = (dir.path().join("st"), dir.path().join("in"));
    std::fs::create_dir_all(st.join("d")).unwrap();
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(st.join("a.txt"), b"new").unwrap();
    std::fs::write(st.join("d/x"), b"x").unwrap();
    std::fs::write(inbox.join("a.txt"), b"old").unwrap();
    std::fs::write(inbox.join("a (1).txt"), b"old1").unwrap();
    std::fs::create_dir(inbox.join("d")).unwrap();
    assert_eq!(place(&st.join("a.txt"), &inbox, "a.txt").unwrap(), "a (2).txt");
    assert_eq!(place(&st.join("d"), &inbox, "d").unwrap(), "d (1)");
    assert_eq!(std::fs::read(inbox.join("a.txt")).unwrap(), b"old");
    assert_eq!(std::fs::read(inbox.join("a (1).txt")).unwrap(), b"old1");
    assert_eq!(std::fs::read(inbox.join("a (2).txt")).unwrap(), b"new");
    assert_eq!(std::fs::read(inbox.join("d (1)/x")).unwrap(), b"x");
    assert!(std::fs::read_dir(inbox.join("d")).unwrap().next().is_none(), "the old folder is untouched");
}

#[test]
fn offers_are_checked() {
    assert!(check_offer(&[file("a/b", b"x"), file("c", b"")], &[RelPath::new("a").unwrap()]).is_ok());
    assert!(check_offer(&[], &[]).unwrap_err().contains("empty"));
    assert!(check_offer(&[file("a", b"x"), file("a", b"y")], &[]).unwrap_err().contains("twice"));
    assert!(check_offer(&[file("a", b"x"), file("a/b", b"y")], &[]).unwrap_err().contains("both"));
    assert!(check_offer(&[file("a", b"x")], &[RelPath::new("a").unwrap()]).unwrap_err().contains("both"));
    let mut bad = file("a", b"xyz");
    bad.size = 4;
    assert!(check_offer(&[bad], &[]).unwrap_err().contains("add up"));
    let mut zero = file("a", b"xyz");
    zero.chunks.push(ChunkInfo { hash: ChunkHash::of(b""), len: 0 });
    assert!(check_offer(&[zero], &[]).is_err());
    let mut huge = file("a", b"");
    huge.size = MAX_SEND_BYTES + 1;
    huge.chunks = vec![ChunkInfo { hash: ChunkHash::of(b""), len: MAX_BLOCK }; 1];
    assert!(check_offer(&[huge], &[]).is_err());
    let many: Vec<SendFile> = (0..=MAX_SEND_FILES).map(|i| file(&format!("f{i}"), b"")).collect();
    assert!(check_offer(&many, &[]).unwrap_err().contains("more than"));
}

#[test]
fn hostile_names_cannot_be_decoded() {
    // Names travel as RelPath: decoding refuses traversal, absolute paths and Ferry's own.
    for bad in ["../x", "/etc/passwd", ".ferry/x", "a/../../b", ".ferry-tmp-x"] {
        assert!(serde_json::from_str::<RelPath>(&format!("{bad:?}")).is_err(), "{bad}");
    }
}

#[test]
fn collect_walks_folders_and_refuses_links() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("top");
    std::fs::create_dir_all(top.join("sub/empty")).unwrap();
    std::fs::write(top.join("sub/a"), b"a").unwrap();
    std::fs::write(top.join("b"), b"b").unwrap();
    let (mut files, mut dirs) = (vec![], vec![]);
    collect(&top, &mut files, &mut dirs).unwrap();
    let f: Vec<&str> = files.iter().map(|(r, _)| r.as_str()).collect();
    let d: Vec<&str> = dirs.iter().map(|r| r.as_str()).collect();
    assert_eq!(f, ["top/b", "top/sub/a"]);
    assert_eq!(d, ["top", "top/sub", "top/sub/empty"]);
    std::os::unix::fs::symlink("b", top.join("link")).unwrap();
    let e = collect(&top, &mut vec![], &mut vec![]).unwrap_err();
    assert!(e.contains("symbolic link"), "{e}");
}
