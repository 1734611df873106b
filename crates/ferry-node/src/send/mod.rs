//! One-shot file sends between paired devices (`ferry send DEVICE FILE...`), without a share.
//!
//! Sender: [`Node::send`] walks the files and folders, chunks every file (FastCDC + BLAKE3, as
//! shares do) and stores a [`TransferRecord`] (state `queued`) before anything is sent. The
//! offer ([`Message::SendOffer`]) goes out when the device is connected (now, or on its next
//! connection); the sender then serves [`Message::SendBlockRequest`]s for exactly the files it
//! offered, checking on every read that the source still has the size, mtime and chunk hash it
//! had when offered (otherwise the send fails cleanly: nothing half-old, half-new arrives).
//!
//! Receiver: an offer is validated (paths, sizes, counts, chunk lists), refused if the device
//! is muted or asks too often (see [`crate::limits`]), and recorded; it raises a prompt unless
//! auto-accept is on for that device. Once accepted, the receiver pulls the chunks (16 in
//! flight), verifies each chunk's hash and then each whole file's hash, into a staging folder
//! `.ferry-tmp-send-<id>` inside the inbox. When everything is there and fsynced, each top-level
//! item is moved into the inbox under a name nothing uses yet (` (1)`, ` (2)`... before the
//! extension), which never overwrites: files are hard-linked (fails if the name exists),
//! folders take an empty directory first and are renamed onto it. Then the inbox is fsynced.
//!
//! Resume: the staging folder and the record survive a dropped connection or a restart of
//! either side. When the devices meet again the receiver re-reads what it already has, keeps
//! every chunk whose hash matches and fetches only the rest.
//!
//! Updates (accepted, rejected, progress, done, failed) travel as [`Message::SendUpdate`]; a
//! final one that could not be delivered waits in the record (`notify`) for the next connection.

use std::collections::{BTreeSet, HashSet};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_engine::send::{SendEvent, SendState, transition};
use ferry_proto::wire::{
    ErrorCode as WireError, MAX_BLOCK, MAX_SEND_BYTES, MAX_SEND_DIRS, MAX_SEND_FILES, Message, SendFile, SendUpdate,
};
use ferry_proto::{ChunkHash, DeviceId, RelPath, TEMP_PREFIX, TransferId};
use ferry_store::{PromptKind, TransferRecord, TransferState};
use futures::StreamExt;

use crate::api::*;
use crate::clock::now_ms;
use crate::context::{ApiResult, Context, add_prompt};
use crate::events::Event;
use crate::link::PeerLink;

/// Chunk requests in flight per transfer: enough to fill a LAN link with 256 KiB chunks.
const PARALLEL_BLOCKS: usize = 16;
/// Time for a peer to answer an offer, an update or a block request.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Names shown in a prompt.
const PROMPT_NAMES: usize = 5;
/// Recent transfers listed by `ferry transfers` (active ones are always listed).
pub(crate) const RECENT: usize = 50;

mod offer;
mod place;
mod prepare;
mod receive;
mod serve;
#[cfg(test)]
mod tests;

pub(crate) use offer::{on_offer, on_update};
pub(crate) use place::{place, placed_before};
pub(crate) use prepare::mtime_ns;
pub(crate) use prepare::{collect, describe_files};
pub(crate) use receive::remove_staging;
use receive::start_receive;
pub(crate) use serve::on_block;
#[cfg(test)]
use {offer::check_offer, place::candidate};

/// The store's transfer state as the engine's send state machine sees it (one to one).
fn engine_state(s: &TransferState) -> SendState {
    match s {
        TransferState::Queued => SendState::Queued,
        TransferState::Offered => SendState::Offered,
        TransferState::Active => SendState::Active,
        TransferState::Done => SendState::Done,
        TransferState::Rejected(m) => SendState::Rejected(m.clone()),
        TransferState::Failed(m) => SendState::Failed(m.clone()),
    }
}

/// The engine's send state as the store keeps it (one to one).
fn store_state(s: SendState) -> TransferState {
    match s {
        SendState::Queued => TransferState::Queued,
        SendState::Offered => TransferState::Offered,
        SendState::Active => TransferState::Active,
        SendState::Done => TransferState::Done,
        SendState::Rejected(m) => TransferState::Rejected(m),
        SendState::Failed(m) => TransferState::Failed(m),
    }
}

fn direction(t: &TransferRecord) -> &'static str {
    if t.outgoing { "out" } else { "in" }
}

fn state_message(s: &TransferState) -> Option<String> {
    match s {
        TransferState::Rejected(m) | TransferState::Failed(m) => Some(m.clone()),
        _ => None,
    }
}

/// Top-level names of a send, in order of first appearance.
pub(crate) fn top_names(t: &TransferRecord) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for p in t.files.iter().map(|f| &f.path).chain(t.dirs.iter()) {
        let top = p.as_str().split('/').next().unwrap_or("").to_string();
        if seen.insert(top.clone()) {
            out.push(top);
        }
    }
    out
}

pub(crate) fn staging_dir(inner: &Context, id: &TransferId) -> PathBuf {
    inner.cfg.inbox.join(format!("{TEMP_PREFIX}send-{}", id.to_hex()))
}

pub(crate) async fn dto(inner: &Arc<Context>, t: &TransferRecord) -> ApiResult<TransferDto> {
    let peer = t.peer;
    let device_name = inner.db(move |s| s.device(&peer)).await?.map(|d| d.name).unwrap_or_else(|| peer.short());
    let (done, wire, resumed, rate) = {
        let live = inner.sends.live.lock().unwrap();
        match live.get(&t.id) {
            Some(l) if !t.state.is_final() => (l.done.max(t.done_bytes), l.wire, l.resumed, l.rate()),
            Some(l) => (t.done_bytes, l.wire, l.resumed, 0.0),
            None => (t.done_bytes, 0, 0, 0.0),
        }
    };
    Ok(TransferDto {
        id: t.id.to_hex(),
        device: t.peer.to_string(),
        device_name,
        direction: direction(t).into(),
        files: t.files.len() as u64,
        names: top_names(t),
        bytes_done: done,
        bytes_total: t.total_bytes(),
        state: t.state.as_str().into(),
        message: state_message(&t.state),
        rate,
        created_ms: t.created_ms,
        finished_ms: t.finished_ms,
        wire_bytes: wire,
        resumed_bytes: resumed,
        placed: t.placed.iter().map(|(_, to)| inner.cfg.inbox.join(to).display().to_string()).collect(),
    })
}

pub(crate) fn emit_state(inner: &Context, t: &TransferRecord) {
    inner.emit(Event::SendState {
        id: t.id.to_hex(),
        device: t.peer.to_string(),
        direction: direction(t).into(),
        state: t.state.as_str().into(),
        message: state_message(&t.state),
    });
}

pub(crate) fn emit_progress(inner: &Context, t: &TransferRecord, done: u64, rate: f64) {
    inner.emit(Event::SendProgress {
        id: t.id.to_hex(),
        device: t.peer.to_string(),
        direction: direction(t).into(),
        done,
        total: t.total_bytes(),
        bytes_per_sec: rate,
    });
}

/// Feeds `event` to the transfer's state machine ([`ferry_engine::send::transition`]) inside
/// one store update, and announces the change. Returns the record if its state changed (a
/// final state never changes; an event the state ignores changes nothing).
pub(crate) async fn set_state(
    inner: &Arc<Context>,
    id: TransferId,
    event: SendEvent,
    notify: Option<SendUpdate>,
) -> Option<TransferRecord> {
    let changed = inner
        .db(move |s| {
            let mut changed = false;
            let t = s.update_transfer(&id, |t| {
                let Some(next) = transition(&engine_state(&t.state), &event) else { return false };
                if next == SendState::Done {
                    t.done_bytes = t.total_bytes();
                }
                if next.is_final() {
                    t.finished_ms = Some(now_ms());
                }
                t.state = store_state(next);
                if notify.is_some() {
                    t.notify = notify;
                }
                changed = true;
                true
            })?;
            Ok(changed.then_some(t))
        })
        .await
        .ok()
        .flatten();
    if let Some(t) = &changed {
        inner.sends.offered.lock().unwrap().remove(&t.id);
        emit_state(inner, t);
    }
    changed
}

/// Peer text we keep or show is bounded.
fn bounded(mut m: String) -> String {
    const MAX: usize = 512;
    if m.len() > MAX {
        let mut end = MAX;
        while !m.is_char_boundary(end) {
            end -= 1;
        }
        m.truncate(end);
    }
    m
}

pub(crate) async fn remove_prompt_for(inner: &Arc<Context>, id: TransferId) {
    let Ok(prompts) = inner.db(|s| s.prompts()).await else { return };
    for p in prompts {
        if matches!(&p.kind, PromptKind::SendOffer { transfer, .. } if *transfer == id) {
            let pid = p.id;
            let _ = inner.db(move |s| s.remove_prompt(pid)).await;
            inner.emit(Event::PromptResolved { id: pid, accepted: false });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sender: serving blocks

/// Starts [`flush`] for `device` if it is connected.
pub(crate) fn flush_soon(inner: &Arc<Context>, device: DeviceId) {
    if let Some(peer) = inner.peer(&device) {
        let i = inner.clone();
        inner.spawn(async move { flush(&i, &peer).await });
    }
}

/// Everything that waits for `peer`: queued offers (sender), unacknowledged updates
/// (receiver), then accepted incoming sends, which (re)start pulling.
pub(crate) async fn flush(inner: &Arc<Context>, peer: &Arc<PeerLink>) {
    let lock = inner.sends.flush.lock().unwrap().entry(peer.id).or_default().clone();
    let _guard = lock.lock().await;
    let pid = peer.id;
    let Ok(all) = inner.db(|s| s.transfers()).await else { return };
    let mine: Vec<TransferRecord> = all.into_iter().filter(|t| t.peer == pid).collect();
    for t in mine.iter().filter(|t| t.outgoing && t.state == TransferState::Queued) {
        let msg = Message::SendOffer { id: t.id, files: t.files.clone(), dirs: t.dirs.clone() };
        match peer.conn.request(&msg, SEND_TIMEOUT).await {
            Ok(Message::Ack) => {
                set_state(inner, t.id, SendEvent::OfferDelivered, None).await;
            }
            Ok(Message::Error { message, .. }) => {
                set_state(inner, t.id, SendEvent::OfferRefused(bounded(message)), None).await;
            }
            Ok(_) => return,
            Err(e) => {
                tracing::info!(peer = %pid.short(), "send offer delivery failed: {e}");
                return;
            }
        }
    }
    for t in mine.iter().filter(|t| !t.outgoing) {
        let id = t.id;
        // Re-read: the record may have changed since the list was taken.
        let Ok(Some(cur)) = inner.db(move |s| s.transfer(&id)).await else { continue };
        if let Some(update) = cur.notify.clone() {
            let msg = Message::SendUpdate { id, update: update.clone() };
            match peer.conn.request(&msg, SEND_TIMEOUT).await {
                Ok(Message::Ack) | Ok(Message::Error { .. }) => {
                    let _ = inner
                        .db(move |s| {
                            s.update_transfer(&id, |t| {
                                if t.notify.as_ref() == Some(&update) {
                                    t.notify = None;
                                    true
                                } else {
                                    false
                                }
                            })
                        })
                        .await;
                }
                Ok(_) => return,
                Err(e) => {
                    tracing::info!(peer = %pid.short(), "send update delivery failed: {e}");
                    return;
                }
            }
        }
        if cur.state == TransferState::Active {
            start_receive(inner, peer, id);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Receiver: pulling, verifying, placing

/// The user answered a send prompt.
pub(crate) async fn answer(inner: &Arc<Context>, device: DeviceId, id: TransferId, accept: bool) -> ApiResult<()> {
    let changed = if accept {
        set_state(inner, id, SendEvent::UserAccepted, Some(SendUpdate::Accepted)).await
    } else {
        let why = format!("{} declined the send", inner.cfg.name);
        set_state(inner, id, SendEvent::UserDeclined(why.clone()), Some(SendUpdate::Rejected(why))).await
    };
    if changed.is_none() {
        let cur = inner.db(move |s| s.transfer(&id)).await?;
        let state = cur.map(|t| t.state.as_str()).unwrap_or("gone");
        return Err(ApiError::new(ErrorCode::Conflict, format!("this send is already {state}")));
    }
    flush_soon(inner, device);
    Ok(())
}
