//! A share folder that is gone: renamed away, deleted, or on a drive that was unmounted.
//!
//! The marker is the share's own `.ferry` folder, made when the share was created or accepted
//! (it holds the version archive). A folder without it is not the share: an unmounted drive
//! leaves an empty mount point, a deleted folder may be made again empty by a program. Scanning
//! either would find every file gone and send those deletions to every device; applying peers'
//! changes would write them where the share is not. So while the marker is missing the share
//! does neither: its state is `folder-missing` (status says why), it keeps its index as it was,
//! and it looks again every [`MISSING_POLL`]. When the marker is back it resumes by itself: a
//! new watcher (the old one watched a folder that went away), a full scan, a pull.
//!
//! The same check runs inside a scan just before its commit, so a folder that goes away while
//! it is being walked never becomes deletions either.

use super::*;

/// How often a missing share folder is looked for: a drive plugged back in resumes within
/// this long; one `lstat` per period costs nothing.
pub(super) const MISSING_POLL: Duration = Duration::from_secs(1);

/// How often an idle share looks whether its folder is still there: a drive pulled out while
/// nothing changes shows as missing within this long (the watcher may say nothing).
const PRESENT_POLL: Duration = Duration::from_secs(5);

/// Why the share's folder does not count as present (`None` when its marker is there).
pub(crate) fn folder_missing(root: &Path) -> Option<String> {
    match std::fs::symlink_metadata(root.join(FERRY_DIR)) {
        Ok(m) if m.is_dir() => None,
        _ if !root.is_dir() => Some(format!(
            "folder missing: {} is gone (moved, deleted, or its drive unmounted); syncing of this share \
             stops until it is back, and nothing is deleted on other devices",
            root.display()
        )),
        _ => Some(format!(
            "folder missing: {} has no {FERRY_DIR} folder (an unmounted drive's empty mount point, or a \
             new folder in the old one's place); syncing of this share stops until the share's folder is \
             back, and nothing is deleted on other devices",
            root.display()
        )),
    }
}

impl Worker {
    /// Returns once the share's folder is found missing (looked at every [`PRESENT_POLL`]).
    pub(super) async fn folder_gone(&self) {
        loop {
            tokio::time::sleep(PRESENT_POLL).await;
            let root = self.root.clone();
            if tokio::task::spawn_blocking(move || folder_missing(&root).is_some()).await.unwrap_or(false) {
                return;
            }
        }
    }

    /// Checks the share's folder before any work. Returns true while it is missing (after
    /// saying so once per disappearance); on its return, asks for a full scan and a pull and
    /// watches it again.
    pub(super) fn check_folder(&self, missing: &mut bool) -> bool {
        match folder_missing(&self.root) {
            Some(why) => {
                if !*missing {
                    *missing = true;
                    self.report_error(why);
                }
                self.set_state("folder-missing");
                true
            }
            None => {
                if *missing {
                    *missing = false;
                    tracing::info!(share = %self.id, "the share's folder is back: {}", self.root.display());
                    self.runtime.lock().unwrap().last_error = None;
                    let mut p = self.pending.lock().unwrap();
                    p.full = true;
                    p.pull = true;
                    drop(p);
                    *self.watcher.lock().unwrap() =
                        watcher_for(&self.inner, self.id, &self.root, &self.pending, &self.wake);
                }
                false
            }
        }
    }
}
