//! What devices that are not Ferry devices (KDE Connect and LocalSend devices, phones mostly)
//! share: they get notes and one-shot sends, never a share, and what they send goes through
//! the same checks: a plain file name, room on the Inbox's disk promised before a byte is
//! written, a note's length cap and the device's mute.

use std::sync::Arc;

use ferry_proto::wire::MAX_NOTE;
use ferry_proto::{DeviceId, NoteId, RelPath};
use ferry_store::{NoteRecord, NoteState};

use crate::clock::now_ms;
use crate::context::Context;
use crate::events::Event;
use crate::notes::note_hex;
use crate::transfers::Reservation;

/// Space left free on the Inbox's disk beyond incoming files: the database, the logs and the
/// rest of the system need some, and a disk filled to its last byte fails in odd places.
const SPACE_RESERVE: u64 = 256 << 20;

/// Checks a file name a device offers: one plain name (no folder, no `..`), as the Inbox takes
/// it. Returns it as a path of one component.
pub(crate) fn check_name(name: &str) -> Result<RelPath, String> {
    if name.contains('/') || name == "." || name == ".." || name.is_empty() {
        return Err(format!("{name:?} is not a plain file name"));
    }
    let p = RelPath::new(name).map_err(|e| format!("{name:?}: {e}"))?;
    if p.as_str().starts_with(ferry_proto::TEMP_PREFIX) {
        return Err(format!("{name:?} is a name Ferry reserves"));
    }
    Ok(p)
}

/// Checks a path a device offers for a file of a folder it sends (LocalSend sends a folder's
/// files as `folder/sub/name`): relative, no `..`, no empty or reserved part, no backslash or
/// control character (a Windows-style `..\\x` is refused, not taken as a name).
pub(crate) fn check_path(name: &str) -> Result<RelPath, String> {
    if name.chars().any(|c| c == '\\' || c.is_control()) {
        return Err(format!("{name:?} is not a plain relative path"));
    }
    RelPath::new(name).map_err(|e| format!("{name:?}: {e}"))
}

/// The file is fetched before the user answers (the device serves it only while it waits), so
/// one that does not fit on the Inbox's disk, beside those being fetched and a reserve, is
/// refused before a byte is written: no device can fill the disk without anyone saying yes.
pub(crate) async fn reserve_space(inner: &Arc<Context>, size: u64) -> Result<Reservation, String> {
    let inbox = inner.cfg.inbox.clone();
    let free = tokio::task::spawn_blocking(move || ferry_fs::available_space(&inbox))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot tell the Inbox's free space: {e}"))?;
    let fits = |fetching: u64| {
        let need = size.saturating_add(fetching).saturating_add(SPACE_RESERVE);
        (need <= free).then_some(fetching + size)
    };
    let order = std::sync::atomic::Ordering::SeqCst;
    match inner.sends.promised.fetch_update(order, order, fits) {
        Ok(_) => Ok(Reservation::new(inner.sends.promised.clone(), size)),
        Err(fetching) => Err(format!(
            "a file of {size} bytes does not fit: the Inbox's disk has {free} bytes free, {fetching} of them promised \
             to files being received, and {SPACE_RESERVE} are kept free"
        )),
    }
}

/// Stores a received note (unread) and announces it; refused when too long or muted.
pub(crate) async fn receive_note(inner: &Arc<Context>, id: DeviceId, text: String) {
    if text.len() > MAX_NOTE {
        tracing::warn!(bytes = text.len(), "refused a note over {MAX_NOTE} bytes");
        return;
    }
    let (dev, muted) = match inner.db(move |s| Ok((s.device(&id)?, s.is_muted(&id)?))).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!("{e}");
            return;
        }
    };
    if muted {
        tracing::info!("note from a muted device dropped");
        return;
    }
    let rec = NoteRecord {
        id: NoteId(rand::random()),
        peer: id,
        outgoing: false,
        sent_at_ms: now_ms(),
        text: text.clone(),
        state: NoteState::Unread,
        receipt_pending: false,
        order: 0,
    };
    let nid = rec.id;
    match inner.db(move |s| s.add_note(&rec)).await {
        Ok(_) => inner.emit(Event::NoteReceived {
            id: note_hex(&nid),
            from: id.to_string(),
            from_name: dev.map(|d| d.name).unwrap_or_default(),
            text,
        }),
        Err(e) => tracing::warn!("note not stored: {e}"),
    }
}
