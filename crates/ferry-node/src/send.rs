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

fn staging_dir(inner: &Context, id: &TransferId) -> PathBuf {
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

fn emit_state(inner: &Context, t: &TransferRecord) {
    inner.emit(Event::SendState {
        id: t.id.to_hex(),
        device: t.peer.to_string(),
        direction: direction(t).into(),
        state: t.state.as_str().into(),
        message: state_message(&t.state),
    });
}

fn emit_progress(inner: &Context, t: &TransferRecord, done: u64, rate: f64) {
    inner.emit(Event::SendProgress {
        id: t.id.to_hex(),
        device: t.peer.to_string(),
        direction: direction(t).into(),
        done,
        total: t.total_bytes(),
        bytes_per_sec: rate,
    });
}

/// Moves a transfer to `state` unless it already ended (a final state never changes), and
/// announces the change. Returns the record if it changed.
async fn set_state(
    inner: &Arc<Context>,
    id: TransferId,
    state: TransferState,
    allowed_from: fn(&TransferState) -> bool,
    notify: Option<SendUpdate>,
) -> Option<TransferRecord> {
    let st = state.clone();
    let changed = inner
        .db(move |s| {
            let mut changed = false;
            let t = s.update_transfer(&id, |t| {
                if t.state.is_final() || !allowed_from(&t.state) || t.state == st {
                    return false;
                }
                if st == TransferState::Done {
                    t.done_bytes = t.total_bytes();
                }
                if st.is_final() {
                    t.finished_ms = Some(now_ms());
                }
                t.state = st;
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

fn any(_: &TransferState) -> bool {
    true
}

// ---------------------------------------------------------------------------------------------
// Sender: building the offer

/// One path given to `ferry send`, walked: files and folders with their names in the send.
pub(crate) fn collect(arg: &Path, files: &mut Vec<(RelPath, PathBuf)>, dirs: &mut Vec<RelPath>) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(arg).map_err(|e| format!("{}: {e}", arg.display()))?;
    let name = arg
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: cannot send a path without a UTF-8 file name", arg.display()))?;
    let rel = RelPath::new(name).map_err(|e| format!("{}: cannot send this name: {e}", arg.display()))?;
    walk(arg, &meta, rel, files, dirs)
}

fn walk(
    path: &Path,
    meta: &std::fs::Metadata,
    rel: RelPath,
    files: &mut Vec<(RelPath, PathBuf)>,
    dirs: &mut Vec<RelPath>,
) -> Result<(), String> {
    let ft = meta.file_type();
    if ft.is_file() {
        files.push((rel, path.to_path_buf()));
    } else if ft.is_dir() {
        dirs.push(rel.clone());
        if files.len() > MAX_SEND_FILES || dirs.len() > MAX_SEND_DIRS {
            return Err(format!("more than {MAX_SEND_FILES} files or folders; send fewer at a time"));
        }
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let name = e.file_name();
            let name = name.to_str().ok_or_else(|| format!("{}: the name is not UTF-8", p.display()))?;
            let child = RelPath::new(format!("{rel}/{name}"))
                .map_err(|err| format!("{}: cannot send this name: {err}", p.display()))?;
            let m = std::fs::symlink_metadata(&p).map_err(|err| format!("{}: {err}", p.display()))?;
            walk(&p, &m, child, files, dirs)?;
        }
    } else if ft.is_symlink() {
        return Err(format!("{} is a symbolic link; sends carry regular files and folders only", path.display()));
    } else {
        return Err(format!("{} is not a regular file or folder", path.display()));
    }
    Ok(())
}

/// Chunks the files (blocking): size, mtime, hash and chunks, checking nothing changed while
/// it was read.
pub(crate) fn describe_files(list: &[(RelPath, PathBuf)]) -> Result<Vec<SendFile>, String> {
    let mut out = Vec::with_capacity(list.len());
    let mut total = 0u64;
    for (rel, path) in list {
        let before = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        total = total.saturating_add(before.len());
        if total > MAX_SEND_BYTES {
            return Err(format!("the files add up to more than {MAX_SEND_BYTES} bytes; send fewer at a time"));
        }
        let c = ferry_fs::chunk_file(path).map_err(|e| e.to_string())?;
        let after = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (m0, m1) = (mtime_ns(&before), mtime_ns(&after));
        if c.size != after.len() || before.len() != after.len() || m0 != m1 {
            return Err(format!("{} changed while it was being read; try again", path.display()));
        }
        out.push(SendFile {
            path: rel.clone(),
            size: c.size,
            mtime_ns: m1,
            executable: after.permissions().mode() & 0o111 != 0,
            hash: c.hash,
            chunks: c.chunks,
        });
    }
    Ok(out)
}

fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec())
}

// ---------------------------------------------------------------------------------------------
// Receiver: checking an offer

/// Everything a receiver checks before it records an offer. Paths are already [`RelPath`]s
/// (decoding refused `..`, absolute paths, `.ferry` and temp names).
pub(crate) fn check_offer(files: &[SendFile], dirs: &[RelPath]) -> Result<(), String> {
    if files.is_empty() && dirs.is_empty() {
        return Err("an empty send".into());
    }
    if files.len() > MAX_SEND_FILES || dirs.len() > MAX_SEND_DIRS {
        return Err(format!("more than {MAX_SEND_FILES} files or {MAX_SEND_DIRS} folders"));
    }
    let mut total = 0u64;
    let mut file_paths = HashSet::new();
    for f in files {
        f.check()?;
        total = total.saturating_add(f.size);
        if !file_paths.insert(f.path.as_str()) {
            return Err(format!("{} is offered twice", f.path));
        }
    }
    if total > MAX_SEND_BYTES {
        return Err(format!("{total} bytes is over the {MAX_SEND_BYTES}-byte limit"));
    }
    // A file may not also be a folder (named as one, or be the parent of another entry).
    for p in files.iter().map(|f| &f.path).chain(dirs.iter()) {
        for a in p.ancestors() {
            if file_paths.contains(a.as_str()) {
                return Err(format!("{a} is offered both as a file and as a folder"));
            }
        }
    }
    for d in dirs {
        if file_paths.contains(d.as_str()) {
            return Err(format!("{d} is offered both as a file and as a folder"));
        }
    }
    Ok(())
}

/// Answers an offer from a paired peer.
pub(crate) async fn on_offer(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    id: TransferId,
    files: Vec<SendFile>,
    dirs: Vec<RelPath>,
) -> Message {
    if let Err(e) = check_offer(&files, &dirs) {
        tracing::warn!(peer = %peer.id.short(), "refused a send offer: {e}");
        return Message::Error { code: WireError::BadRequest, message: format!("send refused: {e}") };
    }
    let pid = peer.id;
    let looked =
        inner.db(move |s| Ok((s.device(&pid)?, s.is_muted(&pid)?, s.auto_accept(&pid)?, s.transfer(&id)?))).await;
    let (dev, muted, auto, existing) = match looked {
        Ok(x) => x,
        Err(e) => return Message::Error { code: WireError::Internal, message: e.message },
    };
    let Some(dev) = dev.filter(|d| d.paired) else {
        return Message::Error { code: WireError::NotPaired, message: "this device is not paired with you".into() };
    };
    if let Some(t) = existing {
        // A redelivery (the ack got lost): same answer, nothing new.
        return if t.peer == pid && !t.outgoing {
            Message::Ack
        } else {
            Message::Error { code: WireError::BadRequest, message: "transfer id already in use".into() }
        };
    }
    if muted {
        return Message::Error {
            code: WireError::Refused,
            message: format!("{} does not accept sends from this device", inner.cfg.name),
        };
    }
    if !auto && let Err(e) = inner.prompt_limits.check(pid, "a send offer") {
        return Message::Error { code: WireError::Refused, message: e };
    }
    let rec = TransferRecord {
        id,
        peer: pid,
        outgoing: false,
        created_ms: now_ms(),
        files,
        dirs,
        sources: vec![],
        state: if auto { TransferState::Active } else { TransferState::Offered },
        done_bytes: 0,
        notify: auto.then_some(SendUpdate::Accepted),
        placed: vec![],
        finished_ms: None,
    };
    let r = rec.clone();
    match inner.db(move |s| s.add_transfer(&r)).await {
        Ok(true) => {}
        Ok(false) => return Message::Ack,
        Err(e) => return Message::Error { code: WireError::Internal, message: e.message },
    }
    let names = top_names(&rec);
    inner.emit(Event::SendOffered {
        id: id.to_hex(),
        device: pid.to_string(),
        device_name: dev.name.clone(),
        direction: "in".into(),
        files: rec.files.len() as u64,
        bytes: rec.total_bytes(),
        names: names.clone(),
    });
    if auto {
        tracing::info!(peer = %pid.short(), "send {} auto-accepted", id.to_hex());
        emit_state(inner, &rec);
        flush_soon(inner, pid);
    } else {
        let kind = PromptKind::SendOffer {
            transfer: id,
            files: rec.files.len() as u64,
            bytes: rec.total_bytes(),
            names: names.into_iter().take(PROMPT_NAMES).collect(),
        };
        if let Err(e) = add_prompt(inner, pid, kind).await {
            return Message::Error { code: WireError::Internal, message: e.message };
        }
    }
    Message::Ack
}

/// An update from the other side of a transfer.
pub(crate) async fn on_update(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    id: TransferId,
    update: SendUpdate,
) -> Message {
    let Ok(Some(t)) = inner.db(move |s| s.transfer(&id)).await else {
        return Message::Error { code: WireError::NotFound, message: "no such transfer".into() };
    };
    if t.peer != peer.id {
        return Message::Error { code: WireError::NotFound, message: "no such transfer".into() };
    }
    fn open(s: &TransferState) -> bool {
        matches!(s, TransferState::Queued | TransferState::Offered)
    }
    match (t.outgoing, update) {
        (true, SendUpdate::Accepted) => {
            set_state(inner, id, TransferState::Active, open, None).await;
        }
        (true, SendUpdate::Rejected(m)) => {
            set_state(inner, id, TransferState::Rejected(bounded(m)), any, None).await;
        }
        (true, SendUpdate::Progress(done)) if !t.state.is_final() => {
            let done = done.min(t.total_bytes());
            let rate = inner.sends.with_live(id, |l| {
                l.record(done);
                l.rate()
            });
            emit_progress(inner, &t, done, rate);
        }
        (true, SendUpdate::Done) => {
            if t.state == TransferState::Offered || t.state == TransferState::Queued {
                set_state(inner, id, TransferState::Active, open, None).await;
            }
            if !t.state.is_final() {
                inner.sends.with_live(id, |l| l.record(t.total_bytes()));
                emit_progress(inner, &t, t.total_bytes(), 0.0);
            }
            set_state(inner, id, TransferState::Done, any, None).await;
        }
        (true, SendUpdate::Failed(m)) | (false, SendUpdate::Failed(m)) => {
            let m = format!("{} reports: {}", peer.id.short(), bounded(m));
            if set_state(inner, id, TransferState::Failed(m), any, None).await.is_some() && !t.outgoing {
                remove_staging(inner, &id).await;
                remove_prompt_for(inner, id).await;
            }
        }
        (_, SendUpdate::Progress(_)) => {}
        (false, other) => {
            return Message::Error {
                code: WireError::BadRequest,
                message: format!("a sender cannot send {other:?} for a transfer"),
            };
        }
    }
    Message::Ack
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

async fn remove_prompt_for(inner: &Arc<Context>, id: TransferId) {
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
    match &t.state {
        TransferState::Active => {}
        TransferState::Offered | TransferState::Queued => {
            // The accept raced ahead of its update.
            set_state(inner, id, TransferState::Active, |s| !s.is_final(), None).await;
        }
        // Failed already (another block found the source changed): say why, not just "failed",
        // whichever of the concurrent answers reaches the receiver first.
        TransferState::Failed(why) => return Message::Error { code: WireError::Refused, message: why.clone() },
        other => {
            return Message::Error { code: WireError::Refused, message: format!("this send is {}", other.as_str()) };
        }
    }
    let (Some(f), Some(src)) = (t.files.get(file as usize), t.sources.get(file as usize)) else {
        return Message::Error { code: WireError::BadRequest, message: "no such file in this send".into() };
    };
    if len == 0 || len > MAX_BLOCK || offset.checked_add(u64::from(len)).is_none_or(|end| end > f.size) {
        return Message::Error { code: WireError::BadRequest, message: "bad block range".into() };
    }
    let (src, size, mtime) = (PathBuf::from(src), f.size, f.mtime_ns);
    let read = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
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
        Ok(buf)
    })
    .await;
    match read {
        Ok(Ok(data)) => {
            inner.sends.with_live(id, |l| l.wire += data.len() as u64);
            Message::Block { data }
        }
        Ok(Err(e)) => {
            let msg = format!("the send failed: {e}");
            tracing::warn!(peer = %peer.id.short(), "{msg}");
            set_state(inner, id, TransferState::Failed(msg.clone()), any, None).await;
            Message::Error { code: WireError::NotFound, message: msg }
        }
        Err(e) => Message::Error { code: WireError::Internal, message: e.to_string() },
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery on connect

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
                set_state(inner, t.id, TransferState::Offered, |s| *s == TransferState::Queued, None).await;
            }
            Ok(Message::Error { message, .. }) => {
                set_state(inner, t.id, TransferState::Failed(format!("refused: {}", bounded(message))), any, None)
                    .await;
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

fn start_receive(inner: &Arc<Context>, peer: &Arc<PeerLink>, id: TransferId) {
    if !inner.sends.receiving.lock().unwrap().insert(id) {
        return;
    }
    let (i, p) = (inner.clone(), peer.clone());
    inner.spawn(async move {
        let mut stop = i.stop.subscribe();
        let outcome = tokio::select! {
            r = receive(&i, &p, id) => Some(r),
            _ = stop.wait_for(|s| *s) => None,
            _ = p.conn.closed() => None,
        };
        i.sends.receiving.lock().unwrap().remove(&id);
        match outcome {
            None | Some(Ok(())) => {}
            Some(Err(Stop::Paused(why))) => {
                tracing::info!(peer = %p.id.short(), "send {} paused: {why}", id.to_hex());
            }
            Some(Err(Stop::Failed(why))) => {
                tracing::warn!(peer = %p.id.short(), "send {} failed: {why}", id.to_hex());
                let update = Some(SendUpdate::Failed(why.clone()));
                if set_state(&i, id, TransferState::Failed(why), any, update).await.is_some() {
                    remove_staging(&i, &id).await;
                    flush_soon(&i, p.id);
                }
            }
        }
    });
}

enum Stop {
    /// The connection went away: resume when the device is back.
    Paused(String),
    /// The send cannot complete (bad data from the sender, source changed, local disk error).
    Failed(String),
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, Stop> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Stop::Failed(e)),
        Err(e) => Err(Stop::Failed(e.to_string())),
    }
}

fn io(what: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", what.display())
}

/// A chunk still to fetch.
struct Need {
    file: u32,
    offset: u64,
    len: u32,
    hash: ChunkHash,
    path: PathBuf,
}

async fn receive(inner: &Arc<Context>, peer: &Arc<PeerLink>, id: TransferId) -> Result<(), Stop> {
    let Some(t) = inner.db(move |s| s.transfer(&id)).await.map_err(|e| Stop::Failed(e.message))? else {
        return Ok(());
    };
    if t.state != TransferState::Active || t.outgoing {
        return Ok(());
    }
    let t = Arc::new(t);
    let staging = staging_dir(inner, &id);
    let placed: HashSet<String> = t.placed.iter().map(|(from, _)| from.clone()).collect();

    // 1. What is already here (verified chunk by chunk), and what must be fetched.
    let (inbox, st, tt, placed2) = (inner.cfg.inbox.clone(), staging.clone(), t.clone(), placed.clone());
    let (have, need) = blocking(move || {
        std::fs::create_dir_all(&inbox).map_err(io(&inbox))?;
        std::fs::create_dir_all(&st).map_err(io(&st))?;
        let mut have = 0u64;
        let mut need = Vec::new();
        for (i, f) in tt.files.iter().enumerate() {
            if placed2.contains(f.path.as_str().split('/').next().unwrap_or("")) {
                have += f.size;
                continue;
            }
            let full = ferry_fs::prepare_parent(&st, &f.path).map_err(|e| e.to_string())?;
            let existed = match std::fs::symlink_metadata(&full) {
                Ok(m) if m.file_type().is_file() => true,
                Ok(_) => return Err(format!("{} is in the way", full.display())),
                Err(_) => false,
            };
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&full)
                .map_err(io(&full))?;
            file.set_len(f.size).map_err(io(&full))?;
            let mut buf = Vec::new();
            for (off, c) in f.chunk_offsets() {
                if existed {
                    buf.resize(c.len as usize, 0);
                    if file.read_exact_at(&mut buf, off).is_ok() && ChunkHash::of(&buf) == c.hash {
                        have += u64::from(c.len);
                        continue;
                    }
                }
                need.push(Need { file: i as u32, offset: off, len: c.len, hash: c.hash, path: full.clone() });
            }
        }
        Ok((have, need))
    })
    .await?;
    inner.sends.with_live(id, |l| {
        l.resumed = have;
        l.samples.clear();
        l.record(have);
    });
    if have > 0 {
        tracing::info!(peer = %peer.id.short(), "send {}: resuming with {have} bytes already here", id.to_hex());
    }
    report_progress(inner, peer, &t, have, true);

    // 2. Fetch the rest, 16 chunks in flight, each verified before it is written.
    let mut done = have;
    let jobs = need.into_iter().map(|n| {
        let peer = peer.clone();
        async move {
            let req = Message::SendBlockRequest { id, file: n.file, offset: n.offset, len: n.len, hash: n.hash };
            let data = match peer.conn.request(&req, SEND_TIMEOUT).await {
                Ok(Message::Block { data }) => data,
                Ok(Message::Error { message, .. }) => return Err(Stop::Failed(bounded(message))),
                Ok(_) => return Err(Stop::Failed("unexpected answer to a block request".into())),
                Err(e) => return Err(Stop::Paused(e.to_string())),
            };
            let who = peer.id.short();
            // Hashing and writing run off the runtime.
            blocking(move || {
                if data.len() != n.len as usize || ChunkHash::of(&data) != n.hash {
                    return Err(format!("{who} sent a chunk that does not match its hash"));
                }
                let f = std::fs::OpenOptions::new().write(true).open(&n.path).map_err(io(&n.path))?;
                f.write_all_at(&data, n.offset).map_err(io(&n.path))?;
                Ok(data.len() as u64)
            })
            .await
        }
    });
    let mut stream = futures::stream::iter(jobs).buffer_unordered(PARALLEL_BLOCKS);
    while let Some(r) = stream.next().await {
        let n = r?;
        done += n;
        inner.sends.with_live(id, |l| {
            l.wire += n;
            l.record(done);
        });
        report_progress(inner, peer, &t, done, false);
    }
    drop(stream);

    // 3. Whole-file hashes, metadata, folders, fsync.
    let (st, tt, placed2) = (staging.clone(), t.clone(), placed.clone());
    blocking(move || {
        let mut parents = BTreeSet::new();
        for f in tt.files.iter().filter(|f| !placed2.contains(f.path.as_str().split('/').next().unwrap_or(""))) {
            let full = ferry_fs::checked_path(&st, &f.path).map_err(|e| e.to_string())?;
            let mut file = std::fs::File::open(&full).map_err(io(&full))?;
            let mut h = blake3::Hasher::new();
            std::io::copy(&mut file, &mut h).map_err(io(&full))?;
            if ChunkHash::from(h.finalize()) != f.hash {
                return Err(format!("{} does not match its whole-file hash", f.path));
            }
            let mode = if f.executable { 0o755 } else { 0o644 };
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode)).map_err(io(&full))?;
            let w = std::fs::OpenOptions::new().write(true).open(&full).map_err(io(&full))?;
            w.sync_all().map_err(io(&full))?;
            ferry_fs::set_mtime(&st, &f.path, f.mtime_ns).map_err(|e| e.to_string())?;
            parents.insert(full.parent().unwrap_or(&st).to_path_buf());
        }
        for d in tt.dirs.iter().filter(|d| !placed2.contains(d.as_str().split('/').next().unwrap_or(""))) {
            let full = ferry_fs::prepare_parent(&st, d).map_err(|e| e.to_string())?;
            match std::fs::create_dir(&full) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && full.is_dir() => {}
                Err(e) => return Err(format!("{}: {e}", full.display())),
            }
            parents.insert(full.parent().unwrap_or(&st).to_path_buf());
            parents.insert(full);
        }
        for p in parents {
            ferry_fs::fsync_dir(&p).map_err(|e| e.to_string())?;
        }
        Ok(())
    })
    .await?;

    // 4. Move each top-level item into the inbox under a free name; never overwrite.
    for top in top_names(&t) {
        if placed.contains(&top) {
            continue;
        }
        let (st, inbox, name) = (staging.clone(), inner.cfg.inbox.clone(), top.clone());
        let final_name = blocking(move || place(&st.join(&name), &inbox, &name)).await?;
        let (from, to) = (top.clone(), final_name.clone());
        inner
            .db(move |s| {
                s.update_transfer(&id, |t| {
                    t.placed.push((from, to));
                    true
                })
            })
            .await
            .map_err(|e| Stop::Failed(e.message))?;
        let (st, name) = (staging.clone(), top.clone());
        // The staging copy of a file is a second link to what is now in the inbox.
        let _ = blocking(move || {
            let p = st.join(&name);
            if p.symlink_metadata().is_ok_and(|m| m.is_file()) {
                std::fs::remove_file(&p).map_err(io(&p))?;
            }
            Ok(())
        })
        .await;
    }
    let (inbox, st) = (inner.cfg.inbox.clone(), staging.clone());
    blocking(move || {
        ferry_fs::fsync_dir(&inbox).map_err(|e| e.to_string())?;
        std::fs::remove_dir_all(&st).map_err(io(&st))
    })
    .await?;
    inner.sends.with_live(id, |l| l.record(t.total_bytes()));
    emit_progress(inner, &t, t.total_bytes(), 0.0);
    if let Some(t) = set_state(inner, id, TransferState::Done, any, Some(SendUpdate::Done)).await {
        tracing::info!(peer = %peer.id.short(), "send {} received: {} files", id.to_hex(), t.files.len());
    }
    flush_soon(inner, peer.id);
    Ok(())
}

/// Progress: an event here and an update to the sender, about four a second (and the last one).
fn report_progress(inner: &Arc<Context>, peer: &Arc<PeerLink>, t: &Arc<TransferRecord>, done: u64, force: bool) {
    let last = done == t.total_bytes();
    let (due, rate) = inner.sends.with_live(t.id, |l| (l.due(force || last), l.rate()));
    if !due {
        return;
    }
    emit_progress(inner, t, done, rate);
    let (p, id) = (peer.clone(), t.id);
    tokio::spawn(async move {
        let _ = p.conn.request(&Message::SendUpdate { id, update: SendUpdate::Progress(done) }, SEND_TIMEOUT).await;
    });
}

/// `name`, then `stem (1).ext`, `stem (2).ext`... (folders and dotfiles: `name (1)`).
pub(crate) fn candidate(name: &str, n: u32, is_dir: bool) -> String {
    if n == 0 {
        return name.to_string();
    }
    match name.rfind('.') {
        Some(dot) if !is_dir && dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

/// Moves `src` (a file or folder in the staging folder) into `inbox` under the first free
/// candidate name, atomically and without replacing anything; returns the name it got.
fn place(src: &Path, inbox: &Path, name: &str) -> Result<String, String> {
    let meta = std::fs::symlink_metadata(src).map_err(io(src))?;
    let is_dir = meta.is_dir();
    for n in 0..10_000 {
        let cand = candidate(name, n, is_dir);
        let target = inbox.join(&cand);
        if is_dir {
            // Claim the name with an empty folder (fails if anything is there), then rename
            // over it: rename replaces only an empty directory.
            match std::fs::create_dir(&target) {
                Ok(()) => {
                    std::fs::rename(src, &target).map_err(io(&target))?;
                    return Ok(cand);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("{}: {e}", target.display())),
            }
        } else {
            match std::fs::hard_link(src, &target) {
                Ok(()) => return Ok(cand),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("{}: {e}", target.display())),
            }
        }
    }
    Err(format!("no free name for {name} in {}", inbox.display()))
}

async fn remove_staging(inner: &Arc<Context>, id: &TransferId) {
    let dir = staging_dir(inner, id);
    let _ = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove {}: {e}", dir.display()),
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// API

/// The user answered a send prompt.
pub(crate) async fn answer(inner: &Arc<Context>, device: DeviceId, id: TransferId, accept: bool) -> ApiResult<()> {
    fn offered(s: &TransferState) -> bool {
        *s == TransferState::Offered
    }
    let changed = if accept {
        set_state(inner, id, TransferState::Active, offered, Some(SendUpdate::Accepted)).await
    } else {
        let why = format!("{} declined the send", inner.cfg.name);
        set_state(inner, id, TransferState::Rejected(why.clone()), offered, Some(SendUpdate::Rejected(why))).await
    };
    if changed.is_none() {
        let cur = inner.db(move |s| s.transfer(&id)).await?;
        let state = cur.map(|t| t.state.as_str()).unwrap_or("gone");
        return Err(ApiError::new(ErrorCode::Conflict, format!("this send is already {state}")));
    }
    flush_soon(inner, device);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::ChunkInfo;

    fn file(path: &str, data: &[u8]) -> SendFile {
        SendFile {
            path: RelPath::new(path).unwrap(),
            size: data.len() as u64,
            mtime_ns: 0,
            executable: false,
            hash: ChunkHash::of(data),
            chunks: if data.is_empty() {
                vec![]
            } else {
                vec![ChunkInfo { hash: ChunkHash::of(data), len: data.len() as u32 }]
            },
        }
    }

    #[test]
    fn collision_names_go_before_the_extension() {
        assert_eq!(candidate("a.txt", 0, false), "a.txt");
        assert_eq!(candidate("a.txt", 1, false), "a (1).txt");
        assert_eq!(candidate("a.tar.gz", 2, false), "a.tar (2).gz");
        assert_eq!(candidate(".bashrc", 1, false), ".bashrc (1)");
        assert_eq!(candidate("Photos", 1, true), "Photos (1)");
        assert_eq!(candidate("v1.2", 1, true), "v1.2 (1)");
    }

    #[test]
    fn place_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let (st, inbox) = (dir.path().join("st"), dir.path().join("in"));
        std::fs::create_dir_all(st.join("d")).unwrap();
        std::fs::create_dir_all(&inbox).unwrap();
        std::fs::write(st.join("a.txt"), b"new").unwrap();
        std::fs::write(st.join("d/x"), b"x").unwrap();
        std::fs::write(inbox.join("a.txt"), b"old").unwrap();
        std::fs::write(inbox.join("a (1).txt"), b"old1").unwrap();
        std::fs::create_dir(inbox.join("d")).unwrap();
        assert_eq!(place(&st.join("a.txt"), &inbox, "a.txt").unwrap(), "a (2).txt");
        assert_eq!(place(&st.join("d"), &inbox, "d").unwrap(), "d (1)");
        assert_eq!(std::fs::read(inbox.join("a.txt")).unwrap(), b"old");
        assert_eq!(std::fs::read(inbox.join("a (1).txt")).unwrap(), b"old1");
        assert_eq!(std::fs::read(inbox.join("a (2).txt")).unwrap(), b"new");
        assert_eq!(std::fs::read(inbox.join("d (1)/x")).unwrap(), b"x");
        assert!(std::fs::read_dir(inbox.join("d")).unwrap().next().is_none(), "the old folder is untouched");
    }

    #[test]
    fn offers_are_checked() {
        assert!(check_offer(&[file("a/b", b"x"), file("c", b"")], &[RelPath::new("a").unwrap()]).is_ok());
        assert!(check_offer(&[], &[]).unwrap_err().contains("empty"));
        assert!(check_offer(&[file("a", b"x"), file("a", b"y")], &[]).unwrap_err().contains("twice"));
        assert!(check_offer(&[file("a", b"x"), file("a/b", b"y")], &[]).unwrap_err().contains("both"));
        assert!(check_offer(&[file("a", b"x")], &[RelPath::new("a").unwrap()]).unwrap_err().contains("both"));
        let mut bad = file("a", b"xyz");
        bad.size = 4;
        assert!(check_offer(&[bad], &[]).unwrap_err().contains("add up"));
        let mut zero = file("a", b"xyz");
        zero.chunks.push(ChunkInfo { hash: ChunkHash::of(b""), len: 0 });
        assert!(check_offer(&[zero], &[]).is_err());
        let mut huge = file("a", b"");
        huge.size = MAX_SEND_BYTES + 1;
        huge.chunks = vec![ChunkInfo { hash: ChunkHash::of(b""), len: MAX_BLOCK }; 1];
        assert!(check_offer(&[huge], &[]).is_err());
        let many: Vec<SendFile> = (0..=MAX_SEND_FILES).map(|i| file(&format!("f{i}"), b"")).collect();
        assert!(check_offer(&many, &[]).unwrap_err().contains("more than"));
    }

    #[test]
    fn hostile_names_cannot_be_decoded() {
        // Names travel as RelPath: decoding refuses traversal, absolute paths and Ferry's own.
        for bad in ["../x", "/etc/passwd", ".ferry/x", "a/../../b", ".ferry-tmp-x"] {
            assert!(serde_json::from_str::<RelPath>(&format!("{bad:?}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn collect_walks_folders_and_refuses_links() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("top");
        std::fs::create_dir_all(top.join("sub/empty")).unwrap();
        std::fs::write(top.join("sub/a"), b"a").unwrap();
        std::fs::write(top.join("b"), b"b").unwrap();
        let (mut files, mut dirs) = (vec![], vec![]);
        collect(&top, &mut files, &mut dirs).unwrap();
        let f: Vec<&str> = files.iter().map(|(r, _)| r.as_str()).collect();
        let d: Vec<&str> = dirs.iter().map(|r| r.as_str()).collect();
        assert_eq!(f, ["top/b", "top/sub/a"]);
        assert_eq!(d, ["top", "top/sub", "top/sub/empty"]);
        std::os::unix::fs::symlink("b", top.join("link")).unwrap();
        let e = collect(&top, &mut vec![], &mut vec![]).unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
    }
}
