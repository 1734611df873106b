//! What the node keeps in memory about one-shot sends while it runs: live progress and rate
//! per transfer, the receives running now, the per-device delivery lock and the sender's cache
//! of what it offered. A leaf (the context holds it); the send protocol itself is `send`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_proto::{DeviceId, TransferId};
use ferry_store::TransferRecord;

/// Progress events and progress updates to the sender: about four a second.
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Window over which the transfer rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(3);

/// What the node keeps in memory about sends: live progress, running receive tasks, the
/// per-device delivery lock and the sender's cache of what it offered.
#[derive(Default)]
pub(crate) struct Sends {
    pub(crate) live: Mutex<HashMap<TransferId, Live>>,
    pub(crate) receiving: Mutex<HashSet<TransferId>>,
    pub(crate) flush: Mutex<HashMap<DeviceId, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) offered: Mutex<HashMap<TransferId, Arc<TransferRecord>>>,
    /// Bytes of the Inbox's disk promised to files from KDE Connect and LocalSend devices being
    /// received now (`foreign::reserve_space`), counted against its free space.
    pub(crate) promised: Arc<std::sync::atomic::AtomicU64>,
}

/// Bytes of the Inbox's disk promised to a file being received (`foreign::reserve_space`),
/// given back when dropped.
pub(crate) struct Reservation(Arc<std::sync::atomic::AtomicU64>, u64);

impl Reservation {
    pub(crate) fn new(promised: Arc<std::sync::atomic::AtomicU64>, bytes: u64) -> Reservation {
        Reservation(promised, bytes)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Live numbers of one transfer in this run of the node.
#[derive(Default)]
pub(crate) struct Live {
    pub done: u64,
    /// Content bytes that crossed the network for this transfer in this run.
    pub wire: u64,
    /// Receiver: bytes found already present (verified) when the transfer last resumed.
    pub resumed: u64,
    pub samples: std::collections::VecDeque<(Instant, u64)>,
    pub last_emit: Option<Instant>,
}

impl Live {
    pub(crate) fn record(&mut self, done: u64) {
        let now = Instant::now();
        self.done = done;
        self.samples.push_back((now, done));
        while self.samples.len() > 2 && self.samples.front().is_some_and(|(t, _)| now - *t > RATE_WINDOW) {
            self.samples.pop_front();
        }
    }

    pub(crate) fn rate(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some((t0, d0)), Some((t1, d1))) if t1 > t0 => (d1.saturating_sub(*d0)) as f64 / (*t1 - *t0).as_secs_f64(),
            _ => 0.0,
        }
    }

    /// True (and the time noted) when a progress event is due.
    pub(crate) fn due(&mut self, last: bool) -> bool {
        let now = Instant::now();
        if last || self.last_emit.is_none_or(|t| now - t >= PROGRESS_EVERY) {
            self.last_emit = Some(now);
            return true;
        }
        false
    }
}

impl Sends {
    pub(crate) fn with_live<T>(&self, id: TransferId, f: impl FnOnce(&mut Live) -> T) -> T {
        f(self.live.lock().unwrap().entry(id).or_default())
    }
}
