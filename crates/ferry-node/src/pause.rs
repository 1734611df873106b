//! Pause and resume syncing for the whole node (the tray's Pause/Resume).
//!
//! While paused, share workers neither scan nor pull (watcher paths stay queued, so nothing
//! is forgotten) and the dialer does not call paired devices. Connections that are already up
//! stay up: pairing prompts and notes keep working, and a peer's index is still stored, it is
//! just not applied until resume. The flag survives restarts as a marker file in the home, so
//! a paused node does not start moving files after a reboot.

use std::sync::Arc;

use crate::api::ApiError;
use crate::events::Event;
use crate::node::{ApiResult, Inner, Node};

/// Marker file in the home: present = syncing paused.
pub const PAUSED_MARKER: &str = "syncing-paused";

/// The persisted flag at start.
pub(crate) fn load(home: &std::path::Path) -> bool {
    home.join(PAUSED_MARKER).exists()
}

impl Inner {
    /// True while the user has paused syncing.
    pub fn sync_paused(&self) -> bool {
        *self.sync_paused.borrow()
    }
}

impl Node {
    /// Pauses (`true`) or resumes (`false`) syncing; persisted; emits `SyncPaused` on a change.
    pub async fn set_paused(&self, paused: bool) -> ApiResult<bool> {
        let inner = self.inner.clone();
        persist(&inner, paused).await?;
        let changed = inner.sync_paused.send_if_modified(|p| std::mem::replace(p, paused) != paused);
        if changed {
            tracing::info!(paused, "syncing {}", if paused { "paused" } else { "resumed" });
            // Wake every worker: on pause so its state shows `paused` at once, on resume so it
            // rescans what changed meanwhile and pulls what peers announced.
            for h in inner.shares.lock().unwrap().values() {
                h.request_full_scan();
            }
            if !paused {
                inner.dial_wake.notify_one();
            }
            inner.emit(Event::SyncPaused { paused });
        }
        Ok(paused)
    }

    pub fn paused(&self) -> bool {
        self.inner.sync_paused()
    }
}

async fn persist(inner: &Arc<Inner>, paused: bool) -> ApiResult<()> {
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
