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

/// Why a paired device that showed another certificate is refused (shown in `ferry devices`).
pub(super) fn cert_changed(name: &str) -> String {
    format!(
        "{name} presented a different certificate than the one paired; refused. If it was reinstalled, remove \
         it (`ferry devices remove`) and pair again"
    )
}

/// Why a device paired on protocol 8 that came back on an older one is refused.
pub(super) fn downgraded(name: &str, now: u32, paired_on: u32) -> String {
    format!("{name} came back on KDE Connect protocol {now} after {paired_on}; refused (a downgrade)")
}

/// Records and announces that a device was refused.
pub(super) fn refuse(inner: &Context, id: DeviceId, name: &str, why: String) {
    tracing::warn!(device = %name, "refused: {why}");
    inner.kde.refused.lock().unwrap().insert(id, why.clone());
    inner.emit(crate::events::Event::DeviceRefused { device: id.to_string(), name: name.to_string(), reason: why });
}
