//! The durability model behind [`super::PowerFs`]: a namespace and inodes in memory, file
//! contents in a backing directory, and beside every live state the state a power cut would
//! leave. See the parent module for the rules; this file only carries them out.
//!
//! Backing directory layout: `live/<ino>` holds a regular file's current content,
//! `durable/<ino>` its content as of its last fsync (missing: never synced, empty after a cut).
//! Inode numbers are never reused, so a number names one file for the whole campaign.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use fuser::Errno;

/// The root directory's inode number (FUSE's).
pub const ROOT: u64 = 1;

pub type Res<T> = Result<T, Errno>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink(OsString),
    /// A socket or FIFO (mknod): a name only, like a symlink (the control socket of a home on
    /// the mount is one).
    Special(fuser::FileType),
}

/// What `stat` shows besides kind, size and links.
#[derive(Clone, Debug)]
pub struct Meta {
    pub perm: u16,
    pub mtime: SystemTime,
    pub atime: SystemTime,
    pub ctime: SystemTime,
}

impl Meta {
    fn new(perm: u16) -> Meta {
        let now = SystemTime::now();
        Meta { perm, mtime: now, atime: now, ctime: now }
    }
}

/// One inode: its live state and the state that survives a cut.
struct Node {
    kind: Kind,
    meta: Meta,
    /// Live directory entries (directories only).
    entries: BTreeMap<OsString, u64>,
    /// Live links to a file (kept by the operations, recounted at a cut).
    nlink: u32,
    /// Written or truncated since its content was last made durable.
    dirty: bool,
    durable_meta: Meta,
    durable_entries: BTreeMap<OsString, u64>,
}

/// A snapshot of one inode for `stat`.
#[derive(Clone, Debug)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    pub nlink: u32,
    pub meta: Meta,
}

/// Counts a campaign reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub file_syncs: u64,
    pub dir_syncs: u64,
    pub cuts: u64,
    /// Writes and namespace changes dropped by the cuts (operations since the last barrier that
    /// covered them are not counted one by one: this counts inodes that lost something).
    pub inodes_rolled_back: u64,
}

pub struct Model {
    dir: PathBuf,
    nodes: HashMap<u64, Node>,
    next: u64,
    frozen: bool,
    open_files: HashMap<u64, File>,
    pub stats: Stats,
}

/// The backing directory's error, as the kernel should see it (EIO when it carries no number).
fn err(e: io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

impl Model {
    /// A model over an empty backing directory `dir` (created), holding an empty, durable root.
    pub fn new(dir: &Path) -> io::Result<Model> {
        fs::create_dir_all(dir.join("live"))?;
        fs::create_dir_all(dir.join("durable"))?;
        let mut nodes = HashMap::new();
        nodes.insert(ROOT, Self::node(Kind::Dir, 0o755));
        Ok(Model {
            dir: dir.into(),
            nodes,
            next: ROOT + 1,
            frozen: false,
            open_files: HashMap::new(),
            stats: Stats::default(),
        })
    }

    fn node(kind: Kind, perm: u16) -> Node {
        let meta = Meta::new(perm);
        Node {
            kind,
            durable_meta: meta.clone(),
            meta,
            entries: BTreeMap::new(),
            nlink: 1,
            dirty: false,
            durable_entries: BTreeMap::new(),
        }
    }

    fn live_path(&self, ino: u64) -> PathBuf {
        self.dir.join("live").join(ino.to_string())
    }

    fn durable_path(&self, ino: u64) -> PathBuf {
        self.dir.join("durable").join(ino.to_string())
    }

    /// Every operation fails with EIO once the power is cut, until [`Model::cut`] rebuilds.
    fn check(&self) -> Res<()> {
        if self.frozen { Err(Errno::EIO) } else { Ok(()) }
    }

    fn get(&self, ino: u64) -> Res<&Node> {
        self.check()?;
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn get_mut(&mut self, ino: u64) -> Res<&mut Node> {
        self.check()?;
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn dir(&self, ino: u64) -> Res<&Node> {
        let n = self.get(ino)?;
        if n.kind == Kind::Dir { Ok(n) } else { Err(Errno::ENOTDIR) }
    }

    pub fn lookup(&self, parent: u64, name: &OsStr) -> Res<u64> {
        self.dir(parent)?.entries.get(name).copied().ok_or(Errno::ENOENT)
    }

    pub fn attr(&self, ino: u64) -> Res<Attr> {
        let n = self.get(ino)?;
        let (size, nlink) = match &n.kind {
            Kind::File => (fs::metadata(self.live_path(ino)).map_err(err)?.len(), n.nlink),
            Kind::Dir => {
                let subdirs = n.entries.values().filter(|c| self.nodes.get(c).is_some_and(|c| c.kind == Kind::Dir));
                (4096, 2 + subdirs.count() as u32)
            }
            Kind::Symlink(t) => (t.len() as u64, n.nlink),
            Kind::Special(_) => (0, n.nlink),
        };
        Ok(Attr { ino, kind: n.kind.clone(), size, nlink, meta: n.meta.clone() })
    }

    /// Entries of a directory, `.` and `..` left to the caller.
    pub fn entries(&self, ino: u64) -> Res<Vec<(OsString, u64, Kind)>> {
        let d = self.dir(ino)?;
        Ok(d.entries.iter().map(|(name, c)| (name.clone(), *c, self.nodes[c].kind.clone())).collect())
    }

    /// Creates a file, directory or symlink named `name` in `parent`.
    pub fn create(&mut self, parent: u64, name: &OsStr, kind: Kind, perm: u16) -> Res<u64> {
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next;
        self.next += 1;
        if kind == Kind::File {
            File::create(self.live_path(ino)).map_err(err)?;
        }
        self.nodes.insert(ino, Self::node(kind, perm));
        let p = self.get_mut(parent)?;
        p.entries.insert(name.into(), ino);
        p.meta.mtime = SystemTime::now();
        Ok(ino)
    }

    /// A hard link: a second name for a file's inode (data shared).
    pub fn link(&mut self, ino: u64, parent: u64, name: &OsStr) -> Res<()> {
        if self.get(ino)?.kind == Kind::Dir {
            return Err(Errno::EPERM);
        }
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        self.get_mut(ino)?.nlink += 1;
        self.get_mut(parent)?.entries.insert(name.into(), ino);
        Ok(())
    }

    /// unlink (`dir == false`) or rmdir (`dir == true`).
    pub fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Res<()> {
        let ino = self.lookup(parent, name)?;
        let n = self.get(ino)?;
        match (dir, n.kind == Kind::Dir) {
            (true, false) => return Err(Errno::ENOTDIR),
            (false, true) => return Err(Errno::EISDIR),
            (true, true) if !n.entries.is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        self.get_mut(parent)?.entries.remove(name);
        let n = self.get_mut(ino)?;
        n.nlink = n.nlink.saturating_sub(1);
        Ok(())
    }

    /// rename(2) with renameat2's NOREPLACE and EXCHANGE.
    pub fn rename(
        &mut self,
        p: u64,
        name: &OsStr,
        np: u64,
        newname: &OsStr,
        noreplace: bool,
        exchange: bool,
    ) -> Res<()> {
        let src = self.lookup(p, name)?;
        let dst = self.dir(np)?.entries.get(newname).copied();
        if exchange {
            let dst = dst.ok_or(Errno::ENOENT)?;
            self.get_mut(p)?.entries.insert(name.into(), dst);
            self.get_mut(np)?.entries.insert(newname.into(), src);
            return Ok(());
        }
        if let Some(dst) = dst {
            if noreplace {
                return Err(Errno::EEXIST);
            }
            if dst == src {
                return Ok(());
            }
            let (s, d) = (self.get(src)?, self.get(dst)?);
            match (s.kind == Kind::Dir, d.kind == Kind::Dir) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !d.entries.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
            let d = self.get_mut(dst)?;
            d.nlink = d.nlink.saturating_sub(1);
        }
        self.get_mut(p)?.entries.remove(name);
        self.get_mut(np)?.entries.insert(newname.into(), src);
        let now = SystemTime::now();
        self.get_mut(p)?.meta.mtime = now;
        self.get_mut(np)?.meta.mtime = now;
        Ok(())
    }

    pub fn readlink(&self, ino: u64) -> Res<OsString> {
        match &self.get(ino)?.kind {
            Kind::Symlink(t) => Ok(t.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    fn file(&mut self, ino: u64) -> Res<&File> {
        if self.get(ino)?.kind != Kind::File {
            return Err(Errno::EISDIR);
        }
        if !self.open_files.contains_key(&ino) {
            let f = File::options().read(true).write(true).open(self.live_path(ino)).map_err(err)?;
            self.open_files.insert(ino, f);
        }
        Ok(&self.open_files[&ino])
    }

    pub fn read(&mut self, ino: u64, offset: u64, size: u32) -> Res<Vec<u8>> {
        let f = self.file(ino)?;
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            match f.read_at(&mut buf[got..], offset + got as u64).map_err(err)? {
                0 => break,
                n => got += n,
            }
        }
        buf.truncate(got);
        Ok(buf)
    }

    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Res<u32> {
        self.file(ino)?.write_all_at(data, offset).map_err(err)?;
        let n = self.get_mut(ino)?;
        n.dirty = true;
        n.meta.mtime = SystemTime::now();
        Ok(data.len() as u32)
    }

    pub fn truncate(&mut self, ino: u64, size: u64) -> Res<()> {
        self.file(ino)?.set_len(size).map_err(err)?;
        let n = self.get_mut(ino)?;
        n.dirty = true;
        n.meta.mtime = SystemTime::now();
        Ok(())
    }

    pub fn set_meta(
        &mut self,
        ino: u64,
        perm: Option<u16>,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Res<()> {
        let m = &mut self.get_mut(ino)?.meta;
        if let Some(p) = perm {
            m.perm = p & 0o7777;
        }
        if let Some(t) = atime {
            m.atime = t;
        }
        if let Some(t) = mtime {
            m.mtime = t;
        }
        m.ctime = SystemTime::now();
        Ok(())
    }

    /// fsync / fdatasync of a file, fsync of a directory: the barrier that makes that inode's
    /// content (a file's bytes and size; a directory's entries) durable. `datasync` leaves the
    /// attributes (mode, times) as they were durable before, as fdatasync may.
    pub fn sync(&mut self, ino: u64, datasync: bool) -> Res<()> {
        let kind = self.get(ino)?.kind.clone();
        if kind == Kind::Dir {
            self.sync_dir(ino);
            self.stats.dir_syncs += 1;
            return Ok(());
        }
        if kind == Kind::File && self.get(ino)?.dirty {
            let tmp = self.durable_path(ino).with_extension("tmp");
            fs::copy(self.live_path(ino), &tmp).map_err(err)?;
            fs::rename(&tmp, self.durable_path(ino)).map_err(err)?;
        }
        let n = self.get_mut(ino)?;
        n.dirty = false;
        if !datasync {
            n.durable_meta = n.meta.clone();
        }
        self.stats.file_syncs += 1;
        Ok(())
    }

    /// A directory's live entries become its durable ones. A directory has one parent on every
    /// real file system and a rename is one journal transaction, so a directory moved into or
    /// out of `d` is moved in the durable state too (its entry leaves the old durable parent,
    /// or joins the new live one): otherwise a cut could leave one directory at two places.
    /// A file has no such rule: strict POSIX, each directory on its own.
    fn sync_dir(&mut self, d: u64) {
        let live = self.nodes[&d].entries.clone();
        let old = std::mem::replace(&mut self.nodes.get_mut(&d).expect("checked").durable_entries, live.clone());
        let node = self.nodes.get_mut(&d).expect("checked");
        node.durable_meta = node.meta.clone();
        let is_dir = |m: &Model, c: &u64| m.nodes.get(c).is_some_and(|n| n.kind == Kind::Dir);
        let moved_in: Vec<u64> = live.values().filter(|c| is_dir(self, c)).copied().collect();
        for c in moved_in {
            for (ino, n) in self.nodes.iter_mut() {
                if *ino != d {
                    n.durable_entries.retain(|_, v| *v != c);
                }
            }
        }
        let live_set: HashSet<u64> = live.values().copied().collect();
        let moved_out: Vec<u64> = old.values().filter(|c| is_dir(self, c) && !live_set.contains(c)).copied().collect();
        for c in moved_out {
            let parent = self
                .nodes
                .iter()
                .find_map(|(p, n)| n.entries.iter().find(|(_, v)| **v == c).map(|(name, _)| (*p, name.clone())));
            if let Some((p, name)) = parent {
                self.nodes.get_mut(&p).expect("live").durable_entries.insert(name, c);
            }
        }
    }

    /// The power is cut: from now on every operation fails with EIO and nothing more becomes
    /// durable. The processes using the file system are to be killed next.
    pub fn freeze(&mut self) {
        self.frozen = true;
    }

    pub fn frozen(&self) -> bool {
        self.frozen
    }

    /// After a [`freeze`](Model::freeze) and once nothing uses the mount: the live state becomes
    /// exactly the durable one. What no durable entry reaches from the root is gone; a reached
    /// file has its last fsynced content (empty if none) and attributes; a reached directory its
    /// last fsynced entries (none if never fsynced).
    pub fn cut(&mut self) -> io::Result<()> {
        self.open_files.clear();
        let mut keep = HashSet::new();
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            keep.insert(ino);
            let kids: Vec<(OsString, u64)> =
                self.nodes[&ino].durable_entries.iter().map(|(k, v)| (k.clone(), *v)).collect();
            for (name, c) in kids {
                if keep.contains(&c) && self.nodes[&c].kind == Kind::Dir {
                    // Cannot happen under sync_dir's rule; never mount a directory twice.
                    self.nodes.get_mut(&ino).expect("kept").durable_entries.remove(&name);
                } else if !keep.contains(&c) {
                    stack.push(c);
                }
            }
        }
        let gone: Vec<u64> = self.nodes.keys().filter(|i| !keep.contains(i)).copied().collect();
        for ino in gone {
            self.nodes.remove(&ino);
            let _ = fs::remove_file(self.live_path(ino));
            let _ = fs::remove_file(self.durable_path(ino));
        }
        let inos: Vec<u64> = self.nodes.keys().copied().collect();
        for ino in &inos {
            let (live, durable) = (self.live_path(*ino), self.durable_path(*ino));
            let n = self.nodes.get_mut(ino).expect("kept");
            let lost = n.dirty || n.entries != n.durable_entries;
            self.stats.inodes_rolled_back += lost as u64;
            n.entries = n.durable_entries.clone();
            n.meta = n.durable_meta.clone();
            n.dirty = false;
            n.nlink = 0;
            if n.kind == Kind::File {
                match fs::copy(&durable, &live) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => drop(File::create(&live)?),
                    Err(e) => return Err(e),
                }
            }
        }
        for ino in &inos {
            let kids: Vec<u64> = self.nodes[ino].entries.values().copied().collect();
            for c in kids {
                self.nodes.get_mut(&c).expect("kept").nlink += 1;
            }
        }
        self.frozen = false;
        self.stats.cuts += 1;
        Ok(())
    }
}
