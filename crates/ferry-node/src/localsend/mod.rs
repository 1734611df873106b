//! LocalSend devices (the LocalSend app on iOS, Android, Windows, macOS and Linux, and other
//! implementations of its protocol 2): discovery, receiving files and text, sending files and
//! notes, behind the same device model as KDE Connect devices (a device row, prompts, notes,
//! transfers). A LocalSend device is never a member of a share, and its Ferry id (derived from
//! its certificate's fingerprint, see `LsDeviceRecord::ferry_id`) is one no other peer can
//! present.
//!
//! LocalSend has no pairing. A device is known by the fingerprint of the certificate its TLS
//! connections show (trust on first use): one that comes back under the same alias with another
//! certificate is a different device, listed with a warning, never silently trusted. What it
//! sends is a prompt per transfer (or accepted at once when the user marked that very device
//! auto-accept), with an optional PIN.
//!
//! Tasks: the HTTPS server (`receive`: register, prepare-upload, upload, cancel), the discovery
//! loop (multicast 224.0.0.167, only when listening on every address) and, per device, a flush
//! of its queued sends and notes (`send`). All stop with the node.

mod receive;
mod scan;
mod send;
mod session;
mod upload;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_localsend::{DeviceInfo, DeviceType, Discovery, LocalIdentity, LsError, Protocol, Server};
use ferry_proto::DeviceId;
use ferry_store::LsDeviceRecord;

use crate::api::{ApiError, ApiResult, DeviceDto};
use crate::clock::now_ms;
use crate::context::Context;
use crate::ls_handle::{LsNearby, MAX_NEARBY};

pub(crate) use receive::answer as answer_send;
pub(crate) use scan::scan;
pub(crate) use send::{flush_soon, set_pin};

/// Where LocalSend keeps its certificate and key, under the home.
const DIR: &str = "localsend";
/// LocalSend announces itself at start and answers others' announcements; the app also
/// re-announces when its list is refreshed. Every so often is enough for a phone that was
/// asleep to see this device again, and cheap (one datagram).
const ANNOUNCE_EVERY: Duration = Duration::from_secs(30);
/// A device not heard from for this long is no longer nearby (four missed announcements of a
/// device that announces every 30 s, as localsendd does; the app announces less, but answers
/// ours).
const NEARBY_FOR: Duration = Duration::from_secs(150);
/// A device heard again within this long at the same address is not checked again (it
/// announces every 30 s or so; a check is a TLS connection).
const VERIFY_AGAIN: Duration = Duration::from_secs(120);
/// Devices checked at once (each a TLS connection bounded by the client's timeouts): a LAN has
/// a handful of devices; a flood of made-up announcements gets no more than this many sockets.
const MAX_VERIFYING: usize = 16;
/// The protocol version Ferry speaks (2.1's messages with 2.2's client certificates).
const VERSION: &str = "2.1";

/// Starts LocalSend if the configuration wants it and its port is free. When another LocalSend
/// holds the port, Ferry leaves LocalSend to it and `ferry doctor` says so.
pub(crate) async fn start(inner: &Arc<Context>) {
    if !inner.cfg.localsend {
        *inner.ls.off_reason.lock().unwrap() =
            Some("turned off (--no-localsend, FERRY_LOCALSEND=0 or localsend = false)".into());
        return;
    }
    if let Err(why) = start_inner(inner).await {
        tracing::warn!("LocalSend is off: {why}");
        *inner.ls.off_reason.lock().unwrap() = Some(why);
    }
}

async fn start_inner(inner: &Arc<Context>) -> Result<(), String> {
    let dir = inner.cfg.home.join(DIR);
    let local = tokio::task::spawn_blocking(move || LocalIdentity::load_or_create(&dir))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("its identity cannot be loaded: {e}"))?;
    let local = Arc::new(local);
    let addr = SocketAddr::new(inner.cfg.localsend_bind, inner.cfg.localsend_port);
    let server = match Server::bind(addr, local.clone()).await {
        Ok(s) => s,
        Err(LsError::PortTaken(p)) => {
            return Err(format!(
                "another program (another LocalSend) already uses TCP port {p} on this computer; Ferry leaves \
                 LocalSend to it (quit it, or give Ferry another port with --localsend-port)"
            ));
        }
        Err(e) => return Err(format!("cannot listen on {addr}: {e}")),
    };
    let port = server.local_addr().port();
    *inner.ls.port.lock().unwrap() = Some(port);
    let _ = inner.ls.client.set(ferry_localsend::Client::new(local.clone()));
    let _ = inner.ls.local.set(local.clone());
    tracing::info!(fingerprint = %local.fingerprint, port, "LocalSend on");
    receive::after_restart(inner).await;
    send::after_restart(inner).await;
    let (i, handler) = (inner.clone(), Arc::new(receive::Receiver(inner.clone())));
    let mut stop = inner.stop.subscribe();
    inner.spawn(async move {
        let _keep = i;
        server
            .run(handler, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    });
    // Multicast only when listening on every address: a specific address (a test, or a user
    // pinning an interface) never multicasts; devices reach it by registering there.
    if let IpAddr::V4(v4) = inner.cfg.localsend_bind
        && v4.is_unspecified()
    {
        match Discovery::bind(Ipv4Addr::UNSPECIFIED) {
            Ok(d) => {
                let (i, d) = (inner.clone(), Arc::new(d));
                inner.spawn(async move { discovery_loop(&i, &d).await });
            }
            Err(e) => tracing::warn!("LocalSend discovery is off (devices can still register): {e}"),
        }
    }
    Ok(())
}

/// This device as LocalSend devices see it.
pub(super) fn our_info(inner: &Context, announce: Option<bool>) -> DeviceInfo {
    let local = inner.ls.local.get().expect("LocalSend runs");
    DeviceInfo {
        alias: inner.profile.read().unwrap().name.clone(),
        version: VERSION.into(),
        device_model: Some("Ferry".into()),
        device_type: Some(DeviceType::Desktop),
        fingerprint: local.fingerprint.clone(),
        port: inner.ls.port.lock().unwrap().unwrap_or(inner.cfg.localsend_port),
        protocol: Protocol::Https,
        download: false,
        announce,
    }
}

/// Announces now and every `ANNOUNCE_EVERY`; registers with the devices it hears (what the app
/// does with announcements), which is also how what they announce is checked before it is kept
/// (see `verify`).
async fn discovery_loop(inner: &Arc<Context>, d: &Arc<Discovery>) {
    let mut stop = inner.stop.subscribe();
    let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
    let verifying = Arc::new(tokio::sync::Semaphore::new(MAX_VERIFYING));
    loop {
        // (No await inside the branches: the stop signal's guard must not live across one.)
        let heard = tokio::select! {
            _ = tick.tick() => None,
            r = d.recv() => Some(r),
            _ = stop.wait_for(|s| *s) => return,
        };
        let Some(heard) = heard else {
            if let Err(e) = d.announce(&our_info(inner, Some(true))).await {
                tracing::info!("LocalSend announcement failed: {e}");
            }
            prune(inner);
            continue;
        };
        let (info, from) = match heard {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("LocalSend discovery: {e}");
                continue;
            }
        };
        let local = inner.ls.local.get().expect("LocalSend runs");
        if ferry_localsend::fingerprint_eq(&info.fingerprint, &local.fingerprint) {
            continue;
        }
        if info.protocol != Protocol::Https {
            tracing::info!(alias = %info.alias, "LocalSend device without encryption ignored (Ferry sends nothing in clear)");
            continue;
        }
        let addr = SocketAddr::new(from.ip(), info.port);
        let fp = info.fingerprint.to_ascii_uppercase();
        let answer = info.announce == Some(true);
        let id = LsDeviceRecord::ferry_id(&fp);
        // A datagram proves nothing (anyone can announce any fingerprint and name): what it
        // says is kept only once a TLS connection to that address shows that fingerprint (our
        // register, pinned). A device heard recently at the same address is just seen again.
        let fresh = inner.ls.nearby(&id).is_some_and(|n| n.addr == addr && n.seen.elapsed() < VERIFY_AGAIN);
        if fresh && !answer {
            if let Some(n) = inner.ls.nearby.lock().unwrap().get_mut(&id) {
                n.seen = Instant::now();
            }
            send::flush_soon(inner, id);
            continue;
        }
        let Ok(slot) = verifying.clone().try_acquire_owned() else {
            tracing::debug!("LocalSend: too many devices being checked; {addr} waits for its next announcement");
            continue;
        };
        let (i, d) = (inner.clone(), d.clone());
        inner.spawn(async move {
            verify(&i, &d, addr, fp, answer).await;
            drop(slot);
        });
    }
}

/// Registers with a device heard by multicast, pinning the fingerprint it announced (a device
/// at that address showing another certificate is not the one that announced, and is not
/// kept); on success it is remembered with what it answered, and what waits for it goes out.
/// An announcement (not a reply) that cannot be registered with is answered by multicast, as
/// the app does.
async fn verify(inner: &Arc<Context>, d: &Discovery, addr: SocketAddr, fp: String, answer: bool) {
    let Some(client) = inner.ls.client.get() else { return };
    match client.register(addr, Some(&fp), &our_info(inner, None)).await {
        Ok((info, seen)) => {
            let id = LsDeviceRecord::ferry_id(&seen);
            remember(inner, info, seen.to_ascii_uppercase(), addr).await;
            send::flush_soon(inner, id);
        }
        Err(e) => {
            tracing::debug!(%addr, "LocalSend register failed ({e})");
            if answer {
                let _ = d.answer(&our_info(inner, Some(false))).await;
            }
        }
    }
}

/// Records a device heard now: in the nearby list (bounded) and in the store (its fingerprint
/// remembered, its device row renamed if it has one).
pub(super) async fn remember(inner: &Arc<Context>, info: DeviceInfo, fp: String, addr: SocketAddr) {
    let id = LsDeviceRecord::ferry_id(&fp);
    {
        let mut nearby = inner.ls.nearby.lock().unwrap();
        if !nearby.contains_key(&id) && nearby.len() >= MAX_NEARBY {
            let oldest = nearby.iter().min_by_key(|(_, n)| n.seen).map(|(k, _)| *k);
            if let Some(k) = oldest {
                nearby.remove(&k);
            }
        }
        nearby.insert(id, LsNearby { info: info.clone(), fingerprint: fp.clone(), addr, seen: Instant::now() });
    }
    let rec = record_for(inner, &info, &fp, addr).await;
    if let Err(e) = inner.db(move |s| s.put_ls_device(&rec, false)).await {
        tracing::warn!("LocalSend device not remembered: {e}");
    }
}

/// The store's record of a device as heard now (its favorite mark and first sighting kept).
pub(super) async fn record_for(inner: &Arc<Context>, info: &DeviceInfo, fp: &str, addr: SocketAddr) -> LsDeviceRecord {
    let id = LsDeviceRecord::ferry_id(fp);
    let old = inner.db(move |s| s.ls_device(&id)).await.ok().flatten();
    let now = now_ms();
    LsDeviceRecord {
        fingerprint: fp.to_ascii_uppercase(),
        alias: info.alias.clone(),
        device_model: info.device_model.clone(),
        device_type: type_name(info.device_type).into(),
        address: Some(addr.to_string()),
        favorite: old.as_ref().is_some_and(|o| o.favorite),
        first_seen_ms: old.map(|o| o.first_seen_ms).unwrap_or(now),
        last_seen_ms: now,
    }
}

fn type_name(t: Option<DeviceType>) -> &'static str {
    match t {
        Some(DeviceType::Mobile) => "mobile",
        Some(DeviceType::Web) => "web",
        Some(DeviceType::Headless) => "headless",
        Some(DeviceType::Server) => "server",
        Some(DeviceType::Desktop) | None => "desktop",
    }
}

/// Forgets devices not heard from for a while (they stay in the store; favorites stay listed).
fn prune(inner: &Context) {
    inner.ls.nearby.lock().unwrap().retain(|_, n| n.seen.elapsed() < NEARBY_FOR);
}

/// Completes `ferry devices` with LocalSend: devices with a device row get their kind, type and
/// warning and are listed when nearby or favorite; nearby devices without a row are added.
pub(crate) async fn describe(inner: &Arc<Context>, out: &mut Vec<DeviceDto>) -> ApiResult<()> {
    let known = inner.db(|s| s.ls_devices()).await?;
    prune(inner);
    let nearby = inner.ls.nearby.lock().unwrap().clone();
    let warning = |rec: &LsDeviceRecord| -> Option<String> {
        let same: Vec<&LsDeviceRecord> =
            known.iter().filter(|o| o.alias == rec.alias && o.fingerprint != rec.fingerprint).collect();
        let older = same.iter().filter(|o| o.first_seen_ms < rec.first_seen_ms).count();
        (older > 0).then(|| {
            format!(
                "another device called {:?} was seen before with another certificate: this one ({}) is not that \
                 device; check it on the phone before trusting it",
                rec.alias,
                short_fp(&rec.fingerprint)
            )
        })
    };
    let mut drop_ids = Vec::new();
    for rec in &known {
        let id = rec.id();
        let sid = id.to_string();
        let near = nearby.get(&id);
        let row = out.iter_mut().find(|d| d.id == sid);
        let Some(d) = row else {
            if let Some(n) = near {
                out.push(dto(&sid, rec, Some(n), warning(rec)));
            }
            continue;
        };
        if near.is_none() && !rec.favorite {
            drop_ids.push(sid);
            continue;
        }
        fill(d, rec, near, warning(rec));
    }
    out.retain(|d| !drop_ids.contains(&d.id));
    Ok(())
}

fn fill(d: &mut DeviceDto, rec: &LsDeviceRecord, near: Option<&LsNearby>, warning: Option<String>) {
    d.kind = "localsend".into();
    d.device_type = Some(rec.device_type.clone());
    d.model = rec.device_model.clone();
    d.fingerprint = Some(rec.fingerprint.clone());
    d.favorite = rec.favorite;
    d.warning = warning;
    d.nearby = near.is_some();
    d.connected = near.is_some();
    d.addresses = rec.address.iter().cloned().collect();
    d.nearby_addresses = near.map(|n| vec![n.addr.to_string()]).unwrap_or_default();
}

fn dto(id: &str, rec: &LsDeviceRecord, near: Option<&LsNearby>, warning: Option<String>) -> DeviceDto {
    let mut d = DeviceDto {
        id: id.to_string(),
        name: rec.alias.clone(),
        owner: String::new(),
        paired: false,
        connected: false,
        addresses: vec![],
        last_seen_ms: Some(rec.last_seen_ms),
        rtt_ms: None,
        bytes_sent: None,
        bytes_received: None,
        nearby: false,
        nearby_addresses: vec![],
        muted: false,
        auto_accept: false,
        removed: false,
        removed_by: None,
        kind: String::new(),
        device_type: None,
        warning: None,
        model: None,
        fingerprint: None,
        favorite: false,
    };
    fill(&mut d, rec, near, warning);
    d
}

/// The first characters of a fingerprint, grouped as people compare them.
pub(crate) fn short_fp(fp: &str) -> String {
    let s: String = fp.chars().take(16).collect();
    s.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ")
}

/// A DEVICE argument naming a LocalSend device heard nearby that has no device row yet (alias,
/// fingerprint or id prefix): gives it one, so notes and sends can name it. None when nothing
/// nearby matches (the caller then says the device is unknown); an error when several do.
pub(crate) async fn resolve_nearby(inner: &Arc<Context>, arg: &str) -> ApiResult<Option<DeviceId>> {
    let found: Vec<LsNearby> = {
        let nearby = inner.ls.nearby.lock().unwrap();
        nearby
            .iter()
            .filter(|(id, n)| {
                n.info.alias.eq_ignore_ascii_case(arg)
                    || ferry_localsend::fingerprint_eq(&n.fingerprint, arg)
                    || (arg.len() >= 4 && id.matches_prefix(arg))
            })
            .map(|(_, n)| n.clone())
            .collect()
    };
    match found.len() {
        0 => Ok(None),
        1 => {
            let n = &found[0];
            let rec = record_for(inner, &n.info, &n.fingerprint, n.addr).await;
            let id = rec.id();
            inner.db(move |s| s.put_ls_device(&rec, true)).await?;
            Ok(Some(id))
        }
        _ => Err(ApiError::new(
            crate::api::ErrorCode::Ambiguous,
            format!(
                "{arg:?} matches several LocalSend devices: {}",
                found
                    .iter()
                    .map(|n| format!("{} ({})", n.info.alias, short_fp(&n.fingerprint)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Keeps a LocalSend device listed while away (or not).
pub(crate) async fn set_favorite(inner: &Arc<Context>, id: DeviceId, on: bool) -> ApiResult<()> {
    inner.db(move |s| s.set_ls_favorite(&id, on)).await
}

/// `ferry devices remove` for a LocalSend device: forgets it (its record, row, marks and any
/// prompt of it); it is listed again, as new, if it is heard again.
pub(crate) async fn forget(inner: &Arc<Context>, id: DeviceId) -> ApiResult<()> {
    let prompts = inner.db(|s| s.prompts()).await?;
    for p in prompts.into_iter().filter(|p| p.device == id) {
        let pid = p.id;
        inner.db(move |s| s.remove_prompt(pid)).await?;
    }
    send::forget_pin(inner, id);
    inner.ls.nearby.lock().unwrap().remove(&id);
    inner.db(move |s| s.forget_ls_device(&id)).await
}

/// `ferry devices remove` for a LocalSend device: forgets it and returns what it was.
pub(crate) async fn remove(inner: &Arc<Context>, id: DeviceId) -> ApiResult<DeviceDto> {
    let rec =
        inner.db(move |s| s.ls_device(&id)).await?.ok_or_else(|| ApiError::not_found("no such LocalSend device"))?;
    forget(inner, id).await?;
    let mut d = dto(&id.to_string(), &rec, None, None);
    d.removed = true;
    Ok(d)
}

/// Whether `id` is a LocalSend device this node knows.
pub(crate) async fn is_localsend(inner: &Arc<Context>, id: DeviceId) -> ApiResult<bool> {
    Ok(inner.db(move |s| s.ls_device(&id)).await?.is_some())
}
