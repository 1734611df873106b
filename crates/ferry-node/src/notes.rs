//! Quick notes between paired devices: the outbox, delivery on connect, read receipts and
//! muting. A note is stored before anything is sent, so it survives restarts; delivery to a
//! device runs one flush at a time, in the order the notes were stored, awaiting each answer.

use std::sync::Arc;
use std::time::Duration;

use ferry_proto::wire::{ErrorCode as WireError, MAX_NOTE, Message};
use ferry_proto::{DeviceId, NoteId};
use ferry_store::{NoteRecord, NoteState};

use crate::api::*;
use crate::context::{ApiResult, Context};
use crate::events::Event;
use crate::link::PeerLink;

/// Time for a peer to answer a note or a read receipt.
const NOTE_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn note_hex(id: &NoteId) -> String {
    id.0.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn check_len(text: &str) -> Result<(), String> {
    if text.len() > MAX_NOTE {
        return Err(format!("note is {} bytes; the limit is {MAX_NOTE}", text.len()));
    }
    Ok(())
}

pub(crate) async fn dto(inner: &Arc<Context>, n: &NoteRecord) -> ApiResult<NoteDto> {
    let peer = n.peer;
    let peer_name = inner.db(move |s| s.device(&peer)).await?.map(|d| d.name).unwrap_or_else(|| peer.short());
    let (from, to) = if n.outgoing { (inner.id, n.peer) } else { (n.peer, inner.id) };
    Ok(NoteDto {
        id: note_hex(&n.id),
        from: from.to_string(),
        to: to.to_string(),
        peer: n.peer.to_string(),
        peer_name,
        outgoing: n.outgoing,
        text: n.text.clone(),
        sent_at: n.sent_at_ms,
        state: n.state.as_str().into(),
        refused: match &n.state {
            NoteState::Refused(m) => Some(m.clone()),
            _ => None,
        },
    })
}

pub(crate) fn emit_state(inner: &Context, id: &NoteId, state: &NoteState) {
    inner.emit(Event::NoteState { id: note_hex(id), state: state.as_str().into() });
}

/// Starts delivering what waits for `device` (queued notes, then read receipts), if connected.
pub(crate) fn flush_soon(inner: &Arc<Context>, device: DeviceId) {
    if let Some(peer) = inner.peer(&device) {
        let i = inner.clone();
        inner.spawn(async move { flush(&i, &peer).await });
    }
}

/// Delivers the outbox for `peer` in order, one note at a time, then pending read receipts.
/// Stops at the first network failure; the rest waits for the next connection.
pub(crate) async fn flush(inner: &Arc<Context>, peer: &Arc<PeerLink>) {
    let lock = inner.note_flush.lock().unwrap().entry(peer.id).or_default().clone();
    let _guard = lock.lock().await;
    let pid = peer.id;
    let Ok(notes) = inner.db(move |s| s.notes(Some(&pid))).await else { return };
    for n in notes.iter().filter(|n| n.outgoing && n.state == NoteState::Queued) {
        let msg = Message::Note { id: n.id, sent_at: n.sent_at_ms, text: n.text.clone() };
        let state = match peer.conn.request(&msg, NOTE_TIMEOUT).await {
            Ok(Message::NoteAck { id }) if id == n.id => NoteState::Delivered,
            Ok(Message::Error { message, .. }) => NoteState::Refused(message),
            Ok(_) => return,
            Err(e) => {
                tracing::info!(peer = %peer.id.short(), "note delivery failed: {e}");
                return;
            }
        };
        let (id, st) = (n.id, state.clone());
        // The receipt may have raced ahead of this update (read before we marked it delivered).
        let res = inner
            .db(move |s| match s.note(&id)? {
                Some(cur) if cur.state == NoteState::Queued => s.set_note_state(&id, st, false).map(Some),
                _ => Ok(None),
            })
            .await;
        if let Ok(Some(_)) = res {
            emit_state(inner, &n.id, &state);
        }
    }
    for n in notes.iter().filter(|n| !n.outgoing && n.receipt_pending) {
        match peer.conn.request(&Message::NoteRead { id: n.id }, NOTE_TIMEOUT).await {
            Ok(Message::Ack) | Ok(Message::Error { .. }) => {
                let id = n.id;
                let _ = inner.db(move |s| s.set_note_state(&id, NoteState::Read, false)).await;
            }
            Ok(_) => return,
            Err(e) => {
                tracing::info!(peer = %peer.id.short(), "read receipt failed: {e}");
                return;
            }
        }
    }
}

/// Answers a note from a paired peer: refused if muted or malformed, else stored once and acked.
pub(crate) async fn on_note(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    id: NoteId,
    sent_at: i64,
    text: String,
) -> Message {
    if let Err(e) = check_len(&text) {
        return Message::Error { code: WireError::BadRequest, message: e };
    }
    let pid = peer.id;
    let (dev, muted) = match inner.db(move |s| Ok((s.device(&pid)?, s.is_muted(&pid)?))).await {
        Ok(x) => x,
        Err(e) => return Message::Error { code: WireError::Internal, message: e.message },
    };
    let Some(dev) = dev.filter(|d| d.paired) else {
        return Message::Error { code: WireError::NotPaired, message: "this device is not paired with you".into() };
    };
    if muted {
        return Message::Error {
            code: WireError::Refused,
            message: format!("{} does not accept notes from this device", inner.hello().name),
        };
    }
    let rec = NoteRecord {
        id,
        peer: pid,
        outgoing: false,
        sent_at_ms: sent_at,
        text: text.clone(),
        state: NoteState::Unread,
        receipt_pending: false,
        order: 0,
    };
    let stored = inner.db(move |s| s.add_note(&rec)).await;
    crate::crash::point("note.stored");
    match stored {
        Ok(true) => {
            inner.emit(Event::NoteReceived { id: note_hex(&id), from: pid.to_string(), from_name: dev.name, text });
        }
        Ok(false) => {}
        Err(e) => return Message::Error { code: WireError::Internal, message: e.message },
    }
    Message::NoteAck { id }
}

/// The peer's user opened a note we sent it.
pub(crate) async fn on_note_read(inner: &Arc<Context>, peer: &Arc<PeerLink>, id: NoteId) -> Message {
    let pid = peer.id;
    let res = inner
        .db(move |s| match s.note(&id)? {
            Some(n) if n.outgoing && n.peer == pid && n.state != NoteState::Read => {
                s.set_note_state(&id, NoteState::Read, false).map(Some)
            }
            _ => Ok(None),
        })
        .await;
    if let Ok(Some(_)) = res {
        emit_state(inner, &id, &NoteState::Read);
    }
    Message::Ack
}
