//! Target `relpath`: a path string as a peer sends it (in an index record, a block request, a
//! send offer), through [`RelPath::new`] and the two decoders that reach it (postcard on the
//! wire, JSON in the control API), and the conflict-copy name built from it
//! ([`ferry_fs::conflict_name`], which adds a device's id and a time to a peer's name).
//!
//! Asserts on every accepted path ([`assert_safe`]): not empty, not absolute, no `.`, `..` or
//! empty component, no NUL, not under `.ferry`, no temp-file name, within the length limits,
//! joins under the share root with only normal components; the decoders accept exactly what
//! `new` accepts; the path helpers give valid paths; a conflict name is a valid path in the
//! same folder, and not the original when there is room for one. A backslash or a `:` is
//! accepted (Linux and macOS hold such names), and then [`RelPath::problem_on`] says Windows
//! cannot hold the path (there `\` is a separator and `C:` a drive, so joining it onto a
//! root would leave it); no valid path is refused on Unix.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use ferry_proto::{DeviceId, FERRY_DIR, RelPath, System, TEMP_PREFIX};

/// Linux PATH_MAX and NAME_MAX: what `RelPath` promises to stay within.
const PATH_MAX: usize = 4096;
const NAME_MAX: usize = 255;
/// More than a conflict name's added middle (`.sync-conflict-YYYYMMDD-HHMMSS-XXXXXXX`, 38
/// bytes); with this much room left in the path a distinct conflict name must fit.
const CONFLICT_ROOM: usize = 64;

pub fn check(data: &[u8]) {
    let root = Path::new("/share");
    let Ok(s) = std::str::from_utf8(data) else {
        // A name that is not UTF-8 never becomes a RelPath.
        assert!(RelPath::from_fs(root, &root.join(OsStr::from_bytes(data))).is_err());
        return;
    };
    let parsed = RelPath::new(s);
    let wire = postcard::to_allocvec(s).expect("a string encodes");
    assert_eq!(
        postcard::from_bytes::<RelPath>(&wire).ok().as_ref(),
        parsed.as_ref().ok(),
        "postcard disagrees with new"
    );
    let json = serde_json::to_vec(s).expect("a string encodes");
    assert_eq!(serde_json::from_slice::<RelPath>(&json).ok().as_ref(), parsed.as_ref().ok(), "JSON disagrees with new");
    // What the scanner builds from a name on disk is as safe.
    if let Ok(p) = RelPath::from_fs(root, &root.join(s)) {
        assert_safe(&p);
    }
    let Ok(p) = parsed else { return };
    assert_eq!(p.as_str(), s);
    assert_safe(&p);
    helpers(&p);
    conflict_copy(&p, data);
}

/// Every invariant [`RelPath`] documents, checked on `p` from the outside.
pub fn assert_safe(p: &RelPath) {
    let s = p.as_str();
    assert!(!s.is_empty() && s.len() <= PATH_MAX, "{s:?}: length");
    assert!(!s.starts_with('/') && !s.contains('\0'), "{s:?}: absolute or NUL");
    // Names only some systems can hold: every valid path on Unix; on Windows never one whose
    // backslash or colon would change what it means there.
    assert_eq!(p.problem_on(System::Unix), None, "{s:?}: refused on Unix");
    if s.contains(['\\', ':']) {
        assert!(p.problem_on(System::Windows).is_some(), "{s:?}: Windows would read a separator or a drive");
    }
    for (i, comp) in s.split('/').enumerate() {
        assert!(!comp.is_empty() && comp != "." && comp != "..", "{s:?}: traversal");
        assert!(comp.len() <= NAME_MAX, "{s:?}: component too long");
        assert!(!(i == 0 && comp == FERRY_DIR) && !comp.starts_with(TEMP_PREFIX), "{s:?}: reserved");
    }
    let root = Path::new("/share");
    let joined = p.to_fs(root);
    assert!(joined.starts_with(root), "{s:?} leaves the root");
    assert!(joined.strip_prefix(root).is_ok_and(|r| r.components().all(|c| matches!(c, Component::Normal(_)))));
    assert_eq!(RelPath::new(s).as_ref(), Ok(p), "{s:?}: not what new gives");
}

fn helpers(p: &RelPath) {
    assert_eq!(p.with_file_name(p.file_name()).as_ref(), Ok(p));
    let ancestors = p.ancestors();
    assert_eq!(ancestors.last(), p.parent().as_ref());
    for a in &ancestors {
        assert_safe(a);
        assert!(p.is_within(a) && !a.is_within(p));
    }
    assert!(p.is_within(p));
}

fn conflict_copy(p: &RelPath, data: &[u8]) {
    // A time and a device from the input's bytes (FNV-1a), any second in 1970..=9999.
    let h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    let when = time::OffsetDateTime::from_unix_timestamp((h % 253_402_300_799) as i64).expect("in range");
    let device = DeviceId([h as u8; 32]);
    let c = ferry_fs::conflict_name(p, when, &device);
    assert_safe(&c);
    assert_eq!(c.parent(), p.parent(), "{c} is not beside {p}");
    let parent_len = p.parent().map_or(0, |d| d.as_str().len() + 1);
    if PATH_MAX - parent_len >= CONFLICT_ROOM {
        assert_ne!(&c, p, "the conflict copy would take the file's own name");
    }
}
