//! The facade for notes and muting.

use crate::api::*;
use crate::context::ApiResult;

use crate::clock::now_ms;
use crate::notes::{check_len, dto, emit_state, note_hex};
use ferry_proto::NoteId;
use ferry_store::{NoteRecord, NoteState};

use super::Node;

impl Node {
    /// Stores a note for a paired device (state `queued`) and starts delivering it.
    pub async fn note_send(&self, req: NoteSendDto) -> ApiResult<NoteDto> {
        let inner = &self.inner;
        check_len(&req.text).map_err(ApiError::bad)?;
        let dev = super::resolve_target(inner, &req.device).await?;
        let ls = crate::localsend::is_localsend(inner, dev.id).await?;
        if !dev.paired && !ls {
            return Err(ApiError::bad(format!("{} is not paired; pair it first", dev.name)));
        }
        if ls {
            crate::localsend::set_pin(inner, dev.id, req.pin.clone());
        }
        let rec = NoteRecord {
            id: NoteId(rand::random()),
            peer: dev.id,
            outgoing: true,
            sent_at_ms: now_ms(),
            text: req.text,
            state: NoteState::Queued,
            receipt_pending: false,
            order: 0,
        };
        let r = rec.clone();
        inner.db(move |s| s.add_note(&r)).await?;
        let out = dto(inner, &rec).await?;
        flush_soon(inner, dev.id);
        Ok(out)
    }

    /// Every note (or the conversation with one device), in the order stored.
    pub async fn notes(&self, q: NotesQuery) -> ApiResult<Vec<NoteDto>> {
        let inner = &self.inner;
        let peer = match &q.device {
            Some(d) => Some(inner.resolve_device(d).await?.id),
            None => None,
        };
        let notes = inner.db(move |s| s.notes(peer.as_ref())).await?;
        let mut out = Vec::with_capacity(notes.len());
        for n in &notes {
            out.push(dto(inner, n).await?);
        }
        Ok(out)
    }

    /// Marks a received note read (ID: full id or unique prefix) and sends the read receipt.
    pub async fn note_read(&self, id: &str) -> ApiResult<NoteDto> {
        let inner = &self.inner;
        let arg = id.to_ascii_lowercase();
        let all = inner.db(|s| s.notes(None)).await?;
        let found: Vec<&NoteRecord> =
            all.iter().filter(|n| !arg.is_empty() && note_hex(&n.id).starts_with(&arg)).collect();
        let note = match found.len() {
            1 => found[0].clone(),
            0 => return Err(ApiError::not_found(format!("no note matches {id:?} (see `ferry notes`)"))),
            _ => return Err(ApiError::new(ErrorCode::Ambiguous, format!("{id:?} matches several notes"))),
        };
        if note.outgoing {
            return Err(ApiError::bad("that note was sent from this device; only received notes can be read"));
        }
        if note.state == NoteState::Read {
            return dto(inner, &note).await;
        }
        let nid = note.id;
        let rec = inner.db(move |s| s.set_note_state(&nid, NoteState::Read, true)).await?;
        emit_state(inner, &nid, &NoteState::Read);
        flush_soon(inner, rec.peer);
        dto(inner, &rec).await
    }

    /// Mutes (notes from it are refused) or unmutes a device.
    pub async fn device_mute(&self, device: &str, muted: bool) -> ApiResult<DeviceMuteDto> {
        let inner = &self.inner;
        let dev = inner.resolve_device(device).await?;
        let id = dev.id;
        inner.db(move |s| s.set_muted(&id, muted)).await?;
        Ok(DeviceMuteDto { device: dev.id.to_string(), name: dev.name, muted })
    }
}

/// Starts delivering what waits for `device` (notes, receipts) on whichever link reaches it.
fn flush_soon(inner: &std::sync::Arc<crate::context::Context>, device: ferry_proto::DeviceId) {
    if inner.kde.link(&device).is_some() {
        crate::kdeconnect::flush_notes_soon(inner, device);
    } else if inner.ls.nearby(&device).is_some() {
        crate::localsend::flush_soon(inner, device);
    } else {
        crate::notes::flush_soon(inner, device);
    }
}
