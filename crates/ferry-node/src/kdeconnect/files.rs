//! One-shot file sends with KDE Connect devices, on the same transfer records, events, prompts
//! and Inbox rules as Ferry sends.
//!
//! Out: each file is a `kdeconnect.share.request` naming it, with its size and the port where
//! this node serves its bytes over TLS to that device's certificate only. Files go one at a
//! time; `done_bytes` counts whole files delivered, so a dropped link resumes with the next
//! file, never sending a delivered one twice. KDE Connect has no accept step for files (the
//! phone saves them), so the send goes from offered to active at once; done means every byte
//! was read by the device.
//!
//! In: a file offered by a paired device is checked (a plain name, a size within the send cap)
//! and becomes a transfer with the usual `send` prompt, or is accepted at once for a device
//! marked auto-accept. The device serves the bytes only for a short while, so they are fetched
//! at once into the staging folder inside the Inbox (never the Inbox itself); when the user
//! accepts, the file is placed under a name nothing uses (never overwriting); when the user
//! declines, the staging copy is deleted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_engine::send::SendEvent;
use ferry_kdeconnect::Packet;
use ferry_proto::wire::{MAX_SEND_BYTES, SendFile};
use ferry_proto::{ChunkHash, DeviceId, TransferId};
use ferry_store::{PromptKind, TransferRecord, TransferState};
use serde_json::json;

use crate::api::*;
use crate::clock::now_ms;
use crate::context::{ApiResult, Context, add_prompt};
use crate::events::Event;
use crate::kde_handle::KdeLink;
use crate::send::{emit_progress, emit_state, place, remove_staging, set_state, staging_dir};

use super::wire::SHARE;

/// How long a device has to fetch a file this node offered: KDE Connect fetches at once; one
/// that has not connected within this long is not going to.
const PAYLOAD_WAIT: Duration = Duration::from_secs(60);

fn device_lock(inner: &Context, id: DeviceId) -> Arc<tokio::sync::Mutex<()>> {
    inner.sends.flush.lock().unwrap().entry(id).or_default().clone()
}

/// Starts sending what waits for `id`, if it is connected.
pub(crate) fn flush_soon(inner: &Arc<Context>, id: DeviceId) {
    if inner.kde.link(&id).is_some() {
        let i = inner.clone();
        inner.spawn(async move { flush(&i, id).await });
    }
}

/// Sends every unfinished outgoing transfer to `id`, in the order they were made.
async fn flush(inner: &Arc<Context>, id: DeviceId) {
    let lock = device_lock(inner, id);
    let _guard = lock.lock().await;
    let Ok(all) = inner.db(|s| s.transfers()).await else { return };
    let mut mine: Vec<TransferRecord> =
        all.into_iter().filter(|t| t.peer == id && t.outgoing && !t.state.is_final()).collect();
    mine.sort_by_key(|t| t.created_ms);
    for t in mine {
        if !send_transfer(inner, id, t).await {
            return;
        }
    }
}

/// Sends one transfer's remaining files. False when the link went away (the rest waits).
async fn send_transfer(inner: &Arc<Context>, id: DeviceId, t: TransferRecord) -> bool {
    set_state(inner, t.id, SendEvent::OfferDelivered, None).await;
    set_state(inner, t.id, SendEvent::PeerAccepted, None).await;
    let total = t.total_bytes();
    let mut done = 0u64;
    for (i, f) in t.files.iter().enumerate() {
        if done + f.size <= t.done_bytes && t.done_bytes > 0 {
            done += f.size;
            continue;
        }
        let Some(link) = inner.kde.link(&id) else { return false };
        match send_file(inner, &t, i, done, total, &link).await {
            Ok(()) => {}
            Err(e) if inner.kde.link(&id).is_none_or(|l| l.serial != link.serial) => {
                tracing::info!("send interrupted: {e}");
                return false;
            }
            Err(e) => {
                set_state(inner, t.id, SendEvent::Failed(e), None).await;
                return true;
            }
        }
        done += f.size;
        let tid = t.id;
        let _ = inner
            .db(move |s| {
                s.update_transfer(&tid, |t| {
                    t.done_bytes = done;
                    true
                })
            })
            .await;
    }
    emit_progress(inner, &t, total, 0.0);
    set_state(inner, t.id, SendEvent::Completed, None).await;
    true
}

/// Offers file `i` of `t` and serves its bytes until the device has read them all.
async fn send_file(
    inner: &Arc<Context>,
    t: &TransferRecord,
    i: usize,
    before: u64,
    total: u64,
    link: &crate::kde_handle::KdeLink,
) -> Result<(), String> {
    let f = &t.files[i];
    let src = PathBuf::from(&t.sources[i]);
    let (expect_size, expect_mtime) = (f.size, f.mtime_ns);
    let file = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&src).map_err(|e| format!("{}: {e}", src.display()))?;
        let meta = file.metadata().map_err(|e| format!("{}: {e}", src.display()))?;
        if meta.len() != expect_size || crate::send::mtime_ns(&meta) != expect_mtime {
            return Err(format!("{} changed since it was offered; send it again", src.display()));
        }
        Ok(file)
    })
    .await
    .map_err(|e| e.to_string())??;
    let local = inner.kde.local.get().ok_or("KDE Connect is off")?.clone();
    let (i2, t2) = (inner.clone(), Arc::new(t.clone()));
    let progress = move |n: u64| {
        let done = before + n;
        let (due, rate) = i2.sends.with_live(t2.id, |l| {
            l.record(done);
            l.wire = done;
            (l.due(false), l.rate())
        });
        if due {
            emit_progress(&i2, &t2, done, rate);
        }
    };
    let reader = tokio::fs::File::from_std(file);
    let (port, served) = ferry_kdeconnect::serve_payload(
        inner.cfg.kdeconnect_bind,
        &local,
        link.cert.to_vec(),
        reader,
        f.size,
        PAYLOAD_WAIT,
        progress,
    )
    .await
    .map_err(|e| e.to_string())?;
    let name = f.path.as_str().rsplit('/').next().unwrap_or(f.path.as_str()).to_string();
    let mut packet = Packet::new(
        SHARE,
        json!({
            "filename": name,
            "lastModified": f.mtime_ns / 1_000_000,
            "open": false,
            "numberOfFiles": t.files.len(),
            "totalPayloadSize": total,
        }),
    );
    packet.payload_size = Some(f.size as i64);
    packet.payload_port = Some(port);
    link.tx.send(packet).await.map_err(|_| "the device disconnected".to_string())?;
    served.await.map_err(|e| format!("{name}: {e}"))
}

/// A file offered by a paired device (`kdeconnect.share.request` with `filename` and a payload).
pub(super) async fn on_file(inner: &Arc<Context>, id: DeviceId, link: &KdeLink, p: &Packet) {
    match offer(inner, id, link, p).await {
        Ok(()) => {}
        Err(e) => tracing::warn!("refused a file: {e}"),
    }
}

/// The payload is fetched from the connection the offer came on (its address, its certificate).
async fn offer(inner: &Arc<Context>, id: DeviceId, link: &KdeLink, p: &Packet) -> Result<(), String> {
    let name = p.body.get("filename").and_then(|v| v.as_str()).ok_or("a file without a name")?;
    let path = crate::foreign::check_name(name)?;
    let size = p.payload_size.ok_or("a file without a size")?;
    let size = u64::try_from(size).map_err(|_| format!("a negative size ({size})"))?;
    if size > MAX_SEND_BYTES {
        return Err(format!("{name:?} is {size} bytes; at most {MAX_SEND_BYTES} are accepted in one send"));
    }
    let port = p.payload_port.ok_or("a file without a port to fetch it from")?;
    let link = link.clone();
    let (dev, muted, auto) =
        inner.db(move |s| Ok((s.device(&id)?, s.is_muted(&id)?, s.auto_accept(&id)?))).await.map_err(|e| e.message)?;
    let dev = dev.ok_or("unknown device")?;
    if muted {
        return Err("the device is muted".into());
    }
    if !auto {
        inner.prompt_limits.check(id, "a send offer")?;
    }
    let reservation = crate::foreign::reserve_space(inner, size).await?;
    let mtime_ms = p.body.get("lastModified").and_then(|v| v.as_i64()).unwrap_or(0);
    let rec = TransferRecord {
        id: TransferId(rand::random()),
        peer: id,
        outgoing: false,
        created_ms: now_ms(),
        files: vec![SendFile {
            path,
            size,
            mtime_ns: mtime_ms.saturating_mul(1_000_000),
            executable: false,
            hash: ChunkHash([0; 32]),
            chunks: vec![],
        }],
        dirs: vec![],
        sources: vec![],
        state: if auto { TransferState::Active } else { TransferState::Offered },
        done_bytes: 0,
        notify: None,
        placed: vec![],
        finished_ms: None,
    };
    let r = rec.clone();
    inner.db(move |s| s.add_transfer(&r).map(|_| ())).await.map_err(|e| e.message)?;
    let names = vec![name.to_string()];
    inner.emit(Event::SendOffered {
        id: rec.id.to_hex(),
        device: id.to_string(),
        device_name: dev.name.clone(),
        direction: "in".into(),
        files: 1,
        bytes: size,
        names: names.clone(),
    });
    if auto {
        emit_state(inner, &rec);
    } else {
        let kind = PromptKind::SendOffer { transfer: rec.id, files: 1, bytes: size, names };
        add_prompt(inner, id, kind).await.map_err(|e| e.message)?;
    }
    let addr = std::net::SocketAddr::new(link.remote.ip(), port);
    let i = inner.clone();
    inner.spawn(async move {
        receive(&i, id, rec, addr, link.cert.to_vec()).await;
        drop(reservation);
    });
    Ok(())
}

/// Fetches the offered file into the staging folder at once, then places it if (or once) the
/// user accepted.
async fn receive(inner: &Arc<Context>, id: DeviceId, t: TransferRecord, addr: std::net::SocketAddr, cert: Vec<u8>) {
    let staging = staging_dir(inner, &t.id);
    let target = staging.join(t.files[0].path.as_str());
    match fetch(inner, &t, addr, &cert, &staging, &target).await {
        Ok(()) => {
            inner.kde.downloaded.lock().unwrap().insert(t.id);
            try_place(inner, id, t.id).await;
        }
        Err(e) => {
            tracing::warn!("receiving {} failed: {e}", t.files[0].path.as_str());
            set_state(inner, t.id, SendEvent::Failed(e), None).await;
            crate::send::remove_prompt_for(inner, t.id).await;
            remove_staging(inner, &t.id).await;
        }
    }
}

async fn fetch(
    inner: &Arc<Context>,
    t: &TransferRecord,
    addr: std::net::SocketAddr,
    cert: &[u8],
    staging: &Path,
    target: &Path,
) -> Result<(), String> {
    let local = inner.kde.local.get().ok_or("KDE Connect is off")?.clone();
    let (dir, inbox) = (staging.to_path_buf(), inner.cfg.inbox.clone());
    tokio::task::spawn_blocking(move || {
        ferry_fs::create_dirs_durable(&inbox).and_then(|_| ferry_fs::create_dirs_durable(&dir))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot make the staging folder: {e}"))?;
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .await
        .map_err(|e| format!("{}: {e}", target.display()))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let (i2, t2) = (inner.clone(), Arc::new(t.clone()));
    let progress = move |n: u64| {
        let (due, rate) = i2.sends.with_live(t2.id, |l| {
            l.record(n);
            l.wire = n;
            (l.due(false), l.rate())
        });
        if due {
            emit_progress(&i2, &t2, n, rate);
        }
    };
    ferry_kdeconnect::fetch_payload(addr, &local, cert, t.total_bytes(), &mut out, progress)
        .await
        .map_err(|e| e.to_string())?;
    use tokio::io::AsyncWriteExt;
    out.flush().await.map_err(|e| e.to_string())?;
    let file = out.into_inner();
    file.sync_all().await.map_err(|e| format!("{}: {e}", target.display()))?;
    let dir = staging.to_path_buf();
    tokio::task::spawn_blocking(move || ferry_fs::fsync_dir(&dir))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let tid = t.id;
    let size = t.total_bytes();
    let _ = inner
        .db(move |s| {
            s.update_transfer(&tid, |t| {
                t.done_bytes = size;
                true
            })
        })
        .await;
    Ok(())
}

/// Places a fetched file in the Inbox once the transfer is accepted, exactly once (under the
/// device's send lock). A declined transfer's staging copy is deleted.
async fn try_place(inner: &Arc<Context>, id: DeviceId, tid: TransferId) {
    let lock = device_lock(inner, id);
    let _guard = lock.lock().await;
    let Ok(Some(t)) = inner.db(move |s| s.transfer(&tid)).await else { return };
    if !inner.kde.downloaded.lock().unwrap().contains(&tid) {
        return;
    }
    match &t.state {
        TransferState::Active if t.placed.is_empty() => {}
        TransferState::Offered => return,
        _ => {
            inner.kde.downloaded.lock().unwrap().remove(&tid);
            remove_staging(inner, &tid).await;
            return;
        }
    }
    let name = t.files[0].path.as_str().to_string();
    let (st, inbox, n) = (staging_dir(inner, &tid), inner.cfg.inbox.clone(), name.clone());
    let placed = tokio::task::spawn_blocking(move || {
        let to = place(&st.join(&n), &inbox, &n)?;
        ferry_fs::fsync_dir(&inbox).map_err(|e| e.to_string())?;
        Ok::<_, String>(to)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    if let Ok(to) = &placed {
        crate::crash::point("send.placed");
        let to = to.clone();
        let _ = inner
            .db(move |s| {
                s.update_transfer(&tid, |t| {
                    t.placed.push((name, to));
                    true
                })
            })
            .await;
    }
    inner.kde.downloaded.lock().unwrap().remove(&tid);
    // The staging copy goes before the transfer is done (as for Ferry's own sends): a finished
    // transfer leaves the Inbox holding only what it placed. The placed file is a link of its
    // own, so nothing placed goes with it.
    remove_staging(inner, &tid).await;
    match placed {
        Ok(_) => {
            emit_progress(inner, &t, t.total_bytes(), 0.0);
            set_state(inner, tid, SendEvent::Completed, None).await;
        }
        Err(e) => {
            set_state(inner, tid, SendEvent::Failed(e), None).await;
        }
    }
}

/// After a restart: a file that was being fetched cannot be fetched again (the device served
/// it only while it waited), so such a transfer fails and its staging copy goes; one fetched
/// whole waits for the user's answer as before; one placed (recorded) before the stop is done.
pub(super) async fn after_restart(inner: &Arc<Context>) {
    let Ok(all) = inner.db(|s| s.transfers()).await else { return };
    let Ok(kde) = inner.db(|s| s.kde_devices()).await else { return };
    for t in all.into_iter().filter(|t| !t.outgoing && !t.state.is_final()) {
        if !kde.iter().any(|(id, _)| *id == t.peer) {
            continue;
        }
        if !t.placed.is_empty() {
            remove_staging(inner, &t.id).await;
            set_state(inner, t.id, SendEvent::Completed, None).await;
            continue;
        }
        let whole = t.done_bytes == t.total_bytes()
            && t.files.len() == 1
            && staging_dir(inner, &t.id)
                .join(t.files[0].path.as_str())
                .metadata()
                .is_ok_and(|m| m.len() == t.total_bytes());
        if whole {
            inner.kde.downloaded.lock().unwrap().insert(t.id);
            try_place(inner, t.peer, t.id).await;
        } else {
            let why = "interrupted by a restart; ask the device to send it again".to_string();
            set_state(inner, t.id, SendEvent::Failed(why), None).await;
            crate::send::remove_prompt_for(inner, t.id).await;
            remove_staging(inner, &t.id).await;
        }
    }
}

/// The user answered the prompt for a file from a KDE Connect device.
pub(crate) async fn answer(inner: &Arc<Context>, device: DeviceId, id: TransferId, accept: bool) -> ApiResult<()> {
    let changed = if accept {
        set_state(inner, id, SendEvent::UserAccepted, None).await
    } else {
        let why = format!("{} declined the send", inner.cfg.name);
        set_state(inner, id, SendEvent::UserDeclined(why), None).await
    };
    if changed.is_none() {
        let cur = inner.db(move |s| s.transfer(&id)).await?;
        let state = cur.map(|t| t.state.as_str()).unwrap_or("gone");
        return Err(ApiError::new(ErrorCode::Conflict, format!("this send is already {state}")));
    }
    try_place(inner, device, id).await;
    Ok(())
}

/// Offers files to a KDE Connect device: they go out when it is connected (now or later).
pub(crate) fn send(inner: &Arc<Context>, id: DeviceId) {
    flush_soon(inner, id)
}
