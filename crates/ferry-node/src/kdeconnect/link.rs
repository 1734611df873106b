//! One connected KDE Connect device: the trust check, the registration, the writer task and
//! the reader loop that dispatches its packets. Unpaired devices may only ask to pair; every
//! other packet from them is dropped (as KDE Connect does).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry_kdeconnect::{Link, Packet};
use ferry_proto::DeviceId;
use ferry_store::KdeDeviceRecord;
use tokio::sync::mpsc;

use crate::context::Context;
use crate::events::Event;
use crate::kde_handle::{KdeLink, LINK_QUEUE};
use crate::limits::MAX_UNPAIRED_CONNECTIONS;

use super::wire::{PAIR, PING, SHARE, cert_changed, downgraded, ferry_id, refuse, remember_nearby};

/// Runs a link until it closes, in the span `kde{device}`.
pub(super) async fn run(inner: &Arc<Context>, link: Link) {
    let span = tracing::info_span!("kde", device = %link.identity.device_name);
    tracing::Instrument::instrument(run_in_span(inner, link), span).await
}

async fn run_in_span(inner: &Arc<Context>, link: Link) {
    let id = ferry_id(&link.identity.device_id);
    let kid = id;
    let known = match inner.db(move |s| s.kde_device(&kid)).await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!("KDE Connect: {e}");
            return;
        }
    };
    if let Some(why) = refusal(known.as_ref(), &link) {
        return refuse(inner, id, &link.identity.device_name, why);
    }
    inner.kde.refused.lock().unwrap().remove(&id);
    let paired = known.as_ref().is_some_and(|k| k.cert_der.is_some());
    // Devices that completed the handshake without being paired share a small budget: each
    // link holds a socket, two tasks and TLS buffers, and a flood of made-up ids must not
    // grow that without bound. Held until this link ends.
    let _slot = match paired {
        true => None,
        false => match UnpairedSlot::take(&inner.kde.unpaired_links) {
            Some(slot) => Some(slot),
            None => {
                tracing::info!(
                    "refused: {MAX_UNPAIRED_CONNECTIONS} unpaired KDE Connect devices are connected already"
                );
                return;
            }
        },
    };
    if paired {
        // Keep what it says about itself now (name, type, protocol, address).
        let rec = record(known.as_ref(), &link);
        let name = link.identity.device_name.clone();
        if let Err(e) = inner.db(move |s| s.put_kde_device(&rec, &name)).await {
            tracing::warn!("KDE Connect: {e}");
        }
    }
    // Where it listens (an incoming link's own port is an ephemeral one).
    let listen = std::net::SocketAddr::new(link.remote.ip(), link.identity.tcp_port.unwrap_or(link.remote.port()));
    remember_nearby(inner, id, link.identity.clone(), listen);
    let remote = listen;
    let identity = link.identity.clone();
    let cert = Arc::new(link.peer_cert_der.clone());
    let version = link.version;
    let (mut reader, mut writer) = link.split();
    let (tx, mut rx) = mpsc::channel::<Packet>(LINK_QUEUE);
    let serial = inner.kde.next_serial.fetch_add(1, Ordering::Relaxed);
    let close = Arc::new(tokio::sync::Notify::new());
    let since = std::time::Instant::now();
    let handle = KdeLink { tx, identity: identity.clone(), cert, remote, version, serial, since, close: close.clone() };
    // Packets are handled as this connection's, whichever one the map holds by then.
    let this = handle.clone();
    // A new connection replaces an older one in the map. The older one is closed when it is
    // the same device again (same certificate: it reconnected, and KDE Connect keeps the newest
    // too, so both sides end on the same one); a connection with another certificate under an
    // unpaired id may be someone else, and must not cut the device it claims to be off.
    let replaced = inner.kde.links.lock().unwrap().insert(id, handle);
    if let Some(old) = replaced.filter(|old| old.cert == this.cert) {
        old.close.notify_one();
    }
    inner.emit(Event::DeviceConnected {
        device: id.to_string(),
        name: identity.device_name.clone(),
        address: remote.to_string(),
    });
    tracing::info!(%remote, protocol = identity.protocol_version, paired, "KDE Connect device connected");
    let writer_task = tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            if let Err(e) = writer.send(&p).await {
                tracing::info!("KDE Connect: write failed: {e}");
                return;
            }
        }
    });
    if paired {
        super::notes::flush_soon(inner, id);
        super::files::flush_soon(inner, id);
    }
    let mut stop = inner.stop.subscribe();
    loop {
        let next = tokio::select! {
            p = reader.recv() => p,
            _ = stop.wait_for(|s| *s) => break,
            _ = close.notified() => break,
        };
        match next {
            Ok(Some(p)) => dispatch(inner, id, &this, p).await,
            Ok(None) => break,
            Err(e) => {
                tracing::info!("KDE Connect: link closed: {e}");
                break;
            }
        }
    }
    let mine = {
        let mut links = inner.kde.links.lock().unwrap();
        let mine = links.get(&id).is_some_and(|l| l.serial == serial);
        if mine {
            links.remove(&id);
        }
        mine
    };
    writer_task.abort();
    if mine {
        inner.emit(Event::DeviceDisconnected {
            device: id.to_string(),
            name: identity.device_name.clone(),
            reason: "the KDE Connect link closed".into(),
        });
    }
}

/// One of the places for unpaired links, given back when dropped.
struct UnpairedSlot<'a>(&'a AtomicUsize);

impl<'a> UnpairedSlot<'a> {
    fn take(count: &'a AtomicUsize) -> Option<UnpairedSlot<'a>> {
        let below_cap = |n: usize| (n < MAX_UNPAIRED_CONNECTIONS).then_some(n + 1);
        count.fetch_update(Ordering::SeqCst, Ordering::SeqCst, below_cap).ok().map(|_| UnpairedSlot(count))
    }
}

impl Drop for UnpairedSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a connection from a known device is refused: a paired device must present the pinned
/// certificate, and one that spoke protocol 8 may not come back on an older one (a downgrade
/// would skip the identity check inside TLS).
fn refusal(known: Option<&KdeDeviceRecord>, link: &Link) -> Option<String> {
    let k = known?;
    let pin = k.cert_der.as_ref()?;
    if *pin != link.peer_cert_der {
        return Some(cert_changed(&link.identity.device_name));
    }
    if k.protocol >= 8 && link.version < k.protocol {
        return Some(downgraded(&link.identity.device_name, link.version, k.protocol));
    }
    None
}

/// The record of a device as this link shows it, keeping the pin.
pub(super) fn record(known: Option<&KdeDeviceRecord>, link_identity_and_remote: &Link) -> KdeDeviceRecord {
    let l = link_identity_and_remote;
    KdeDeviceRecord {
        kde_id: l.identity.device_id.clone(),
        device_type: l.identity.device_type.as_str().into(),
        protocol: l.version,
        cert_der: known.and_then(|k| k.cert_der.clone()),
        address: Some(
            std::net::SocketAddr::new(l.remote.ip(), l.identity.tcp_port.unwrap_or(l.remote.port())).to_string(),
        ),
    }
}

/// Handles a packet that came on connection `link`. Paired means this connection shows the
/// pinned certificate: one that came up before the device was paired (anyone may claim an
/// unpaired device's id) gains nothing from a pairing made on another connection.
async fn dispatch(inner: &Arc<Context>, id: DeviceId, link: &KdeLink, p: Packet) {
    let pin = inner.db(move |s| s.kde_device(&id)).await.ok().flatten().and_then(|k| k.cert_der);
    let paired = pin.as_deref() == Some(link.cert.as_slice());
    if p.kind == PAIR {
        if pin.is_some() && !paired {
            tracing::warn!("dropped a pair packet from a connection without the paired certificate");
            return;
        }
        return super::pairing::on_pair(inner, id, link, &p).await;
    }
    if !paired {
        tracing::info!(kind = %p.kind, "dropped a packet from an unpaired device");
        return;
    }
    match p.kind.as_str() {
        PING => super::notes::on_ping(inner, id, &p).await,
        SHARE => {
            if p.payload_size.is_some() || p.body.get("filename").is_some() {
                super::files::on_file(inner, id, link, &p).await
            } else {
                super::notes::on_shared_text(inner, id, &p).await
            }
        }
        other => tracing::debug!(kind = %other, "ignored a packet this node has no use for"),
    }
}
