//! The sender serves block requests for exactly the files it offered, re-checking the source
//! on every read.

use super::*;
use ferry_engine::send::{BlockAnswer, block_answer};

/// Serves one chunk of an accepted send, after checking the source is what was offered.
pub(crate) async fn on_block(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    id: TransferId,
    file: u32,
    offset: u64,
    len: u32,
    hash: ChunkHash,
) -> Message {
    let cached = inner.sends.offered.lock().unwrap().get(&id).cloned();
    let t = match cached {
        Some(t) => t,
        None => {
            let Ok(Some(t)) = inner.db(move |s| s.transfer(&id)).await else {
                return Message::Error { code: WireError::NotFound, message: "no such transfer".into() };
            };
            let t = Arc::new(t);
            if matches!(t.state, TransferState::Offered | TransferState::Active) {
                inner.sends.offered.lock().unwrap().insert(id, t.clone());
            }
            t
        }
    };
    if t.peer != peer.id || !t.outgoing {
        return Message::Error { code: WireError::NotFound, message: "no such transfer".into() };
    }
    match block_answer(&engine_state(&t.state)) {
        BlockAnswer::Serve => {}
        // The accept raced ahead of its update.
        BlockAnswer::ActivateAndServe => {
            set_state(inner, id, SendEvent::BlockRequested, None).await;
        }
        // A failed send says why (another block found the source changed), whichever of the
        // concurrent answers reaches the receiver first.
        BlockAnswer::Refuse(message) => return Message::Error { code: WireError::Refused, message },
    }
    let (Some(f), Some(src)) = (t.files.get(file as usize), t.sources.get(file as usize)) else {
        return Message::Error { code: WireError::BadRequest, message: "no such file in this send".into() };
    };
    if len == 0 || len > MAX_BLOCK || offset.checked_add(u64::from(len)).is_none_or(|end| end > f.size) {
        return Message::Error { code: WireError::BadRequest, message: "bad block range".into() };
    }
    let (src, size, mtime) = (PathBuf::from(src), f.size, f.mtime_ns);
    let read = tokio::task::spawn_blocking(move || -> Result<Option<Vec<u8>>, String> {
        // Tests hold a send mid-way here (tests/tests/send.rs, an interrupted send); the held
        // requests are then dropped unanswered, as a dead connection drops them, so they never
        // count as sent.
        if !crate::fault::pass("send.serve_block") {
            return Ok(None);
        }
        let file = std::fs::File::open(&src).map_err(|e| format!("{}: {e}", src.display()))?;
        let m = file.metadata().map_err(|e| format!("{}: {e}", src.display()))?;
        if m.len() != size || mtime_ns(&m) != mtime {
            return Err(format!("{} changed since it was offered", src.display()));
        }
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, offset).map_err(|e| format!("{}: {e}", src.display()))?;
        if ChunkHash::of(&buf) != hash {
            return Err(format!("{} changed since it was offered", src.display()));
        }
        Ok(Some(buf))
    })
    .await;
    match read {
        Ok(Ok(None)) => Message::Error { code: WireError::Internal, message: "request abandoned".into() },
        Ok(Ok(Some(data))) => {
            inner.sends.with_live(id, |l| l.wire += data.len() as u64);
            Message::Block { data }
        }
        Ok(Err(e)) => {
            let msg = format!("the send failed: {e}");
            tracing::warn!(peer = %peer.id.short(), "{msg}");
            set_state(inner, id, SendEvent::Failed(msg.clone()), None).await;
            Message::Error { code: WireError::NotFound, message: msg }
        }
        Err(e) => Message::Error { code: WireError::Internal, message: e.to_string() },
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery on connect
