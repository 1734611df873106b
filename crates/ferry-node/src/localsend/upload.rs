//! Uploads from a LocalSend device into the incoming session (`receive.rs` holds the session):
//! each file checked against the session (its id, the file's token, the sender's certificate,
//! the size offered), streamed into the transfer's staging folder inside the Inbox, hashed on
//! the way (SHA-256 checked when the sender gave one) and fsynced. When the last file is in,
//! each top-level entry is placed in the Inbox under a name nothing uses (never overwriting),
//! the Inbox fsynced, and the transfer done. The session's own sender breaking the protocol
//! ends the session: nothing it sent is kept.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ferry_engine::send::SendEvent;
use ferry_localsend::{Peer, UploadBody, UploadReply};
use ferry_proto::TransferId;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::context::Context;
use crate::send::{emit_progress, place, placed_before, set_state, staging_dir};

use super::session::{SessionGuard, device_name, end_session, peer_device, peer_is};

/// One file's upload: checked against the session (id, token, the sender's certificate, the
/// size it offered), streamed into staging, hashed, fsynced; the last file places them all.
pub(super) async fn upload(
    inner: &Arc<Context>,
    peer: &Peer,
    session: String,
    file_id: String,
    token: String,
    body: UploadBody,
) -> UploadReply {
    let checked = {
        let mut cur = inner.ls.session.lock().unwrap();
        let Some(s) = cur.as_mut().filter(|s| s.id == session && s.accepted && peer_is(peer, &s.fingerprint)) else {
            // Not this session's sender (or no session): refused, the session untouched.
            return UploadReply::Forbidden;
        };
        s.active = Instant::now();
        match s.files.get_mut(&file_id) {
            Some(f) if f.token != token => Err((UploadReply::Forbidden, "an upload with a wrong token".to_string())),
            Some(f) if f.done || f.busy => Err((UploadReply::Conflict, "a file uploaded twice".to_string())),
            Some(f) if body.len() != f.size => Err((
                UploadReply::TooLarge,
                format!("an upload of {} bytes for a file offered with {}", body.len(), f.size),
            )),
            Some(f) => {
                f.busy = true;
                Ok((s.transfer, f.path.clone(), f.size, f.sha256.clone()))
            }
            None => Err((UploadReply::Forbidden, "an upload of a file it did not offer".to_string())),
        }
        .map_err(|e| (s.transfer, e))
    };
    // The session's own sender breaking the protocol ends the session: nothing it sent is kept.
    let (tid, path, size, sha256) = match checked {
        Ok(x) => x,
        Err((tid, (reply, why))) => {
            let name = device_name(inner, peer_device(peer)).await;
            end_session(inner, tid, Some(format!("{name} sent {why}"))).await;
            return reply;
        }
    };
    let guard = SessionGuard::new(inner, tid, "the upload broke off");
    let target = staging_dir(inner, &tid).join(path.as_str());
    if let Err((reply, why)) = receive_file(inner, tid, &target, size, sha256.as_deref(), body).await {
        tracing::info!("LocalSend upload of {} refused: {why}", path.as_str());
        end_session(inner, tid, Some(why)).await;
        guard.disarm();
        return reply;
    }
    let all_done = {
        let mut cur = inner.ls.session.lock().unwrap();
        let Some(s) = cur.as_mut().filter(|s| s.transfer == tid) else { return UploadReply::Forbidden };
        if let Some(f) = s.files.get_mut(&file_id) {
            f.busy = false;
            f.done = true;
        }
        s.active = Instant::now();
        s.files.values().all(|f| f.done)
    };
    guard.disarm();
    if all_done {
        // Every byte is durable in staging: placing them is this node's business from here,
        // so it runs to its end even if the sender hangs up now.
        let i = inner.clone();
        inner.spawn(async move { finish(&i, tid).await });
    }
    UploadReply::Ok
}

type Failure = (UploadReply, String);

/// Writes one file's bytes to `target` (a new file), checking the count and the hash.
async fn receive_file(
    inner: &Arc<Context>,
    tid: TransferId,
    target: &std::path::Path,
    size: u64,
    sha256: Option<&str>,
    mut body: UploadBody,
) -> Result<(), Failure> {
    let failed = |e: String| (UploadReply::Failed, e);
    let (dir, inbox) = (target.parent().map(PathBuf::from).unwrap_or_default(), inner.cfg.inbox.clone());
    tokio::task::spawn_blocking(move || {
        ferry_fs::create_dirs_durable(&inbox).and_then(|_| ferry_fs::create_dirs_durable(&dir))
    })
    .await
    .map_err(|e| failed(e.to_string()))?
    .map_err(|e| failed(format!("cannot make the staging folder: {e}")))?;
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .await
        .map_err(|e| failed(format!("{}: {e}", target.display())))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut hash = Sha256::new();
    let mut got = 0u64;
    loop {
        let chunk = match body.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(ferry_localsend::LsError::TooLong) => {
                return Err((UploadReply::TooLarge, format!("more than the {size} bytes offered")));
            }
            Err(e) => return Err(failed(format!("the upload broke off after {got} bytes: {e}"))),
        };
        got += chunk.len() as u64;
        if got > size {
            return Err((UploadReply::TooLarge, format!("more than the {size} bytes offered")));
        }
        hash.update(&chunk);
        out.write_all(&chunk).await.map_err(|e| failed(format!("{}: {e}", target.display())))?;
        progress(inner, tid, chunk.len() as u64).await;
    }
    if got != size {
        return Err(failed(format!("{got} of the {size} bytes offered arrived")));
    }
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if let Some(want) = sha256
        && hex != want
    {
        return Err((UploadReply::HashMismatch, format!("what arrived has SHA-256 {hex}, not the {want} offered")));
    }
    out.flush().await.map_err(|e| failed(e.to_string()))?;
    out.into_inner().sync_all().await.map_err(|e| failed(format!("{}: {e}", target.display())))?;
    Ok(())
}

async fn progress(inner: &Arc<Context>, tid: TransferId, n: u64) {
    let done = {
        let mut cur = inner.ls.session.lock().unwrap();
        let Some(s) = cur.as_mut().filter(|s| s.transfer == tid) else { return };
        s.received += n;
        s.active = Instant::now();
        s.received
    };
    let (due, rate) = inner.sends.with_live(tid, |l| {
        l.record(done);
        l.wire = done;
        (l.due(false), l.rate())
    });
    if due && let Ok(Some(t)) = inner.db(move |s| s.transfer(&tid)).await {
        emit_progress(inner, &t, done, rate);
    }
}

/// Every file is in staging: record that, place each top-level entry in the Inbox (never
/// overwriting), fsync it, record where each went, and end the session.
async fn finish(inner: &Arc<Context>, tid: TransferId) {
    let Ok(Some(t)) = inner.db(move |s| s.transfer(&tid)).await else { return };
    let (st, total) = (staging_dir(inner, &tid), t.total_bytes());
    for dir in t.files.iter().filter_map(|f| f.path.as_str().rsplit_once('/').map(|(d, _)| st.join(d))) {
        let _ = tokio::task::spawn_blocking(move || ferry_fs::fsync_dir(&dir)).await;
    }
    let durable = tokio::task::spawn_blocking(move || ferry_fs::fsync_dir(&st).map_err(|e| e.to_string()))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    if let Err(e) = durable {
        return end_session(inner, tid, Some(format!("cannot make the received files durable: {e}"))).await;
    }
    // Every byte is durable in staging, recorded before anything is placed: a stop from here on
    // finishes the placement at the next start (`place_received`) instead of failing a transfer
    // whose files may already be in the Inbox (the sender would then send them again, and they
    // would land twice).
    let recorded = inner
        .db(move |s| {
            s.update_transfer(&tid, |t| {
                t.done_bytes = total;
                true
            })
        })
        .await;
    if let Err(e) = recorded {
        return end_session(inner, tid, Some(e.message)).await;
    }
    match place_received(inner, &t).await {
        // The session and its staging folder end before the transfer is done: a finished
        // transfer leaves the Inbox holding only what it placed (placed items are links or
        // folders of their own).
        Ok(()) => {
            end_session(inner, tid, None).await;
            emit_progress(inner, &t, total, 0.0);
            set_state(inner, tid, SendEvent::Completed, None).await;
        }
        Err(e) => end_session(inner, tid, Some(e)).await,
    }
}

/// Places every top-level entry of `t`'s staging folder in the Inbox and records where each
/// went; an error means something was not placed. Run again after a stop, it places nothing
/// twice: a file's earlier placement is found by its inode (`place`), a folder's by the claim
/// it noted before it moved (`placed_before`).
pub(super) async fn place_received(inner: &Arc<Context>, t: &ferry_store::TransferRecord) -> Result<(), String> {
    let tid = t.id;
    let tops = crate::send::top_names(t);
    let (st, inbox) = (staging_dir(inner, &tid), inner.cfg.inbox.clone());
    let list = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for name in tops {
            if let Some(to) = placed_before(&st, &inbox, &name) {
                out.push((name, to));
                continue;
            }
            if std::fs::symlink_metadata(st.join(&name)).is_err() {
                return Err(format!("{name} was being placed in the Inbox when Ferry stopped: look for it there"));
            }
            let to = place(&st.join(&name), &inbox, &name)?;
            out.push((name, to));
        }
        ferry_fs::fsync_dir(&inbox).map_err(|e| e.to_string())?;
        Ok::<_, String>(out)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r)?;
    crate::crash::point("send.placed");
    // Everything is in the Inbox now, recorded or not: a record that fails is only logged (the
    // next start places the items again, finding each where it is).
    let recorded = inner
        .db(move |s| {
            s.update_transfer(&tid, |t| {
                t.placed = list;
                true
            })
        })
        .await;
    if let Err(e) = recorded {
        tracing::warn!("cannot record where a LocalSend transfer was placed: {}", e.message);
    }
    Ok(())
}
