//! Early writeback of a temp file being filled.
//!
//! With gigabytes of RAM the kernel keeps a freshly written file's pages dirty until the final
//! fsync (writeback only starts at `dirty_background_ratio` of memory or after 30 s), so that
//! fsync of a 1 GiB file pays for the whole disk write after the transfer is over. Syncing the
//! written part every few tens of MiB while the rest is still arriving overlaps disk and network
//! and leaves the final fsync little to do.
//!
//! An early sync that fails fails the transfer: on Linux a later fsync may not report a write
//! error an earlier one already returned, so such an error must not be dropped.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinHandle;

/// Bytes written between two early syncs: large enough that the syncs cost nothing for small
/// files (never triggered below it), small enough to keep the disk busy during a transfer.
const WRITEBACK_EVERY: u64 = 32 << 20;

pub(crate) struct Writeback {
    file: Arc<File>,
    since: u64,
    inflight: Option<JoinHandle<()>>,
    failed: Arc<AtomicBool>,
}

impl Writeback {
    pub fn new(file: Arc<File>) -> Self {
        Writeback { file, since: 0, inflight: None, failed: Arc::new(AtomicBool::new(false)) }
    }

    /// Records `n` more bytes written; starts a background `fdatasync` when enough piled up and
    /// none is running.
    pub fn wrote(&mut self, n: u64) {
        self.since += n;
        if self.since < WRITEBACK_EVERY || self.inflight.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        self.since = 0;
        let (file, failed) = (self.file.clone(), self.failed.clone());
        self.inflight = Some(tokio::task::spawn_blocking(move || {
            if let Err(e) = file.sync_data() {
                tracing::warn!("early writeback failed: {e}");
                failed.store(true, Ordering::Relaxed);
            }
        }));
    }

    /// Waits for a running sync; an error if any failed.
    pub async fn finish(mut self) -> Result<(), String> {
        if let Some(h) = self.inflight.take() {
            let _ = h.await;
        }
        if self.failed.load(Ordering::Relaxed) {
            return Err("writing to disk failed (fdatasync)".into());
        }
        Ok(())
    }
}
