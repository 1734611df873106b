//! Pause and resume syncing for the whole node (the tray's Pause/Resume).
//!
//! While paused, share workers neither scan nor pull (watcher paths stay queued, so nothing
//! is forgotten) and the dialer does not call paired devices. Connections that are already up
//! stay up: pairing prompts and notes keep working, and a peer's index is still stored, it is
//! just not applied until resume. The flag survives restarts as a marker file in the home, so
//! a paused node does not start moving files after a reboot.

use std::sync::Arc;

use crate::api::ApiError;
use crate::context::{ApiResult, Context};

/// Marker file in the home: present = syncing paused.
pub const PAUSED_MARKER: &str = "syncing-paused";

/// The persisted flag at start.
pub(crate) fn load(home: &std::path::Path) -> bool {
    home.join(PAUSED_MARKER).exists()
}

impl Context {
    /// True while the user has paused syncing.
    pub fn sync_paused(&self) -> bool {
        *self.sync_paused.borrow()
    }
}

pub(crate) async fn persist(inner: &Arc<Context>, paused: bool) -> ApiResult<()> {
    let path = inner.cfg.home.join(PAUSED_MARKER);
    tokio::task::spawn_blocking(move || {
        let r = if paused {
            std::fs::write(&path, b"syncing paused from the app or `ferry pause`\n")
        } else {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        };
        r.map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))
    })
    .await
    .map_err(ApiError::internal)?
}
