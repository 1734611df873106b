//! Helpers for the messy-disk tests (`tests/tests/messy_*.rs`): a share's status and failed
//! items, file systems the test mounts itself (and always unmounts), and the free space a
//! big-file test needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferry_node::api::ShareStatusDto;

use crate::TestNode;

pub async fn share_status(n: &TestNode, share: &str) -> ShareStatusDto {
    n.node.status().await.unwrap().shares.into_iter().find(|s| s.id == share).expect("the share")
}

/// The share's failed items as path -> reason.
pub async fn failed(n: &TestNode, share: &str) -> BTreeMap<String, String> {
    share_status(n, share).await.failed_items.into_iter().map(|i| (i.path, i.reason)).collect()
}

/// Bytes free for an unprivileged writer on the file system holding `path`.
pub fn free_bytes(path: &Path) -> u64 {
    let st = rustix::fs::statvfs(path).expect("statvfs");
    st.f_bavail * st.f_frsize
}

/// Bytes `path` takes on disk (allocated blocks, not its length).
pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| m.blocks() * 512).unwrap_or(0)
}

/// A file system the test mounted; unmounted (lazily, so a busy mount never hangs the test)
/// when dropped, failing assertion or not. A loop device set up by `mount -o loop` goes with
/// it (autoclear).
pub struct Mount {
    pub dir: PathBuf,
    /// Unmounted already: dropping it must not unmount what was mounted at `dir` since.
    unmounted: bool,
}

impl Mount {
    /// Runs `mount ARGS... DIR`; `Err` says why it could not be mounted (not root, no loop
    /// device, the kernel lacks the file system or the feature).
    pub fn new(args: &[&str], dir: &Path) -> Result<Mount, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount").args(args).arg(dir).output().map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Mount { dir: dir.to_path_buf(), unmounted: false })
    }

    /// A tmpfs of `size` (e.g. "16m") at `dir`.
    pub fn tmpfs(dir: &Path, size: &str) -> Result<Mount, String> {
        Self::new(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"], dir)
    }

    /// Unmounts now; `Err` with the reason when it cannot.
    pub fn unmount(&mut self) -> Result<(), String> {
        let out = Command::new("umount").arg(&self.dir).output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        self.unmounted = true;
        Ok(())
    }

    /// Whether something is mounted at `dir` now.
    pub fn mounted(&self) -> bool {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let dir = self.dir.display().to_string();
        mounts.lines().any(|l| l.split(' ').nth(1) == Some(dir.as_str()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        while !self.unmounted && self.mounted() {
            if Command::new("umount").arg("-l").arg(&self.dir).status().map(|s| !s.success()).unwrap_or(true) {
                eprintln!("could not unmount {}", self.dir.display());
                break;
            }
        }
    }
}
