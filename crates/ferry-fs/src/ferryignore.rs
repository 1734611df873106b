//! `.ferryignore`: a share's ignore patterns (gitignore syntax). The scanner consults them so
//! that ignored paths are neither reported nor deleted.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ferry_proto::RelPath;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::error::FsError;

/// Name of the ignore file at the share root (gitignore syntax).
pub const IGNORE_FILE: &str = ".ferryignore";

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

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
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
