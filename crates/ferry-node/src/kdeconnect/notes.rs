//! Notes with KDE Connect devices. Out: a note becomes a `kdeconnect.ping` carrying the text,
//! which the device shows as a notification. In: a ping (with its message, or KDE Connect's
//! own "Ping!") and shared text or a link become received notes.
//!
//! "Delivered" for a KDE Connect device means the ping was written to its encrypted connection:
//! the protocol has no acknowledgement and no read receipt, so a note to it never becomes
//! "read", and reading its notes sends nothing back.

use std::sync::Arc;

use ferry_kdeconnect::Packet;
use ferry_proto::DeviceId;
use ferry_store::NoteState;
use serde_json::json;

use crate::context::Context;
use crate::notes::emit_state;

use super::wire::PING;

/// What KDE Connect itself shows for a ping without a message.
const BARE_PING: &str = "Ping!";

/// Starts delivering the notes queued for `id` if it is connected.
pub(crate) fn flush_soon(inner: &Arc<Context>, id: DeviceId) {
    if inner.kde.link(&id).is_some() {
        let i = inner.clone();
        inner.spawn(async move { flush(&i, id).await });
    }
}

/// Sends queued notes in order, one flush per device at a time (the same lock as Ferry
/// devices' notes), and drops read receipts, which KDE Connect has no packet for.
async fn flush(inner: &Arc<Context>, id: DeviceId) {
    let lock = inner.note_flush.lock().unwrap().entry(id).or_default().clone();
    let _guard = lock.lock().await;
    let Ok(notes) = inner.db(move |s| s.notes(Some(&id))).await else { return };
    for n in notes.iter().filter(|n| n.outgoing && n.state == NoteState::Queued) {
        let Some(link) = inner.kde.link(&id) else { return };
        let packet = Packet::new(PING, json!({ "message": n.text }));
        if link.tx.send(packet).await.is_err() {
            return;
        }
        let nid = n.id;
        let res = inner.db(move |s| s.set_note_state(&nid, NoteState::Delivered, false)).await;
        if res.is_ok() {
            emit_state(inner, &n.id, &NoteState::Delivered);
        }
    }
    for n in notes.iter().filter(|n| !n.outgoing && n.receipt_pending) {
        let nid = n.id;
        let _ = inner.db(move |s| s.set_note_state(&nid, NoteState::Read, false)).await;
    }
}

/// A `kdeconnect.ping` from a paired device.
pub(super) async fn on_ping(inner: &Arc<Context>, id: DeviceId, p: &Packet) {
    let text = match p.body.get("message") {
        None => BARE_PING.to_string(),
        Some(v) => match v.as_str() {
            Some(s) if !s.is_empty() => s.to_string(),
            Some(_) => BARE_PING.to_string(),
            None => {
                tracing::info!("ping whose message is not text; ignored");
                return;
            }
        },
    };
    crate::foreign::receive_note(inner, id, text).await
}

/// Shared text or a link (`kdeconnect.share.request` with `text` or `url`).
pub(super) async fn on_shared_text(inner: &Arc<Context>, id: DeviceId, p: &Packet) {
    let text = ["text", "url"].iter().find_map(|k| p.body.get(*k).and_then(|v| v.as_str()).map(str::to_string));
    match text {
        Some(t) if !t.is_empty() => crate::foreign::receive_note(inner, id, t).await,
        _ => tracing::info!("share request with neither text, link nor file; ignored"),
    }
}
