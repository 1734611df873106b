//! KDE Connect devices (the KDE Connect app on Android, GSConnect, KDE desktops): discovery,
//! links, pairing, notes and one-shot file sends, beside the QUIC links to Ferry devices and
//! behind the same device model (a device row, prompts, notes, transfers). A KDE Connect device
//! is never a member of a share: nothing here reaches a share, and its Ferry id (derived from
//! its KDE id, see `KdeDeviceRecord::ferry_id`) is one no QUIC peer can present.
//!
//! Tasks: one discovery loop (UDP 1716), one accept loop (TCP 1716-1764), and per connected
//! device a reader (this module's `run_link`, which dispatches its packets) and a writer (owns
//! the write half; others queue packets through its `KdeLink::tx`). All stop with the node.

mod files;
mod link;
mod notes;
mod pairing;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_kdeconnect::{DeviceType, Discovery, Identity, KdeError, Listener, LocalIdentity};
use ferry_proto::DeviceId;
use ferry_store::KdeDeviceRecord;

use crate::context::Context;
use crate::kde_handle::{KdeNearby, MAX_NEARBY};

pub(crate) use files::{answer as answer_send, send as send_files};
pub(crate) use notes::flush_soon as flush_notes_soon;
pub(crate) use pairing::{start_pairing, unpair};

/// Where KDE Connect keeps its certificate, key and device id, under the home.
const DIR: &str = "kdeconnect";
/// A connection attempt to a device that announced itself: a LAN answers in milliseconds; a
/// device that does not within this long is not reachable now.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Incoming connections in their handshake at once (each bounded by the crate's timeouts): a
/// LAN has a handful of devices; more at once is a flood, and is dropped.
const MAX_HANDSHAKES: usize = 16;
/// Connection attempts to announced devices at once. Each holds a socket and a task for up to
/// CONNECT_TIMEOUT, and an announcement costs its sender one datagram: without a cap, a stream
/// of made-up identities would use up the node's file descriptors. A LAN has a handful of
/// devices; one left out is dialed on its next announcement (or dials us).
const MAX_CONNECTING: usize = MAX_HANDSHAKES;

/// The id a KDE Connect device has in Ferry.
pub(crate) fn ferry_id(kde_id: &str) -> DeviceId {
    KdeDeviceRecord::ferry_id(kde_id)
}

/// Our identity as announced now (the name can change while the node runs).
pub(crate) fn our_identity(inner: &Context, local: &LocalIdentity) -> Identity {
    let port = *inner.kde.port.lock().unwrap();
    local.identity(&inner.hello().name, DeviceType::Desktop, port)
}

/// Starts KDE Connect if the configuration wants it and UDP 1716 is free. When another KDE
/// Connect implementation holds the port (kdeconnectd, GSConnect), Ferry leaves KDE Connect to
/// it and `ferry doctor` says so.
pub(crate) async fn start(inner: &Arc<Context>) {
    if !inner.cfg.kdeconnect {
        *inner.kde.off_reason.lock().unwrap() =
            Some("turned off (--no-kdeconnect, FERRY_KDECONNECT=0 or kdeconnect = false)".into());
        return;
    }
    match start_inner(inner).await {
        Ok(()) => {}
        Err(why) => {
            tracing::warn!("KDE Connect is off: {why}");
            *inner.kde.off_reason.lock().unwrap() = Some(why);
        }
    }
}

async fn start_inner(inner: &Arc<Context>) -> Result<(), String> {
    let dir = inner.cfg.home.join(DIR);
    let local = tokio::task::spawn_blocking(move || LocalIdentity::load_or_create(&dir))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("its identity cannot be loaded: {e}"))?;
    let bind = inner.cfg.kdeconnect_bind;
    let discovery = match Discovery::bind(bind, ferry_kdeconnect::UDP_PORT).await {
        Ok(d) => d,
        Err(KdeError::PortTaken(p)) => {
            return Err(format!(
                "another KDE Connect (kdeconnectd or GSConnect) already uses UDP port {p} on this computer; \
                 Ferry leaves KDE Connect to it (quit it, or pair your phone with it instead)"
            ));
        }
        Err(e) => return Err(format!("cannot listen on UDP {}: {e}", ferry_kdeconnect::UDP_PORT)),
    };
    let listener = Listener::bind(bind, ferry_kdeconnect::TCP_PORTS)
        .await
        .map_err(|e| format!("no free TCP port in {:?}: {e}", ferry_kdeconnect::TCP_PORTS))?;
    *inner.kde.port.lock().unwrap() = Some(listener.port());
    let local = Arc::new(local);
    let _ = inner.kde.local.set(local.clone());
    tracing::info!(id = %local.device_id, port = listener.port(), "KDE Connect on");
    files::after_restart(inner).await;
    let discovery = Arc::new(discovery);
    announce(inner, &discovery).await;
    let (i, d) = (inner.clone(), discovery.clone());
    inner.spawn(async move { discovery_loop(&i, &d).await });
    let i = inner.clone();
    inner.spawn(async move { accept_loop(&i, listener).await });
    Ok(())
}

/// Announces this device by broadcast, only when listening on every address: a specific
/// address (a test, or a user pinning an interface) never broadcasts.
async fn announce(inner: &Arc<Context>, discovery: &Discovery) {
    if !inner.cfg.kdeconnect_bind.is_unspecified() {
        return;
    }
    let Some(local) = inner.kde.local.get() else { return };
    let to = SocketAddr::new(IpAddr::V4(Ipv4Addr::BROADCAST), ferry_kdeconnect::UDP_PORT);
    if let Err(e) = discovery.announce(&our_identity(inner, local), to).await {
        tracing::info!("KDE Connect announcement failed: {e}");
    }
}

/// Devices announcing themselves: remembered as nearby, and connected to when not linked yet
/// (in KDE Connect the device that hears the announcement opens the connection).
async fn discovery_loop(inner: &Arc<Context>, discovery: &Discovery) {
    let mut stop = inner.stop.subscribe();
    loop {
        let heard = tokio::select! {
            r = discovery.recv() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (identity, from) = match heard {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("KDE Connect discovery: {e}");
                continue;
            }
        };
        let Some(local) = inner.kde.local.get() else { return };
        if identity.device_id == local.device_id {
            continue;
        }
        let Some(port) = identity.tcp_port else { continue };
        let addr = SocketAddr::new(from.ip(), port);
        let id = ferry_id(&identity.device_id);
        remember_nearby(inner, id, identity.clone(), addr);
        if inner.kde.link(&id).is_none() {
            connect_soon(inner, id, identity, addr);
        }
    }
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

/// Connects to a device (at most one attempt per device at a time) and runs the link.
pub(crate) fn connect_soon(inner: &Arc<Context>, id: DeviceId, identity: Identity, addr: SocketAddr) {
    {
        let mut connecting = inner.kde.connecting.lock().unwrap();
        if connecting.len() >= MAX_CONNECTING {
            tracing::debug!(device = %identity.device_name, "KDE Connect: {MAX_CONNECTING} connection attempts already; skipped");
            return;
        }
        if !connecting.insert(id) {
            return;
        }
    }
    let i = inner.clone();
    inner.spawn(async move {
        let res = connect(&i, id, &identity, addr).await;
        i.kde.connecting.lock().unwrap().remove(&id);
        match res {
            Ok(l) => link::run(&i, l).await,
            Err(e) => tracing::info!(device = %identity.device_name, %addr, "KDE Connect: cannot connect: {e}"),
        }
    });
}

async fn connect(
    inner: &Arc<Context>,
    id: DeviceId,
    identity: &Identity,
    addr: SocketAddr,
) -> Result<ferry_kdeconnect::Link, String> {
    let local = inner.kde.local.get().ok_or("KDE Connect is off")?.clone();
    let ours = our_identity(inner, &local);
    let pinned = inner.db(move |s| s.kde_device(&id)).await.map_err(|e| e.message)?.and_then(|k| k.cert_der);
    let fut = ferry_kdeconnect::connect(addr, identity, &local, &ours, pinned.as_deref());
    tokio::time::timeout(CONNECT_TIMEOUT, fut).await.map_err(|_| "timed out".to_string())?.map_err(|e| e.to_string())
}

async fn accept_loop(inner: &Arc<Context>, listener: Listener) {
    let mut stop = inner.stop.subscribe();
    let Some(local) = inner.kde.local.get().cloned() else { return };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    loop {
        let accepted = tokio::select! {
            r = listener.accept_raw() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let incoming = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::info!("KDE Connect: accept failed: {e}");
                continue;
            }
        };
        // Beyond the cap a connection is dropped at once: a flood holds at most this many.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::info!(remote = %incoming.remote(), "KDE Connect: too many handshakes at once; dropped");
            continue;
        };
        let (i, local) = (inner.clone(), local.clone());
        inner.spawn(async move {
            let ours = our_identity(&i, &local);
            // Pins are checked by the link (which can then say why it refused); the handshake
            // takes any certificate, and nothing is read from the link before that check.
            let remote = incoming.remote();
            let shaken = incoming.handshake(&local, &ours, &|_: &str| None).await;
            drop(slot);
            match shaken {
                Ok(l) => link::run(&i, l).await,
                Err(e) => tracing::info!(%remote, "KDE Connect: refused a connection: {e}"),
            }
        });
    }
}

/// Completes `ferry devices` with KDE Connect: its known devices get their kind, type,
/// connection and warning; devices heard nearby but not known are added (unpaired).
pub(crate) async fn describe(inner: &Arc<Context>, out: &mut Vec<crate::api::DeviceDto>) -> crate::api::ApiResult<()> {
    let known = inner.db(|s| s.kde_devices()).await?;
    let refused = inner.kde.refused.lock().unwrap().clone();
    let nearby = inner.kde.nearby.lock().unwrap().clone();
    for (id, k) in &known {
        let sid = id.to_string();
        let Some(d) = out.iter_mut().find(|d| d.id == sid) else { continue };
        d.kind = "kdeconnect".into();
        d.device_type = Some(k.device_type.clone());
        d.warning = refused.get(id).cloned();
        if let Some(link) = inner.kde.link(id) {
            d.connected = true;
            d.addresses = vec![link.remote.to_string()];
        } else if let Some(a) = &k.address {
            d.addresses = vec![a.clone()];
        }
        if let Some(n) = nearby.get(id) {
            d.nearby = true;
            d.nearby_addresses = vec![n.addr.to_string()];
        }
    }
    for (id, n) in nearby {
        if known.iter().any(|(k, _)| *k == id) {
            continue;
        }
        let addr = n.addr.to_string();
        out.push(crate::api::DeviceDto {
            id: id.to_string(),
            name: n.identity.device_name.clone(),
            owner: String::new(),
            paired: false,
            connected: inner.kde.link(&id).is_some(),
            addresses: vec![addr.clone()],
            last_seen_ms: None,
            rtt_ms: None,
            bytes_sent: None,
            bytes_received: None,
            nearby: true,
            nearby_addresses: vec![addr],
            muted: false,
            auto_accept: false,
            removed: false,
            removed_by: None,
            kind: "kdeconnect".into(),
            device_type: Some(n.identity.device_type.as_str().into()),
            warning: refused.get(&id).cloned(),
        });
    }
    Ok(())
}
