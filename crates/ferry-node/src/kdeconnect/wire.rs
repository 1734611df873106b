//! The leaf of `kdeconnect/`: packet types, ids and the small helpers every part uses.

use std::net::SocketAddr;
use std::time::Instant;

use ferry_kdeconnect::{DeviceType, Identity, LocalIdentity};
use ferry_proto::DeviceId;
use ferry_store::KdeDeviceRecord;

use crate::context::Context;
use crate::kde_handle::{KdeNearby, MAX_NEARBY};

/// Packet types this node handles (others are ignored, as KDE Connect ignores plugins it lacks).
pub(super) const PAIR: &str = "kdeconnect.pair";
pub(super) const PING: &str = "kdeconnect.ping";
pub(super) const SHARE: &str = "kdeconnect.share.request";

/// The id a KDE Connect device has in Ferry.
pub(crate) fn ferry_id(kde_id: &str) -> DeviceId {
    KdeDeviceRecord::ferry_id(kde_id)
}

/// Our identity as announced now (the name can change while the node runs).
pub(crate) fn our_identity(inner: &Context, local: &LocalIdentity) -> Identity {
    let port = *inner.kde.port.lock().unwrap();
    local.identity(&inner.hello().name, DeviceType::Desktop, port)
}

pub(crate) fn remember_nearby(inner: &Context, id: DeviceId, identity: Identity, addr: SocketAddr) {
    let mut nearby = inner.kde.nearby.lock().unwrap();
    if nearby.len() >= MAX_NEARBY
        && !nearby.contains_key(&id)
        && let Some(oldest) = nearby.iter().min_by_key(|(_, n)| n.seen).map(|(k, _)| *k)
    {
        nearby.remove(&oldest);
    }
    nearby.insert(id, KdeNearby { identity, addr, seen: Instant::now() });
}
