//! Removing a device (a lost or stolen laptop): withdrawing its trust on this device, and
//! taking note when another device says it removed this one.
//!
//! On the remover: the device is unpaired, dropped from every share's members, its prompts
//! dropped (a send it offered is declined), its live connection closed telling it so, and its
//! certificate refused from then on by the endpoint (`ferry_net::Endpoint::refuse`): a connection
//! from it, at any address, is closed as soon as TLS proves who it is, before the node sees it.
//! Nothing is deleted: files, versions, indexes, notes and transfers stay.
//!
//! On the removed device: it learns it at once if connected (the close carries the remover's
//! name), otherwise at its next dial. It records "removed by NAME", unpairs the remover and drops
//! it from its shares, so it stops dialing it and stops syncing with it; its files stay.
//!
//! Only a deliberate pairing lifts either state: the refusal is cleared when a pairing this
//! device asked for, or accepted, completes (`peer::mark_paired`).

use std::sync::Arc;

use ferry_proto::DeviceId;
use ferry_store::{PromptKind, RemovalRecord, RemovedBy};

use crate::api::ApiResult;
use crate::clock::now_ms;
use crate::context::Context;
use crate::events::Event;

/// Re-arms the endpoint's refusals from the store (at start): a removed device stays refused
/// across restarts.
pub(crate) async fn restore(inner: &Arc<Context>) -> ApiResult<()> {
    inner.endpoint.set_refusal_notice(&inner.hello().name);
    for r in inner.db(|s| s.removals()).await? {
        if r.by == RemovedBy::Us {
            inner.endpoint.refuse(r.device);
        }
    }
    refresh_admission(inner).await;
    Ok(())
}

/// Tells the endpoint where the paired devices are (their last known and static addresses):
/// attempts from there always get a handshake, others share a small budget (ferry-net's
/// `admit.rs`). Called whenever those change: start, a connection, a pairing, a removal.
pub(crate) async fn refresh_admission(inner: &Arc<Context>) {
    let Ok(devices) = inner.db(|s| s.devices()).await else { return };
    let known = devices
        .iter()
        .filter(|d| d.paired)
        .flat_map(|d| d.addresses.iter().chain(d.static_addresses.iter()))
        .filter_map(|a| a.parse().ok())
        .collect();
    inner.endpoint.set_known_addresses(known);
}

/// Withdraws the trust of `id` on this device (the user removed it).
pub(crate) async fn remove(inner: &Arc<Context>, id: DeviceId, name: &str) -> ApiResult<()> {
    // Refused first: from here on no new connection from it reaches the node, and one already
    // past the endpoint is closed by `attach`, which checks this after registering its link.
    inner.endpoint.refuse(id);
    withdraw(inner, id, RemovedBy::Us).await?;
    if let Some(peer) = inner.peer(&id) {
        peer.conn.close_removed(&inner.hello().name);
    }
    tracing::info!(peer = %id.short(), %name, "removed the device: its certificate is refused from now on");
    inner.emit(Event::DeviceRemoved { device: id.to_string(), name: name.to_string(), by: None });
    Ok(())
}

/// `id` told us (a close under its TLS session) that it removed this device, under the name
/// `by`. Only a device paired here is taken at its word: anyone else had no trust to withdraw.
pub(crate) async fn removed_by(inner: &Arc<Context>, id: DeviceId, by: String) {
    let paired = matches!(inner.db(move |s| s.device(&id)).await, Ok(Some(d)) if d.paired);
    if !paired {
        return;
    }
    if let Err(e) = withdraw(inner, id, RemovedBy::Them { name: by.clone() }).await {
        tracing::warn!(peer = %id.short(), "could not record that {by} removed this device: {}", e.message);
        return;
    }
    if let Some(peer) = inner.peer(&id) {
        peer.conn.close("removed");
    }
    tracing::warn!(peer = %id.short(), "{by} removed this device: no longer syncing with it (files kept)");
    inner.emit(Event::DeviceRemoved { device: id.to_string(), name: by.clone(), by: Some(by) });
}

/// Forgets a removal once a deliberate pairing with `id` completed.
pub(crate) async fn clear(inner: &Arc<Context>, id: DeviceId) -> ApiResult<()> {
    inner.db(move |s| s.clear_removal(&id)).await?;
    inner.endpoint.allow(&id);
    Ok(())
}

/// The store change (one transaction) and what follows from it in memory: share actors get
/// their new members (and look again at what to pull), dropped prompts are resolved.
async fn withdraw(inner: &Arc<Context>, id: DeviceId, by: RemovedBy) -> ApiResult<()> {
    let record = RemovalRecord { device: id, removed_ms: now_ms(), by };
    let changes = inner.db(move |s| s.record_removal(&record)).await?;
    refresh_admission(inner).await;
    for share in &changes.shares {
        inner.refresh_members(share);
        if let Some(h) = inner.shares.lock().unwrap().get(&share.id) {
            h.request_pull();
        }
    }
    for p in changes.prompts {
        match p.kind {
            PromptKind::Pair { .. } => {
                if let Some(tx) = inner.pair_waiters.lock().unwrap().remove(&p.id) {
                    let _ = tx.send(false);
                }
            }
            // Declined, so the transfer is kept as rejected rather than left half-offered.
            PromptKind::SendOffer { transfer, .. } => {
                let _ = crate::send::answer(inner, id, transfer, false).await;
            }
            PromptKind::ShareOffer { .. } | PromptKind::MassDelete { .. } => {}
        }
        inner.emit(Event::PromptResolved { id: p.id, accepted: false });
    }
    Ok(())
}
