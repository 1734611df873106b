//! What the rest of the node holds of KDE Connect: its state (on or off and why), the links to
//! connected KDE Connect devices (each a handle to the task that owns its socket) and the devices
//! heard on the network. A leaf like `share_handle`: the tasks themselves live in `kdeconnect/`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use ferry_kdeconnect::{Identity, LocalIdentity, Packet};
use ferry_proto::DeviceId;
use tokio::sync::{mpsc, watch};

use crate::api::PairOutcomeDto;

/// Packets queued for one link's writer: a few notes and offers; a full queue means the device
/// stopped reading, and the sender gets an error instead of growing memory.
pub(crate) const LINK_QUEUE: usize = 64;
/// Connection requests waiting for the dialer (`ferry pair NAME` toward a device not linked):
/// people ask one at a time; a full queue refuses the extra request.
pub(crate) const DIAL_QUEUE: usize = 16;
/// An announcement from a device linked for less than this is not a reason to connect again:
/// both sides hear each other's announcements at start and connect at once.
pub(crate) const RELINK_AFTER: std::time::Duration = std::time::Duration::from_secs(2);
/// Devices heard on the network kept at once (oldest dropped first): a LAN has a handful.
pub(crate) const MAX_NEARBY: usize = 64;

/// A connected KDE Connect device.
#[derive(Clone)]
pub(crate) struct KdeLink {
    /// Packets to write, in order (the link's writer task owns the socket's write half).
    pub tx: mpsc::Sender<Packet>,
    pub identity: Identity,
    /// Its certificate (DER), as presented on this connection.
    pub cert: Arc<Vec<u8>>,
    pub remote: SocketAddr,
    /// The protocol version both sides speak on this link (7 or 8).
    pub version: u32,
    /// Tells this connection from a later one to the same device (a new one replaces it).
    pub serial: u64,
    /// When it was made: an announcement right after is the other side of a simultaneous
    /// connect, not a device that came back.
    pub since: Instant,
    /// Ends the link's tasks (it was replaced by a newer connection, or the device removed).
    pub close: Arc<tokio::sync::Notify>,
}

/// A device heard by UDP discovery.
#[derive(Clone)]
pub(crate) struct KdeNearby {
    pub identity: Identity,
    /// Its TCP listener.
    pub addr: SocketAddr,
    pub seen: Instant,
}

/// A pairing request this device sent, waiting for the answer.
pub(crate) struct OutgoingPair {
    pub outcome: watch::Sender<Option<PairOutcomeDto>>,
    /// The certificate of the connection the request went to: its key is the one both screens
    /// show, so only that connection's answer counts.
    pub cert: Arc<Vec<u8>>,
}

#[derive(Default)]
pub(crate) struct Kde {
    /// Set once KDE Connect runs (never when it is off).
    pub local: OnceLock<Arc<LocalIdentity>>,
    /// Why it is not running, when it is not.
    pub off_reason: Mutex<Option<String>>,
    /// The TCP port it listens on, when running.
    pub port: Mutex<Option<u16>>,
    pub links: Mutex<HashMap<DeviceId, KdeLink>>,
    pub nearby: Mutex<HashMap<DeviceId, KdeNearby>>,
    /// Devices being connected to right now (never twice at once).
    pub connecting: Mutex<std::collections::HashSet<DeviceId>>,
    pub outgoing_pairs: Mutex<HashMap<DeviceId, OutgoingPair>>,
    /// Pairing requests from devices waiting for the user, by device: the prompt id.
    pub incoming_pairs: Mutex<HashMap<DeviceId, u64>>,
    /// Paired devices that came back with another certificate or an older protocol: refused,
    /// and why (shown in `ferry devices`).
    pub refused: Mutex<HashMap<DeviceId, String>>,
    pub next_serial: AtomicU64,
    /// Asks the dialer (`kdeconnect/`) to connect to a nearby device.
    pub dial: OnceLock<mpsc::Sender<DeviceId>>,
    /// Links of unpaired devices open now (at most `limits::MAX_UNPAIRED_CONNECTIONS`).
    pub unpaired_links: AtomicUsize,
    /// Incoming files fetched whole into staging, waiting for the user's answer or placement.
    pub downloaded: Mutex<std::collections::HashSet<ferry_proto::TransferId>>,
}

impl Kde {
    pub fn link(&self, id: &DeviceId) -> Option<KdeLink> {
        self.links.lock().unwrap().get(id).cloned()
    }

    pub fn running(&self) -> bool {
        self.local.get().is_some()
    }
}
