//! The watched folders of one share: one inotify instance, its watch descriptors and the
//! share-relative folder each stands for, kept right as folders come, go and move.
//!
//! Invariants: only real folders inside the share are watched, each reached from the share's
//! root without a symlink (opened with `RESOLVE_NO_SYMLINKS`, the watch put on that open
//! folder); `.ferry/` and temp folders are never watched; `dirs` and `by_path` describe the
//! same watches (`by_path` finds a moved or deleted folder's subtree by prefix).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ferry_proto::{FERRY_DIR, RelPath, TEMP_PREFIX};
use inotify::{Event, EventMask, Inotify, WatchDescriptor, WatchMask};
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::FsError;
use crate::watch::{Look, classify};

/// What a folder's watch asks for. Not `IN_OPEN`/`IN_ACCESS`/`IN_CLOSE_NOWRITE`: reads change
/// nothing, and the scan's own reads of every file were most of notify's events.
/// `IN_CLOSE_WRITE` reports a finished write, `IN_ATTRIB` an mtime set by `touch`/`utime` or a
/// mode change, `IN_MOVED_TO` a file renamed into place (how most programs save). `IN_MODIFY`
/// is kept although it comes once per `write()`: a writer that keeps its file open for long (a
/// log, a database) would otherwise be seen only by the periodic rescan, and the kernel merges
/// a repeated event still unread, so a big write costs a few events, not one per block. (A
/// write through `mmap` makes no inotify event at all; the periodic rescan covers it.)
/// `IN_EXCL_UNLINK`: a file deleted while open stops reporting. `IN_ONLYDIR`: a watch never
/// lands on a file swapped in for the folder.
const MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::MODIFY)
    .union(WatchMask::ATTRIB)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::EXCL_UNLINK)
    .union(WatchMask::ONLYDIR);

/// What one burst of events asks for.
#[derive(Default)]
pub(super) struct Burst {
    pub(super) rescan: bool,
    /// Events were lost (queue overflow): a folder created then may have no watch. The tree is
    /// watched anew before the full scan.
    pub(super) renew: bool,
    pub(super) paths: BTreeSet<RelPath>,
}

impl Burst {
    fn add(&mut self, rel: &Path) {
        match classify(rel) {
            Look::Path(p) => {
                self.paths.insert(p);
            }
            Look::Everything => self.rescan = true,
            Look::Nothing => {}
        }
    }
}

/// The watch budget is spent (`ENOSPC` from `inotify_add_watch`).
pub(super) struct Limit;

pub(super) struct Tree {
    pub(super) inotify: Inotify,
    root: PathBuf,
    /// Watch descriptor number → the watch and its folder ("" for the root).
    dirs: HashMap<i32, (WatchDescriptor, PathBuf)>,
    by_path: BTreeMap<PathBuf, i32>,
    root_wd: Option<i32>,
    /// `/proc/self/fd` is there: a watch goes on the folder just opened, whatever its path is
    /// by then. Without it the path is watched (`IN_DONT_FOLLOW` guards its last component).
    via_proc: bool,
    /// The kernel has no `openat2` (before 5.6): folders are opened one component at a time.
    no_openat2: bool,
    limit_said: bool,
    /// Every named event read, share-relative (tests check what reaches the watcher at all).
    #[cfg(test)]
    pub(super) seen: Vec<PathBuf>,
}

impl Tree {
    /// Watches every folder of `root`. Fails if the root cannot be watched, or the watch budget
    /// runs out (as notify's recursive watch did: the node says so and relies on its periodic
    /// rescan).
    pub(super) fn new(root: &Path) -> Result<Tree, FsError> {
        let err = |e: io::Error| FsError::Watch { path: root.to_path_buf(), source: e };
        let inotify = Inotify::init().map_err(err)?;
        let mut tree = Tree {
            inotify,
            root: root.to_path_buf(),
            dirs: HashMap::new(),
            by_path: BTreeMap::new(),
            root_wd: None,
            via_proc: Path::new("/proc/self/fd").is_dir(),
            no_openat2: false,
            limit_said: false,
            #[cfg(test)]
            seen: Vec::new(),
        };
        tree.watch_root().map_err(|e| match e {
            Some(e) => err(e),
            None => FsError::WatchLimit { path: root.to_path_buf() },
        })?;
        Ok(tree)
    }

    /// Watches the root and every folder below it; `Err(None)` when the budget runs out.
    fn watch_root(&mut self) -> Result<(), Option<io::Error>> {
        let base = self.open_root().map_err(Some)?;
        let fd = self.open_dir(&base, Path::new("")).map_err(Some)?;
        let wd =
            self.add_watch(&fd, Path::new("")).map_err(|e| (e.raw_os_error() != Some(libc::ENOSPC)).then_some(e))?;
        self.root_wd = Some(wd);
        self.walk(&base, fd, PathBuf::new(), None).map_err(|Limit| None)
    }

    /// The share's root, opened for one walk. Not kept open: an open folder is not deleted
    /// until closed, so its IN_DELETE_SELF (the root is gone: a full scan) would never come.
    fn open_root(&self) -> io::Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        Ok(rustix::fs::open(&self.root, flags, Mode::empty())?)
    }

    /// Drops every watch and watches the tree anew (after events were lost).
    pub(super) fn renew(&mut self) {
        match Inotify::init() {
            // The old instance goes first, so the two never hold watches at once.
            Ok(fresh) => self.inotify = fresh,
            Err(e) => return tracing::warn!(root = %self.root.display(), "cannot watch anew: {e}"),
        }
        self.dirs.clear();
        self.by_path.clear();
        self.root_wd = None;
        tracing::info!(root = %self.root.display(), "events were lost: watching anew, then a full scan");
        if let Err(e) = self.watch_root() {
            match e {
                Some(e) => tracing::warn!(root = %self.root.display(), "cannot watch anew: {e}"),
                None => self.limit_reached(),
            }
        }
    }

    /// Reads what inotify has queued (the fd is non-blocking) into `burst`; false if nothing.
    pub(super) fn read(&mut self, buf: &mut [u8], burst: &mut Burst) -> io::Result<bool> {
        let events = match self.inotify.read_events(buf) {
            Ok(events) => events,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        };
        for ev in events {
            self.take(&ev, burst);
        }
        Ok(true)
    }

    fn take(&mut self, ev: &Event<&OsStr>, burst: &mut Burst) {
        let mask = ev.mask;
        if mask.contains(EventMask::Q_OVERFLOW) {
            burst.rescan = true;
            burst.renew = true;
            return;
        }
        let id = ev.wd.get_watch_descriptor_id();
        if mask.contains(EventMask::IGNORED) {
            self.drop_id(id);
            if self.root_wd == Some(id) {
                // The root is gone (or unmounted): the node's scan finds out what happened.
                self.root_wd = None;
                burst.rescan = true;
            }
            return;
        }
        let Some((_, dir)) = self.dirs.get(&id) else { return };
        if self.root_wd == Some(id) && mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF) {
            burst.rescan = true;
            return;
        }
        // A sub-folder's own DELETE_SELF/MOVE_SELF: its parent's event says it all.
        let Some(name) = ev.name else { return };
        #[cfg(test)]
        self.seen.push(dir.join(name));
        let top = dir.as_os_str().is_empty();
        if (top && name == FERRY_DIR) || name.as_bytes().starts_with(TEMP_PREFIX.as_bytes()) {
            return;
        }
        let rel = dir.join(name);
        if mask.contains(EventMask::ISDIR) {
            if mask.intersects(EventMask::MOVED_FROM | EventMask::DELETE) {
                // Moved away (within the share: its new place is watched anew on MOVED_TO,
                // which always comes after) or deleted.
                self.forget(&rel);
            }
            if mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
                self.watch_new(&rel, burst);
            }
        }
        burst.add(&rel);
    }

    /// Watches a new (or moved-in) folder and all below it, reporting what is already in it:
    /// files may land before the watch does.
    fn watch_new(&mut self, rel: &Path, burst: &mut Burst) {
        // The root gone, or the folder gone or a link by now: nothing to watch.
        let Ok(base) = self.open_root() else { return };
        let Ok(fd) = self.open_dir(&base, rel) else { return };
        let res = match self.add_watch(&fd, rel) {
            Ok(_) => self.walk(&base, fd, rel.to_path_buf(), Some(burst)),
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => Err(Limit),
            Err(_) => Ok(()),
        };
        if res.is_err() {
            self.limit_reached();
            burst.rescan = true;
        }
    }

    fn limit_reached(&mut self) {
        if !std::mem::replace(&mut self.limit_said, true) {
            tracing::warn!(
                root = %self.root.display(),
                "the inotify watch limit is reached (fs.inotify.max_user_watches): some folders are \
                 not watched, their changes are found by the periodic rescan"
            );
        }
    }

    /// Walks the folder open at `fd` (already watched), watching every folder below it and,
    /// with `report`, adding every entry to it. Entry kinds come from `readdir` (`d_type`):
    /// files are never `stat`ed (a 1M-file share has ~1000 folders).
    fn walk(&mut self, base: &OwnedFd, fd: OwnedFd, rel: PathBuf, mut report: Option<&mut Burst>) -> Result<(), Limit> {
        // Folders are opened as they are walked, not when found: a folder with 10k folders in
        // it must not hold 10k descriptors open.
        let mut first = Some(fd);
        let mut stack = vec![rel];
        while let Some(rel) = stack.pop() {
            let fd = match first.take() {
                Some(fd) => fd,
                None => {
                    let Ok(fd) = self.open_dir(base, &rel) else { continue }; // gone or a link by now
                    match self.add_watch(&fd, &rel) {
                        Ok(_) => fd,
                        Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return Err(Limit),
                        Err(_) => continue,
                    }
                }
            };
            let Ok(mut dir) = Dir::new(fd) else { continue };
            while let Some(Ok(entry)) = dir.read() {
                let name = OsStr::from_bytes(entry.file_name().to_bytes());
                if name == "." || name == ".." || name.as_bytes().starts_with(TEMP_PREFIX.as_bytes()) {
                    continue;
                }
                if rel.as_os_str().is_empty() && name == FERRY_DIR {
                    continue;
                }
                // The path is made only when needed: a start's walk passes every file of the
                // share and keeps only folders.
                if let Some(b) = report.as_deref_mut() {
                    b.add(&rel.join(name));
                }
                let kind = match entry.file_type() {
                    FileType::Unknown => {
                        match dir.fd().and_then(|d| rustix::fs::statat(d, name, AtFlags::SYMLINK_NOFOLLOW)) {
                            Ok(st) => FileType::from_raw_mode(st.st_mode),
                            Err(_) => continue,
                        }
                    }
                    kind => kind,
                };
                if kind == FileType::Directory {
                    stack.push(rel.join(name));
                }
            }
        }
        Ok(())
    }

    /// Opens the share's folder `rel` without following any symlink on the way: a link where a
    /// folder was (swapped in since it was listed) is an error, never the folder it points at.
    fn open_dir(&mut self, base: &OwnedFd, rel: &Path) -> io::Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        if !self.no_openat2 {
            match rustix::fs::openat2(base, rel, flags, Mode::empty(), ResolveFlags::NO_SYMLINKS) {
                Err(Errno::NOSYS) | Err(Errno::PERM) => self.no_openat2 = true,
                res => return res.map_err(Into::into),
            }
        }
        let mut fd = rustix::fs::openat(base, ".", flags, Mode::empty())?;
        for part in rel.components().filter(|c| c.as_os_str() != ".") {
            fd = rustix::fs::openat(&fd, part.as_os_str(), flags, Mode::empty())?;
        }
        Ok(fd)
    }

    /// Watches the folder open at `fd`, which is `rel`, and records it.
    fn add_watch(&mut self, fd: &OwnedFd, rel: &Path) -> io::Result<i32> {
        let wd = if self.via_proc {
            // The magic link is followed to exactly the folder opened (so no IN_DONT_FOLLOW).
            self.inotify.watches().add(format!("/proc/self/fd/{}", fd.as_raw_fd()), MASK)?
        } else {
            self.inotify.watches().add(self.root.join(rel), MASK | WatchMask::DONT_FOLLOW)?
        };
        let id = wd.get_watch_descriptor_id();
        if let Some((_, old)) = self.dirs.insert(id, (wd, rel.to_path_buf()))
            && old != rel
            && self.by_path.get(&old) == Some(&id)
        {
            // The same folder, listed at its new place before its move's events are read.
            self.by_path.remove(&old);
        }
        if let Some(prev) = self.by_path.insert(rel.to_path_buf(), id)
            && prev != id
        {
            // Another folder was here: deleted or moved away, its events not read yet (if it
            // moved within the share, its MOVED_TO watches it anew).
            self.unwatch(prev);
        }
        Ok(id)
    }

    /// Stops watching `rel` and every folder below it.
    fn forget(&mut self, rel: &Path) {
        let ids: Vec<i32> = self
            .by_path
            .range(rel.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(rel))
            .map(|(_, id)| *id)
            .collect();
        for id in ids {
            self.unwatch(id);
        }
    }

    fn unwatch(&mut self, id: i32) {
        if let Some((wd, _)) = self.drop_id(id) {
            // Fails if the kernel dropped it already (the folder is gone): nothing to do then.
            let _ = self.inotify.watches().remove(wd);
        }
    }

    /// Forgets the watch `id` (its IN_IGNORED, or before removing it).
    fn drop_id(&mut self, id: i32) -> Option<(WatchDescriptor, PathBuf)> {
        let (wd, path) = self.dirs.remove(&id)?;
        if self.by_path.get(&path) == Some(&id) {
            self.by_path.remove(&path);
        }
        Some((wd, path))
    }

    #[cfg(test)]
    pub(super) fn watched(&self) -> Vec<PathBuf> {
        self.by_path.keys().cloned().collect()
    }
}
