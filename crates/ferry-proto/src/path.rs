//! Share-relative paths that are safe to join onto a share root.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Ferry's own folder inside every share (versions, state). Never synced, never written by peers.
pub const FERRY_DIR: &str = ".ferry";
/// Prefix of temp files written beside their target; the scanner skips them and peers may not
/// name them.
pub const TEMP_PREFIX: &str = ".ferry-tmp-";

/// Longest path we accept, in bytes (Linux PATH_MAX).
const MAX_PATH: usize = 4096;
/// Longest component, in bytes (NAME_MAX on common file systems).
const MAX_COMPONENT: usize = 255;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("empty path")]
    Empty,
    #[error("path too long ({0} bytes)")]
    TooLong(usize),
    #[error("absolute path {0:?}")]
    Absolute(String),
    #[error("path {0:?} has a '.', '..' or empty component")]
    Traversal(String),
    #[error("path {0:?} contains a NUL byte")]
    Nul(String),
    #[error("path {0:?} is reserved for Ferry")]
    Reserved(String),
    #[error("path {0:?} is not valid UTF-8")]
    NotUtf8(String),
    #[error("path {0:?} is not inside the share")]
    Outside(String),
}

/// A family of systems, for the names each can hold (see [`RelPath::problem_on`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    /// Linux, macOS, the BSDs: any byte but `/` and NUL in a name.
    Unix,
    /// Windows: no `\ : * ? " < > |` or control characters, no name ending in a dot or a space,
    /// no device names (`CON`, `NUL`, `COM1`, ...).
    Windows,
}

impl System {
    /// The system this build runs on.
    pub const HERE: System = if cfg!(windows) { System::Windows } else { System::Unix };
}

/// Why a system cannot hold a (valid) [`RelPath`]. The messages are shown to people, in
/// `ferry status` and the app, as the reason an item cannot be synced.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameProblem {
    #[error("the name contains {}, which this system does not allow in file names", shown(*.0))]
    Char(char),
    #[error("the name ends with a dot or a space, which this system does not allow")]
    TrailingDotOrSpace,
    #[error("{0:?} is a device name on this system and cannot name a file")]
    DeviceName(String),
}

/// A character as a person reads it in a message.
fn shown(c: char) -> String {
    if c.is_control() { format!("a control character ({})", c.escape_unicode()) } else { format!("'{c}'") }
}

/// Characters Windows refuses in a name (besides control characters); `\` and `:` would also
/// change what the path means there (a separator, a drive or a stream), which is why a path
/// with them must never be joined onto a root on Windows.
const WINDOWS_FORBIDDEN: &[char] = &['\\', ':', '*', '?', '"', '<', '>', '|'];
/// Names Windows keeps for devices, with or without an extension (`CON.txt` too).
const WINDOWS_DEVICES: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "LPT1", "LPT2",
    "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// A validated, `/`-separated path relative to a share root.
///
/// Invariants (checked by [`RelPath::new`], which deserialization also goes through): not
/// empty, not absolute, no `.`/`..`/empty components, no NUL, not under [`FERRY_DIR`], no
/// component starting with [`TEMP_PREFIX`], within length limits. So on a Unix system
/// `root.join(rel)` always stays under `root` lexically; symlinks on the way are the
/// writer's to check.
///
/// The rule is the same on every device (a record decodes alike everywhere, so one device
/// cannot refuse a whole index message another sent in good faith). Names that some systems
/// cannot hold (a backslash or a `:` on Windows) are valid here: whether *this* device can
/// hold one is [`RelPath::problem_on`]'s answer, asked before anything is written, and such a
/// path is then reported as an item that cannot be synced, never joined onto a root.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RelPath(String);

impl RelPath {
    pub fn new(s: impl Into<String>) -> Result<Self, PathError> {
        let s: String = s.into();
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        if s.len() > MAX_PATH {
            return Err(PathError::TooLong(s.len()));
        }
        if s.contains('\0') {
            return Err(PathError::Nul(s));
        }
        if s.starts_with('/') {
            return Err(PathError::Absolute(s));
        }
        for (i, comp) in s.split('/').enumerate() {
            if comp.is_empty() || comp == "." || comp == ".." {
                return Err(PathError::Traversal(s));
            }
            if comp.len() > MAX_COMPONENT {
                return Err(PathError::TooLong(comp.len()));
            }
            if (i == 0 && comp == FERRY_DIR) || comp.starts_with(TEMP_PREFIX) {
                return Err(PathError::Reserved(s));
            }
        }
        Ok(RelPath(s))
    }

    /// Why `system` cannot hold this path, if it cannot (the first problem found). Every
    /// valid path can be held on [`System::Unix`].
    pub fn problem_on(&self, system: System) -> Option<NameProblem> {
        if system == System::Unix {
            return None;
        }
        for comp in self.0.split('/') {
            if let Some(c) = comp.chars().find(|c| WINDOWS_FORBIDDEN.contains(c) || c.is_ascii_control()) {
                return Some(NameProblem::Char(c));
            }
            if comp.ends_with('.') || comp.ends_with(' ') {
                return Some(NameProblem::TrailingDotOrSpace);
            }
            let stem = comp.split('.').next().unwrap_or(comp);
            if WINDOWS_DEVICES.iter().any(|d| d.eq_ignore_ascii_case(stem)) {
                return Some(NameProblem::DeviceName(comp.to_string()));
            }
        }
        None
    }

    /// The relative path of `full` under `root`.
    pub fn from_fs(root: &Path, full: &Path) -> Result<Self, PathError> {
        let rel = full.strip_prefix(root).map_err(|_| PathError::Outside(full.display().to_string()))?;
        let s = rel.to_str().ok_or_else(|| PathError::NotUtf8(rel.display().to_string()))?;
        RelPath::new(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `root` joined with this path.
    pub fn to_fs(&self, root: &Path) -> PathBuf {
        root.join(&self.0)
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The parent path, if this is not a top-level entry.
    pub fn parent(&self) -> Option<RelPath> {
        self.0.rfind('/').map(|i| RelPath(self.0[..i].to_string()))
    }

    /// Every proper ancestor, outermost first (`a`, `a/b` for `a/b/c`).
    pub fn ancestors(&self) -> Vec<RelPath> {
        let mut out = Vec::new();
        for (i, c) in self.0.char_indices() {
            if c == '/' {
                out.push(RelPath(self.0[..i].to_string()));
            }
        }
        out
    }

    /// A sibling with another final component (which must itself be valid).
    pub fn with_file_name(&self, name: &str) -> Result<RelPath, PathError> {
        match self.parent() {
            Some(p) => RelPath::new(format!("{}/{}", p.0, name)),
            None => RelPath::new(name),
        }
    }

    /// True when `self` is `other` or lies below it.
    pub fn is_within(&self, other: &RelPath) -> bool {
        self.0 == other.0 || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }
}

impl<'de> Deserialize<'de> for RelPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RelPath::new(s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            ".ferry/versions/x",
            ".ferry",
            "a/.ferry-tmp-x",
            "a\0b",
        ] {
            assert!(RelPath::new(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(RelPath::new("a".repeat(300)).is_err());
    }

    #[test]
    fn ordinary_paths_pass() {
        // A backslash or a colon is an ordinary character on Linux and macOS: such names sync
        // between them (and are refused only where they cannot be held, see `problem_on`).
        for good in ["a", "a/b/c.txt", "dir/.ferry", ".hidden", "x..y", "sp ace/ü", "a\\..\\b", "C:/x", "notes: 1"] {
            assert!(RelPath::new(good).is_ok(), "{good:?} should pass");
        }
    }

    #[test]
    fn names_windows_cannot_hold() {
        let p = |s: &str| RelPath::new(s).unwrap();
        for (path, why) in [
            ("a\\b", NameProblem::Char('\\')),
            ("dir/C:x", NameProblem::Char(':')),
            ("what?", NameProblem::Char('?')),
            ("tab\tname", NameProblem::Char('\t')),
            ("dot./x", NameProblem::TrailingDotOrSpace),
            ("space ", NameProblem::TrailingDotOrSpace),
            ("docs/con.txt", NameProblem::DeviceName("con.txt".into())),
            ("LPT9", NameProblem::DeviceName("LPT9".into())),
        ] {
            assert_eq!(p(path).problem_on(System::Windows), Some(why), "{path:?}");
            assert_eq!(p(path).problem_on(System::Unix), None, "{path:?} is fine on Unix");
        }
        for fine in ["a/b.txt", "console.log", "COM10", ".hidden", "ü/é"] {
            assert_eq!(p(fine).problem_on(System::Windows), None, "{fine:?}");
        }
        assert_eq!(
            NameProblem::Char('\\').to_string(),
            "the name contains '\\', which this system does not allow in file names"
        );
        assert!(NameProblem::Char('\t').to_string().contains("a control character (\\u{9})"));
    }

    #[test]
    fn deserialization_validates() {
        let bytes = postcard::to_allocvec(&"../../etc/passwd").unwrap();
        assert!(postcard::from_bytes::<RelPath>(&bytes).is_err());
    }

    #[test]
    fn path_helpers() {
        let p = RelPath::new("a/b/c.txt").unwrap();
        assert_eq!(p.file_name(), "c.txt");
        assert_eq!(p.parent().unwrap().as_str(), "a/b");
        assert_eq!(p.ancestors().iter().map(|a| a.as_str()).collect::<Vec<_>>(), ["a", "a/b"]);
        assert!(p.is_within(&RelPath::new("a/b").unwrap()));
        assert!(!p.is_within(&RelPath::new("a/bb").unwrap()));
        assert_eq!(p.with_file_name("d").unwrap().as_str(), "a/b/d");
    }

    proptest::proptest! {
        #[test]
        fn valid_paths_stay_under_root(s in "[a-z./]{1,40}") {
            if let Ok(p) = RelPath::new(s) {
                let root = Path::new("/share");
                let joined = p.to_fs(root);
                proptest::prop_assert!(joined.starts_with(root));
                proptest::prop_assert!(joined.components().all(|c| !matches!(c, std::path::Component::ParentDir | std::path::Component::CurDir)));
            }
        }
    }
}
