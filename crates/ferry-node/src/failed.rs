//! Items that cannot be synced: per share, the entries the scanner leaves out (a name that is
//! not UTF-8 or too long, a FIFO, socket or device, a file Ferry may not read) and the peers'
//! changes a pull could not apply here (a name this system cannot hold, a write refused, a full
//! disk, something of another kind in the way), each with a reason a person understands.
//! `ferry status` and the app list them, and a share with any is not in sync (Syncthing's
//! "Failed Items").
//!
//! The share's actor owns its [`FailedItems`] (in its `Runtime`, which status reads): a full
//! scan rebuilds the scan side, a scan of some paths rebuilds it below those paths, and each
//! pull rebuilds the pull side. Transient failures are not items: a file that changed while it
//! was read (read again at its next scan), a version no connected device has (`need` counts
//! it until one connects), a fetch cut short.

use std::collections::BTreeMap;
use std::io;

use ferry_fs::{FsError, SkipReason, Special};
use ferry_proto::{NameProblem, PathError, RelPath};

use crate::api::FailedItemDto;
use crate::error::ShareError;
use crate::fetch::FetchError;

/// Items kept per side (scan, pull) and share; the rest are counted, not listed. A share can
/// hold any number of unsyncable files (a folder of sockets, a tree of bad names), and status
/// is read every few seconds by the app: a hundred names say what is wrong and keep the answer
/// small (a few kilobytes).
pub(crate) const MAX_ITEMS: usize = 100;

/// Why an item cannot be synced. The `Display` text is what people read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FailReason {
    #[error("the name is not valid UTF-8, which Ferry needs to name a file alike on every device; rename it")]
    NotUtf8,
    #[error("the path is too long to sync ({0} bytes; at most 4096 for a path and 255 for a name)")]
    TooLong(usize),
    #[error("the name cannot be synced: {0}")]
    BadName(String),
    /// A name a peer uses that this system cannot hold (see `RelPath::problem_on`).
    #[error("{0}; it stays on the devices that can hold it")]
    NotHere(NameProblem),
    #[error("{}: Ferry does not sync special files (it never opens them)", special_name(*.0))]
    Special(Special),
    #[error("a symbolic link whose target is not valid UTF-8")]
    LinkTargetNotUtf8,
    #[error("permission denied: Ferry may not read it")]
    CannotRead,
    #[error("permission denied: Ferry may not write it here")]
    CannotWrite,
    #[error("no space left on this device")]
    NoSpace,
    #[error("the file system is read-only")]
    ReadOnly,
    /// The name or the whole path is longer than this device's file system takes (the share's
    /// folder is deeper here, or the file system's names are shorter).
    #[error(
        "the path is too long for this device's file system (at most 4096 bytes with the share's folder, 255 for a name); it stays on the devices that can hold it"
    )]
    TooLongHere,
    #[error("a FIFO, socket or device is at this path here, and Ferry does not replace it")]
    SpecialInTheWay,
    #[error("something of another kind is in the way here: {0}")]
    InTheWay(String),
    #[error("the sending device's content does not match its record; refused")]
    BadContent,
    #[error("cannot read it: {0}")]
    ReadFailed(String),
    #[error("could not be written here: {0}")]
    WriteFailed(String),
}

fn special_name(s: Special) -> &'static str {
    match s {
        Special::Fifo => "a FIFO (named pipe)",
        Special::Socket => "a socket",
        Special::BlockDevice => "a block device",
        Special::CharDevice => "a character device",
    }
}

/// The reason the scanner left an entry out, if that makes it an item that cannot be synced.
pub(crate) fn of_skip(reason: &SkipReason) -> Option<FailReason> {
    Some(match reason {
        SkipReason::NotUtf8 => FailReason::NotUtf8,
        SkipReason::BadPath(PathError::TooLong(n)) => FailReason::TooLong(*n),
        SkipReason::BadPath(e) => FailReason::BadName(e.to_string()),
        SkipReason::Special(s) => FailReason::Special(*s),
        SkipReason::LinkTargetNotUtf8 => FailReason::LinkTargetNotUtf8,
        SkipReason::Unreadable(e) => match io_kind(e) {
            Some(io::ErrorKind::PermissionDenied) => FailReason::CannotRead,
            _ => FailReason::ReadFailed(e.to_string()),
        },
        SkipReason::Changed => return None,
    })
}

/// The reason a pull could not apply a path, if that makes it an item that cannot be synced
/// (rather than one waiting for a device or a rescan).
pub(crate) fn of_pull(e: &ShareError) -> Option<FailReason> {
    let by_kind = |kind: Option<io::ErrorKind>, detail: String| match kind {
        Some(io::ErrorKind::PermissionDenied) => FailReason::CannotWrite,
        Some(io::ErrorKind::StorageFull) => FailReason::NoSpace,
        Some(io::ErrorKind::ReadOnlyFilesystem) => FailReason::ReadOnly,
        // ENAMETOOLONG (the kind std gives it).
        Some(io::ErrorKind::InvalidFilename) => FailReason::TooLongHere,
        _ => FailReason::WriteFailed(detail),
    };
    Some(match e {
        ShareError::ChangedHere | ShareError::NoSource => return None,
        ShareError::Fetch(FetchError::Unavailable(_)) => return None,
        ShareError::Fs(FsError::WrongKind { found: "other", .. }) => FailReason::SpecialInTheWay,
        ShareError::Fs(e @ (FsError::WrongKind { .. } | FsError::UnsafePath { .. } | FsError::NotEmpty(_))) => {
            FailReason::InTheWay(e.to_string())
        }
        ShareError::Fs(FsError::BadPath { source: PathError::TooLong(n), .. }) => FailReason::TooLong(*n),
        ShareError::Fs(e) => by_kind(io_kind(e), e.to_string()),
        ShareError::Io(e) | ShareError::Write { source: e, .. } => by_kind(Some(e.kind()), e.to_string()),
        ShareError::WholeHashMismatch { .. } | ShareError::Fetch(FetchError::Failed(_)) => FailReason::BadContent,
        other => FailReason::WriteFailed(other.to_string()),
    })
}

fn io_kind(e: &FsError) -> Option<io::ErrorKind> {
    match e {
        FsError::Io { source, .. } => Some(source.kind()),
        _ => None,
    }
}

/// One side's items: at most [`MAX_ITEMS`] by path, and how many more there are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Side {
    items: BTreeMap<String, FailReason>,
    more: u64,
}

impl Side {
    fn add(&mut self, path: String, reason: FailReason) {
        if self.items.len() < MAX_ITEMS || self.items.contains_key(&path) {
            self.items.insert(path, reason);
        } else {
            self.more += 1;
        }
    }

    fn replace(&mut self, found: impl IntoIterator<Item = (String, FailReason)>) {
        *self = Side::default();
        for (path, reason) in found {
            self.add(path, reason);
        }
    }
}

/// A share's items that cannot be synced (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FailedItems {
    scan: Side,
    pull: Side,
}

impl FailedItems {
    /// After a full scan: what it left out is the scan side.
    pub fn after_full_scan(&mut self, found: impl IntoIterator<Item = (String, FailReason)>) {
        self.scan.replace(found);
    }

    /// After a scan of `scopes` (and everything below them): their items are what it found;
    /// items elsewhere stay. (The count of unlisted items is exact again after a full scan: a
    /// scan of some paths cannot tell which of them it covered.)
    pub fn after_path_scan(&mut self, scopes: &[RelPath], found: impl IntoIterator<Item = (String, FailReason)>) {
        self.scan.items.retain(|path, _| !scopes.iter().any(|s| within(path, s.as_str())));
        for (path, reason) in found {
            self.scan.add(path, reason);
        }
    }

    /// After a pull: what it could not apply is the pull side.
    pub fn after_pull(&mut self, found: impl IntoIterator<Item = (String, FailReason)>) {
        self.pull.replace(found);
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// All items, listed or not.
    pub fn count(&self) -> u64 {
        (self.scan.items.len() + self.pull.items.len()) as u64 + self.scan.more + self.pull.more
    }

    /// The listed items in path order (a path may fail on both sides, e.g. a FIFO here where a
    /// peer has a file: both reasons are listed), and the number not listed.
    pub fn list(&self) -> (Vec<FailedItemDto>, u64) {
        let mut all: Vec<FailedItemDto> = self
            .scan
            .items
            .iter()
            .chain(&self.pull.items)
            .map(|(path, reason)| FailedItemDto { path: path.clone(), reason: reason.to_string() })
            .collect();
        all.sort_by(|a, b| a.path.cmp(&b.path));
        (all, self.scan.more + self.pull.more)
    }

    /// The items of `self` that `before` did not have (same path and reason): what a person
    /// has not been told about yet.
    pub fn new_since(&self, before: &FailedItems) -> Vec<FailedItemDto> {
        let had = |side: &Side, path: &String, reason: &FailReason| side.items.get(path) == Some(reason);
        let scan = self.scan.items.iter().filter(|(p, r)| !had(&before.scan, p, r));
        let pull = self.pull.items.iter().filter(|(p, r)| !had(&before.pull, p, r));
        scan.chain(pull)
            .map(|(path, reason)| FailedItemDto { path: path.clone(), reason: reason.to_string() })
            .collect()
    }
}

/// True when the shown path `path` is `scope` or lies below it.
fn within(path: &str, scope: &str) -> bool {
    path.strip_prefix(scope).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(p: &str, r: FailReason) -> (String, FailReason) {
        (p.to_string(), r)
    }

    #[test]
    fn scans_and_pulls_rebuild_their_side() {
        let mut f = FailedItems::default();
        f.after_full_scan([item("a/pipe", FailReason::Special(Special::Fifo)), item("b\u{fffd}", FailReason::NotUtf8)]);
        f.after_pull([item("x", FailReason::NoSpace)]);
        assert_eq!(f.count(), 3);
        // A scan of `a` that no longer finds the FIFO drops it; the rest stays.
        f.after_path_scan(&[RelPath::new("a").unwrap()], []);
        let (list, more) = f.list();
        let paths: Vec<&str> = list.iter().map(|i| i.path.as_str()).collect();
        assert_eq!((paths, more), (vec!["b\u{fffd}", "x"], 0));
        // `ab` is not below `a`.
        f.after_full_scan([item("ab", FailReason::CannotRead)]);
        f.after_path_scan(&[RelPath::new("a").unwrap()], []);
        assert_eq!(f.count(), 2);
        f.after_pull([]);
        f.after_full_scan([]);
        assert!(f.is_empty());
    }

    #[test]
    fn the_list_is_bounded_and_counts_the_rest() {
        let mut f = FailedItems::default();
        f.after_full_scan((0..250).map(|i| item(&format!("s{i:03}"), FailReason::Special(Special::Socket))));
        let (list, more) = f.list();
        assert_eq!((list.len(), more), (MAX_ITEMS, 150));
        assert_eq!(f.count(), 250);
        assert!(list[0].reason.contains("a socket"), "{}", list[0].reason);
    }

    #[test]
    fn only_new_items_are_news() {
        let mut f = FailedItems::default();
        f.after_full_scan([item("p", FailReason::Special(Special::Fifo))]);
        let before = f.clone();
        f.after_full_scan([item("p", FailReason::Special(Special::Fifo))]);
        assert!(f.new_since(&before).is_empty(), "the same set again is no news");
        f.after_pull([item("q", FailReason::CannotWrite)]);
        let news = f.new_since(&before);
        assert_eq!(news.len(), 1);
        assert_eq!(news[0].path, "q");
        // A set that only shrinks is no news either.
        let before = f.clone();
        f.after_pull([]);
        assert!(f.new_since(&before).is_empty());
    }

    #[test]
    fn reasons_from_errors() {
        let io = |k: io::ErrorKind| FsError::Io { op: "open", path: "/s/f".into(), source: io::Error::from(k) };
        assert_eq!(of_skip(&SkipReason::Unreadable(io(io::ErrorKind::PermissionDenied))), Some(FailReason::CannotRead));
        assert_eq!(of_skip(&SkipReason::Changed), None, "changed while read: read again, not failed");
        assert_eq!(of_skip(&SkipReason::BadPath(PathError::TooLong(5000))), Some(FailReason::TooLong(5000)));
        assert_eq!(of_pull(&ShareError::NoSource), None, "waiting for a device is not a failure");
        assert_eq!(of_pull(&ShareError::ChangedHere), None);
        assert_eq!(of_pull(&ShareError::Fs(io(io::ErrorKind::PermissionDenied))), Some(FailReason::CannotWrite));
        assert_eq!(of_pull(&ShareError::Io(io::Error::from(io::ErrorKind::StorageFull))), Some(FailReason::NoSpace));
        let too_long = io::Error::from_raw_os_error(libc::ENAMETOOLONG);
        assert_eq!(of_pull(&ShareError::Io(too_long)), Some(FailReason::TooLongHere));
        let fifo = FsError::WrongKind { path: "/s/p".into(), expected: "file, directory or symlink", found: "other" };
        assert_eq!(of_pull(&ShareError::Fs(fifo)), Some(FailReason::SpecialInTheWay));
        assert_eq!(
            FailReason::NotHere(NameProblem::Char('\\')).to_string(),
            "the name contains '\\', which this system does not allow in file names; it stays on the devices that \
             can hold it"
        );
    }
}
