//! Pairing with KDE Connect devices: both directions, with the verification key both screens
//! show, the same prompt as a Ferry device's request, and unpairing. Pairing pins the
//! certificate the device presented on this connection.

use std::sync::Arc;
use std::time::Duration;

use ferry_kdeconnect::Packet;
use ferry_proto::DeviceId;
use ferry_store::{KdeDeviceRecord, PromptKind, PromptRecord};
use serde_json::json;
use tokio::sync::{oneshot, watch};

use crate::api::*;
use crate::clock::now_ms;
use crate::context::{ApiResult, Context, publish_prompt};
use crate::events::Event;
use crate::kde_handle::{KdeLink, OutgoingPair};

use super::wire::PAIR;

/// KDE Connect gives up on a pairing request after 30 s (its `pairingTimeout`), so waiting
/// longer for the user here would only accept a request the other side has dropped.
pub(super) const KDE_PAIR_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `ferry pair` waits for a nearby device's link to come up before asking.
const LINK_WAIT: Duration = Duration::from_secs(10);

fn pair_packet(pair: bool) -> Packet {
    let secs = now_ms() / 1000;
    Packet::new(PAIR, json!({ "pair": pair, "timestamp": secs }))
}

/// The verification key for this link (the timestamp is the requester's, protocol 8 only).
fn key(inner: &Context, link: &KdeLink, timestamp: Option<i64>) -> ApiResult<String> {
    let local = inner.kde.local.get().ok_or_else(|| ApiError::internal("KDE Connect is off"))?;
    ferry_kdeconnect::verification_key(&local.cert_der, &link.cert, link.version, timestamp)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Records the device of `link` as paired: its row, its KDE record, the pinned certificate.
async fn mark_paired(inner: &Arc<Context>, id: DeviceId, link: &KdeLink) -> ApiResult<()> {
    let rec = KdeDeviceRecord {
        kde_id: link.identity.device_id.clone(),
        device_type: link.identity.device_type.as_str().into(),
        protocol: link.version,
        cert_der: Some(link.cert.to_vec()),
        address: Some(link.remote.to_string()),
    };
    let name = link.identity.device_name.clone();
    inner.db(move |s| s.put_kde_device(&rec, &name).map(|_| ())).await?;
    // Notes and files go to the connection that paired: one that claimed the same id with
    // another certificate before the pin (and so was not refused) is no longer the device's.
    {
        let mut links = inner.kde.links.lock().unwrap();
        if links.get(&id).is_some_and(|l| l.cert != link.cert) {
            links.insert(id, link.clone());
        }
    }
    crate::removal::clear(inner, id).await?;
    inner.emit(Event::Paired { device: id.to_string(), name: link.identity.device_name.clone() });
    tracing::info!("paired");
    super::notes::flush_soon(inner, id);
    super::files::flush_soon(inner, id);
    Ok(())
}

async fn paired(inner: &Arc<Context>, id: DeviceId) -> bool {
    inner.db(move |s| s.kde_device(&id)).await.ok().flatten().is_some_and(|k| k.cert_der.is_some())
}

/// A `kdeconnect.pair` packet from `id`, on connection `link`.
pub(super) async fn on_pair(inner: &Arc<Context>, id: DeviceId, link: &KdeLink, p: &Packet) {
    let link = link.clone();
    let Some(want) = p.body.get("pair").and_then(|v| v.as_bool()) else {
        tracing::info!("pair packet without a `pair` flag; ignored");
        return;
    };
    let outgoing = {
        let mut pairs = inner.kde.outgoing_pairs.lock().unwrap();
        match pairs.get(&id) {
            // Another connection claiming the device's id (not the one the key was shown for)
            // may not answer our request.
            Some(out) if out.cert != link.cert => {
                tracing::warn!("an answer to our pairing request from another certificate; ignored");
                return;
            }
            Some(_) => pairs.remove(&id),
            None => None,
        }
    };
    if let Some(out) = outgoing {
        let outcome = if want {
            match mark_paired(inner, id, &link).await {
                Ok(()) => PairOutcomeDto {
                    state: "accepted".into(),
                    message: format!("paired with {}", link.identity.device_name),
                },
                Err(e) => PairOutcomeDto { state: "failed".into(), message: e.message },
            }
        } else {
            PairOutcomeDto { state: "rejected".into(), message: "the other device declined the pairing request".into() }
        };
        let _ = out.outcome.send(Some(outcome));
        return;
    }
    if !want {
        // It unpaired us, or withdrew the request it had made.
        if let Some(prompt) = inner.kde.incoming_pairs.lock().unwrap().remove(&id)
            && let Some(tx) = inner.pair_waiters.lock().unwrap().remove(&prompt)
        {
            let _ = tx.send(false);
        }
        if paired(inner, id).await {
            let _ = inner.db(move |s| s.set_kde_paired(&id, None)).await;
            let name = link.identity.device_name.clone();
            inner.emit(Event::DeviceRemoved { device: id.to_string(), name: name.clone(), by: Some(name) });
            tracing::info!("it unpaired this device");
        }
        return;
    }
    if paired(inner, id).await {
        // Already paired (it lost its state, or both asked at once): say yes again.
        let _ = link.tx.send(pair_packet(true)).await;
        return;
    }
    let timestamp = p.body.get("timestamp").and_then(|v| v.as_i64());
    let i = inner.clone();
    inner.spawn(async move { incoming(&i, id, link, timestamp).await });
}

/// A pairing request from an unpaired device: a `pair` prompt (rate-limited like a Ferry
/// device's), answered within KDE Connect's 30 s.
async fn incoming(inner: &Arc<Context>, id: DeviceId, link: KdeLink, timestamp: Option<i64>) {
    if inner.kde.incoming_pairs.lock().unwrap().contains_key(&id) {
        return;
    }
    if inner.prompt_limits.check(id, "a pairing request").is_err() {
        let _ = link.tx.send(pair_packet(false)).await;
        return;
    }
    let code = match key(inner, &link, timestamp) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!("no verification key: {e}");
            return;
        }
    };
    let Ok(pid) = inner.db(|s| s.next_prompt_id()).await else { return };
    let (tx, rx) = oneshot::channel();
    inner.pair_waiters.lock().unwrap().insert(pid, tx);
    inner.kde.incoming_pairs.lock().unwrap().insert(id, pid);
    let kind = PromptKind::Pair { name: link.identity.device_name.clone(), owner: String::new(), code };
    let published = publish_prompt(inner, PromptRecord { id: pid, device: id, created_ms: now_ms(), kind }).await;
    let accept = match published {
        Ok(_) => tokio::time::timeout(KDE_PAIR_TIMEOUT, rx).await.ok().and_then(|r| r.ok()).unwrap_or(false),
        Err(_) => false,
    };
    inner.pair_waiters.lock().unwrap().remove(&pid);
    inner.kde.incoming_pairs.lock().unwrap().remove(&id);
    let _ = inner.db(move |s| s.remove_prompt(pid)).await;
    // The link may have been replaced meanwhile: answer on the current one, pin its certificate.
    let Some(now) = inner.kde.link(&id).filter(|l| l.cert == link.cert) else { return };
    if accept && mark_paired(inner, id, &now).await.is_ok() {
        let _ = now.tx.send(pair_packet(true)).await;
    } else {
        let _ = now.tx.send(pair_packet(false)).await;
    }
}

/// Finds a KDE Connect device by name or id among the linked and nearby ones.
fn find(inner: &Context, arg: &str) -> Option<(DeviceId, String)> {
    let nearby = inner.kde.nearby.lock().unwrap();
    let by_name: Vec<_> = nearby.iter().filter(|(_, n)| n.identity.device_name.eq_ignore_ascii_case(arg)).collect();
    if by_name.len() == 1 {
        return Some((*by_name[0].0, by_name[0].1.identity.device_name.clone()));
    }
    let by_id: Vec<_> = nearby
        .iter()
        .filter(|(id, n)| n.identity.device_id == arg || id.to_string() == arg || id.matches_prefix(arg))
        .collect();
    (by_id.len() == 1).then(|| (*by_id[0].0, by_id[0].1.identity.device_name.clone()))
}

/// `ferry pair NAME` for a KDE Connect device: connects if needed, sends the request and
/// returns the ticket with the key its screen shows. `None`: no such KDE Connect device.
pub(crate) async fn start_pairing(inner: &Arc<Context>, arg: &str) -> ApiResult<Option<PairTicketDto>> {
    if !inner.kde.running() {
        return Ok(None);
    }
    let Some((id, name)) = find(inner, arg) else { return Ok(None) };
    let link = match inner.kde.link(&id) {
        Some(l) => l,
        None => {
            let n = inner.kde.nearby.lock().unwrap().get(&id).cloned();
            if n.is_some()
                && let Some(dial) = inner.kde.dial.get()
            {
                let _ = dial.try_send(id);
            }
            wait_link(inner, id).await.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unreachable,
                    format!("{name} (KDE Connect) did not answer; is it on this network?"),
                )
            })?
        }
    };
    if paired(inner, id).await {
        return Err(ApiError::new(ErrorCode::Conflict, format!("{name} is already paired")));
    }
    let packet = pair_packet(true);
    let timestamp = packet.body.get("timestamp").and_then(|v| v.as_i64());
    let code = key(inner, &link, timestamp)?;
    let ticket = inner.next_ticket.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (tx, rx) = watch::channel(None);
    inner.tickets.lock().unwrap().insert(ticket, rx);
    let pending = OutgoingPair { outcome: tx.clone(), cert: link.cert.clone() };
    inner.kde.outgoing_pairs.lock().unwrap().insert(id, pending);
    link.tx.send(packet).await.map_err(|_| ApiError::new(ErrorCode::Unreachable, format!("{name} disconnected")))?;
    let i = inner.clone();
    inner.spawn(async move {
        let mut stop = i.stop.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(KDE_PAIR_TIMEOUT) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
        if i.kde.outgoing_pairs.lock().unwrap().remove(&id).is_some() {
            let _ = tx.send(Some(PairOutcomeDto {
                state: "timeout".into(),
                message: "nobody answered the pairing request on the other device".into(),
            }));
        }
    });
    Ok(Some(PairTicketDto { ticket, device: id.to_string(), device_name: name, code }))
}

/// Waits (bounded) for a link to `id` to be registered.
async fn wait_link(inner: &Arc<Context>, id: DeviceId) -> Option<KdeLink> {
    let mut events = inner.events.subscribe();
    let deadline = tokio::time::Instant::now() + LINK_WAIT;
    loop {
        if let Some(l) = inner.kde.link(&id) {
            return Some(l);
        }
        match tokio::time::timeout_at(deadline, events.next()).await {
            Err(_) | Ok(None) => return None,
            Ok(Some(_)) => {}
        }
    }
}

/// Unpairs a KDE Connect device (`ferry devices remove`): it is told when connected, and the
/// pin is dropped, so it has to ask again.
pub(crate) async fn unpair(inner: &Arc<Context>, id: DeviceId) -> ApiResult<()> {
    if let Some(link) = inner.kde.link(&id) {
        let _ = link.tx.send(pair_packet(false)).await;
    }
    inner.db(move |s| s.set_kde_paired(&id, None)).await?;
    Ok(())
}
