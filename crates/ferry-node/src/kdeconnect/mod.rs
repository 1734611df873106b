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
mod wire;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ferry_kdeconnect::{Discovery, Identity, KdeError, Listener, LocalIdentity, Pin};
use ferry_proto::DeviceId;

use crate::context::Context;
use wire::{ferry_id, our_identity, remember_nearby};

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
    let (tx, rx) = tokio::sync::mpsc::channel(crate::kde_handle::DIAL_QUEUE);
    let _ = inner.kde.dial.set(tx);
    let i = inner.clone();
    inner.spawn(async move { dial_loop(&i, rx).await });
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
        // A device that announces itself again while linked may have restarted (its old
        // connection not yet seen to close): connect again, the new link replaces the old.
        let fresh = inner.kde.link(&id).is_some_and(|l| l.since.elapsed() < crate::kde_handle::RELINK_AFTER);
        if !fresh {
            connect_soon(inner, id, identity, addr);
        }
    }
}

/// Connects to nearby devices others ask for (`ferry pair NAME` toward one not linked yet).
async fn dial_loop(inner: &Arc<Context>, mut rx: tokio::sync::mpsc::Receiver<DeviceId>) {
    let mut stop = inner.stop.subscribe();
    loop {
        let id = tokio::select! {
            r = rx.recv() => match r { Some(id) => id, None => return },
            _ = stop.wait_for(|s| *s) => return,
        };
        let n = inner.kde.nearby.lock().unwrap().get(&id).cloned();
        if let Some(n) = n {
            connect_soon(inner, id, n.identity, n.addr);
        }
    }
}

/// Connects to a device (at most one attempt per device at a time) and runs the link.
fn connect_soon(inner: &Arc<Context>, id: DeviceId, identity: Identity, addr: SocketAddr) {
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
        let name = &identity.device_name;
        match res {
            Ok(l) => link::run(&i, l).await,
            Err(KdeError::CertMismatch) => wire::refuse(&i, id, name, wire::cert_changed(name)),
            Err(KdeError::Downgrade { pinned, announced }) => {
                wire::refuse(&i, id, name, wire::downgraded(name, announced, pinned))
            }
            Err(e) => tracing::info!(device = %name, %addr, "KDE Connect: cannot connect: {e}"),
        }
    });
}

/// Opens a link to a device that announced itself. A paired device must show its pinned
/// certificate, and one paired on protocol 8 may not come back older (the crate refuses both
/// during the handshake; the caller records why).
async fn connect(
    inner: &Arc<Context>,
    id: DeviceId,
    identity: &Identity,
    addr: SocketAddr,
) -> Result<ferry_kdeconnect::Link, KdeError> {
    let local = inner.kde.local.get().ok_or(KdeError::Closed("KDE Connect is off"))?.clone();
    let ours = our_identity(inner, &local);
    let known = inner.db(move |s| s.kde_device(&id)).await.map_err(|e| KdeError::Identity(e.message))?;
    let pin = known.and_then(|k| {
        let min_version = if k.protocol >= 8 { k.protocol } else { 0 };
        k.cert_der.map(|cert_der| Pin { cert_der, min_version })
    });
    let fut = ferry_kdeconnect::connect_pinned(addr, identity, &local, &ours, pin.as_ref());
    tokio::time::timeout(CONNECT_TIMEOUT, fut).await.map_err(|_| KdeError::Timeout("connecting"))?
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
            model: None,
            fingerprint: None,
            favorite: false,
        });
    }
    Ok(())
}
