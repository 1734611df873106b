//! A power-loss file system for tests, after LazyFS (INESC TEC): a FUSE file system (pure-Rust
//! mount through `fuser`, no libfuse) that forwards every operation at once but remembers what a
//! power cut would leave, and on [`PowerFs::cut`] puts exactly that back.
//!
//! # The durability model (strict POSIX, by inode)
//!
//! - A regular file's bytes and size become durable at `fsync` or `fdatasync` of that file
//!   (through any of its names: hard links share one inode, so one content). Its attributes
//!   (mode, times) at `fsync` only. `close` is no barrier.
//! - A directory's entries (create, mkdir, symlink, link, unlink, rmdir, rename in or out)
//!   become durable at `fsync` of that directory, all of them at once, as they are at that
//!   moment. A new file's name is therefore durable only once its directory is fsynced, even if
//!   the file itself was; and a file fsynced but never named durably is gone after a cut.
//! - `syncfs(2)` and `sync(2)` are **no barrier**: the kernel passes neither to a FUSE file system
//!   (virtiofs aside), exactly as with ntfs-3g, gocryptfs, sshfs or rclone mounts. That is the
//!   bug class this file system exists to catch.
//! - After a cut, an inode exists if a chain of durable entries reaches it from the root. A
//!   reached file has its last durable content and attributes: empty and as created if it was
//!   never fsynced (LazyFS's "62 files of 0 bytes at their final names"). A reached directory has
//!   its last durable entries: none if it was never fsynced. Entries never made durable vanish;
//!   entries removed but not made durable come back ("reappear"): a file renamed from one
//!   directory to another whose new directory alone was fsynced is at both names after the cut.
//!
//! One relaxation, because no real file system can do otherwise: a **directory** has a single
//! parent, so a directory moved between two directories is moved in the durable state as soon as
//! either of them is fsynced (a rename is one journal transaction on ext4, xfs and btrfs);
//! without it a cut could leave one directory at two places, which no kernel can mount.
//! Files keep the strict rule.
//!
//! # Using it
//!
//! [`PowerFs::mount`] mounts an empty file system over a backing directory (where the model
//! keeps file contents by inode number, see `model.rs`). A cut is [`PowerFs::freeze`] (from that
//! instant every operation fails with EIO, so nothing more becomes durable, and the processes
//! on the mount are to be killed), then [`PowerFs::cut`] once they are dead: unmount, live state
//! replaced by the durable one, mount again with a fresh kernel cache.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod fs;
pub mod model;
#[cfg(test)]
mod tests;

use model::Model;
pub use model::Stats;

pub struct PowerFs {
    model: Arc<Mutex<Model>>,
    mountpoint: PathBuf,
    session: Option<fuser::BackgroundSession>,
}

/// Whether this machine can mount a FUSE file system here (root and /dev/fuse).
pub fn available() -> bool {
    rustix::process::geteuid().is_root() && Path::new("/dev/fuse").exists()
}

impl PowerFs {
    /// Mounts an empty file system at `mountpoint` (an existing empty directory), keeping its
    /// contents under `backing`.
    pub fn mount(backing: &Path, mountpoint: &Path) -> io::Result<PowerFs> {
        let model = Arc::new(Mutex::new(Model::new(backing)?));
        let mut p = PowerFs { model, mountpoint: mountpoint.into(), session: None };
        p.attach()?;
        Ok(p)
    }

    fn attach(&mut self) -> io::Result<()> {
        let mut config = fuser::Config::default();
        config.mount_options =
            vec![fuser::MountOption::FSName("ferry-powerfs".into()), fuser::MountOption::Subtype("powerfs".into())];
        let session = fuser::spawn_mount(fs::Fuse(self.model.clone()), &self.mountpoint, &config)?;
        self.session = Some(session);
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The instant of the cut: nothing becomes durable after it, every operation fails.
    pub fn freeze(&self) {
        self.lock().freeze();
    }

    /// After [`freeze`](Self::freeze), once no process uses the mount: unmounts, rebuilds the
    /// durable state and mounts it again.
    pub fn cut(&mut self) -> io::Result<()> {
        self.freeze();
        if let Some(s) = self.session.take() {
            s.umount_and_join()?;
        }
        self.lock().cut()?;
        self.attach()
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for PowerFs {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}
