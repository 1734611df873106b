//! What the rest of the node holds of LocalSend: whether it runs (and why not), the devices
//! heard on the network, the one incoming session (LocalSend receives one transfer at a time)
//! and the answers that incoming offers wait for. A leaf like `kde_handle`: the tasks live in
//! `localsend/`.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use ferry_localsend::{Client, DeviceInfo, LocalIdentity};
use ferry_proto::{DeviceId, RelPath, TransferId};
use tokio::sync::oneshot;

use crate::transfers::Reservation;

/// Devices heard on the network kept at once (oldest dropped first): a LAN has a handful, and
/// anyone on it can announce made-up ones.
pub(crate) const MAX_NEARBY: usize = 64;

/// A LocalSend device heard by multicast or by its `register`.
#[derive(Clone)]
pub(crate) struct LsNearby {
    pub info: DeviceInfo,
    /// Its certificate's fingerprint, upper case (as announced until a TLS connection shows it).
    pub fingerprint: String,
    /// Its HTTPS server.
    pub addr: SocketAddr,
    pub seen: Instant,
}

/// One file of the incoming session.
pub(crate) struct InFile {
    pub token: String,
    /// Where it goes, under the staging folder and then the Inbox (checked: no `..`, no
    /// absolute path, no name Ferry reserves).
    pub path: RelPath,
    pub size: u64,
    /// Lower-case hex, when the sender gave one: what arrives must hash to it.
    pub sha256: Option<String>,
    /// Its upload is running now (a second upload of the same file is refused).
    pub busy: bool,
    pub done: bool,
}

/// The incoming session: one at a time, as LocalSend does (a second sender gets 409).
pub(crate) struct InSession {
    pub id: String,
    pub device: DeviceId,
    /// The sender's certificate fingerprint (upper case): every upload and cancel must come on
    /// a connection showing it.
    pub fingerprint: String,
    pub transfer: TransferId,
    /// By the sender's file id.
    pub files: HashMap<String, InFile>,
    /// The user (or auto-accept) said yes: uploads may come.
    pub accepted: bool,
    /// Last upload activity: a session nobody uploads to is ended (`localsend/receive.rs`).
    pub active: Instant,
    /// Bytes received so far over all files (progress).
    pub received: u64,
    /// Room on the Inbox's disk promised to this session, given back when it ends.
    pub _reserved: Reservation,
}

#[derive(Default)]
pub(crate) struct Ls {
    /// Set once LocalSend runs (never when it is off).
    pub local: OnceLock<Arc<LocalIdentity>>,
    pub client: OnceLock<Client>,
    /// Why it is not running, when it is not.
    pub off_reason: Mutex<Option<String>>,
    /// The port its HTTPS server listens on, when running.
    pub port: Mutex<Option<u16>>,
    pub nearby: Mutex<HashMap<DeviceId, LsNearby>>,
    pub session: Mutex<Option<InSession>>,
    /// Offers waiting for the user's answer, by transfer.
    pub answers: Mutex<HashMap<TransferId, oneshot::Sender<bool>>>,
    /// Wrong PINs per address, with the time of the first in the current window.
    pub pin_failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    /// PINs given for sending to a device (`ferry send --pin`), kept while the node runs.
    pub pins: Mutex<HashMap<DeviceId, String>>,
    /// Devices a send or note flush runs for now (one at a time per device).
    pub flushing: Mutex<HashSet<DeviceId>>,
}

impl Ls {
    pub fn running(&self) -> bool {
        self.local.get().is_some()
    }

    pub fn nearby(&self, id: &DeviceId) -> Option<LsNearby> {
        self.nearby.lock().unwrap().get(id).cloned()
    }
}
