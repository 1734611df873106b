//! Sending to LocalSend devices: queued notes and one-shot sends go out when the device is
//! nearby (now, or when it is next heard), one flush per device at a time, in the order they
//! were made.
//!
//! A send is one LocalSend session: `prepare-upload` with every file (name, size, type and
//! SHA-256, so the receiver can check what arrives), held open until the device's user answers,
//! then one `upload` per file the device asked for. Every connection pins the device's
//! certificate: an address that answers with another one is not the device the user chose.
//! LocalSend has no resume, so a send cut off midway fails and says so.
//!
//! A note is LocalSend's text message: one `text/plain` file whose `preview` is the text. The
//! app shows it and answers 204; a receiver that asks for the bytes gets them. "Delivered"
//! means the device took it (204 or the upload done); there is no read receipt.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferry_engine::send::SendEvent;
use ferry_localsend::{FileMeta, LsError, PrepareOutcome, PrepareUpload};
use ferry_proto::DeviceId;
use ferry_store::{NoteState, TransferRecord};
use sha2::{Digest, Sha256};

use crate::context::Context;
use crate::ls_handle::LsNearby;
use crate::send::{emit_progress, set_state};

/// How long a device's user has to answer an offer or a message before the send fails: the
/// request is held open meanwhile (the app waits as long as its user needs; a phone in a
/// pocket should not keep a send pending forever).
const ANSWER_WAIT: Duration = Duration::from_secs(300);

/// Remembers the PIN to give `id` (`ferry send --pin`, `ferry note send --pin`).
pub(crate) fn set_pin(inner: &Context, id: DeviceId, pin: Option<String>) {
    if let Some(p) = pin.filter(|p| !p.is_empty()) {
        inner.ls.pins.lock().unwrap().insert(id, p);
    }
}

pub(crate) fn forget_pin(inner: &Context, id: DeviceId) {
    inner.ls.pins.lock().unwrap().remove(&id);
}

/// Starts delivering what waits for `id` if it is nearby and no flush for it runs.
pub(crate) fn flush_soon(inner: &Arc<Context>, id: DeviceId) {
    let Some(near) = inner.ls.nearby(&id) else { return };
    if !inner.ls.flushing.lock().unwrap().insert(id) {
        return;
    }
    let i = inner.clone();
    inner.spawn(async move {
        flush(&i, id, &near).await;
        i.ls.flushing.lock().unwrap().remove(&id);
    });
}

async fn flush(inner: &Arc<Context>, id: DeviceId, near: &LsNearby) {
    let Ok(notes) = inner.db(move |s| s.notes(Some(&id))).await else { return };
    for n in notes.iter().filter(|n| n.outgoing && n.state == NoteState::Queued) {
        match send_note(inner, id, near, &n.text).await {
            Ok(state) => {
                let (nid, st) = (n.id, state.clone());
                if inner.db(move |s| s.set_note_state(&nid, st, false)).await.is_ok() {
                    crate::notes::emit_state(inner, &n.id, &state);
                }
            }
            Err(e) => {
                tracing::info!("LocalSend: note not delivered now ({e}); it waits");
                return;
            }
        }
    }
    let Ok(all) = inner.db(|s| s.transfers()).await else { return };
    let mut mine: Vec<TransferRecord> = all
        .into_iter()
        .filter(|t| t.peer == id && t.outgoing && t.state == ferry_store::TransferState::Queued)
        .collect();
    mine.sort_by_key(|t| t.created_ms);
    for t in mine {
        if !send_transfer(inner, id, near, t).await {
            return;
        }
    }
}

fn pin_of(inner: &Context, id: &DeviceId) -> Option<String> {
    inner.ls.pins.lock().unwrap().get(id).cloned()
}

/// Why a device refused, in words (None: it wants what is offered).
fn refusal(name: &str, outcome: &PrepareOutcome, had_pin: bool) -> Option<String> {
    Some(match outcome {
        PrepareOutcome::Accepted(_) | PrepareOutcome::NothingWanted => return None,
        PrepareOutcome::Declined => format!("{name} declined"),
        PrepareOutcome::PinRequired if had_pin => format!("{name} refused the PIN"),
        PrepareOutcome::PinRequired => format!("{name} asks for a PIN: send again with --pin PIN"),
        PrepareOutcome::Busy => format!("{name} is busy with another transfer; try again when it is done"),
        PrepareOutcome::TooManyAttempts => format!("{name} refuses for a while after too many wrong PINs"),
        PrepareOutcome::Status(n) => format!("{name} answered HTTP {n}"),
    })
}

/// Words for a failure to reach the device.
fn unreachable(name: &str, e: &LsError) -> String {
    match e {
        LsError::Pin { .. } => format!(
            "{name}'s address answered with another certificate: that is not the device you chose (see `ferry devices`)"
        ),
        e => format!("cannot reach {name}: {e}"),
    }
}

/// Sends one note. Ok(state) is final for the note (delivered or refused); Err means the device
/// could not be reached now (the note waits).
async fn send_note(inner: &Arc<Context>, id: DeviceId, near: &LsNearby, text: &str) -> Result<NoteState, String> {
    let client = inner.ls.client.get().ok_or("LocalSend is off")?;
    let name = near.info.alias.clone();
    let file_id = "text".to_string();
    let meta = FileMeta {
        id: file_id.clone(),
        file_name: format!("{}.txt", random_name()),
        size: text.len() as u64,
        file_type: "text/plain".into(),
        sha256: Some(hex(&Sha256::digest(text.as_bytes()))),
        preview: Some(text.to_string()),
        metadata: None,
    };
    let req = PrepareUpload { info: super::our_info(inner, None), files: [(file_id.clone(), meta)].into() };
    let pin = pin_of(inner, &id);
    let fp = near.fingerprint.as_str();
    let outcome = client
        .prepare_upload(near.addr, Some(fp), &req, pin.as_deref(), ANSWER_WAIT)
        .await
        .map_err(|e| unreachable(&name, &e))?;
    if let Some(why) = refusal(&name, &outcome, pin.is_some()) {
        return Ok(NoteState::Refused(why));
    }
    if let PrepareOutcome::Accepted(a) = outcome
        && let Some(token) = a.files.get(&file_id)
    {
        let bytes = text.as_bytes().to_vec();
        let len = bytes.len() as u64;
        if let Err(e) = client
            .upload(near.addr, Some(fp), &a.session_id, &file_id, token, std::io::Cursor::new(bytes), len, |_| {})
            .await
        {
            return Ok(NoteState::Refused(format!("{name} did not take the message: {e}")));
        }
    }
    Ok(NoteState::Delivered)
}

fn random_name() -> String {
    let b: [u8; 8] = rand::random();
    hex(&b)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A MIME type from a file name's extension, for the receiver's icons and previews (LocalSend
/// shows images and texts by type); anything else is a plain byte stream.
fn file_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "txt" | "md" | "log" | "csv" => "text/plain",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "apk" => "application/vnd.android.package-archive",
        _ => "application/octet-stream",
    }
}

/// Hashes the files of a send (SHA-256, for the receiver's check), refusing any that changed
/// since the send was made.
async fn hash_files(t: &TransferRecord) -> Result<Vec<String>, String> {
    let list: Vec<(PathBuf, u64, i64)> =
        t.files.iter().zip(&t.sources).map(|(f, s)| (PathBuf::from(s), f.size, f.mtime_ns)).collect();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for (src, size, mtime) in list {
            let mut file = std::fs::File::open(&src).map_err(|e| format!("{}: {e}", src.display()))?;
            let meta = file.metadata().map_err(|e| format!("{}: {e}", src.display()))?;
            if meta.len() != size || crate::send::mtime_ns(&meta) != mtime {
                return Err(format!("{} changed since it was offered; send it again", src.display()));
            }
            let mut h = Sha256::new();
            std::io::copy(&mut file, &mut h).map_err(|e| format!("{}: {e}", src.display()))?;
            out.push(hex(&h.finalize()));
        }
        Ok(out)
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Sends one transfer. False when the device could not be reached (the rest waits).
async fn send_transfer(inner: &Arc<Context>, id: DeviceId, near: &LsNearby, t: TransferRecord) -> bool {
    let Some(client) = inner.ls.client.get() else { return false };
    let name = near.info.alias.clone();
    let fp = near.fingerprint.clone();
    // A quick look first: a device that does not answer (or is not the same device) now keeps
    // the send queued, or fails it, before anything is offered.
    match client.info(near.addr, Some(&fp)).await {
        Ok(_) => {}
        Err(e @ LsError::Pin { .. }) => {
            set_state(inner, t.id, SendEvent::OfferRefused(unreachable(&name, &e)), None).await;
            return true;
        }
        Err(e) => {
            tracing::info!("LocalSend: {}; the send waits", unreachable(&name, &e));
            return false;
        }
    }
    let hashes = match hash_files(&t).await {
        Ok(h) => h,
        Err(e) => {
            set_state(inner, t.id, SendEvent::Failed(e), None).await;
            return true;
        }
    };
    let files = t
        .files
        .iter()
        .zip(hashes)
        .enumerate()
        .map(|(i, (f, sha))| {
            let fid = format!("f{i}");
            let meta = FileMeta {
                id: fid.clone(),
                file_name: f.path.as_str().to_string(),
                size: f.size,
                file_type: file_type(f.path.as_str()).into(),
                sha256: Some(sha),
                preview: None,
                metadata: Some(serde_json::json!({ "modified": rfc3339(f.mtime_ns) })),
            };
            (fid, meta)
        })
        .collect();
    let req = PrepareUpload { info: super::our_info(inner, None), files };
    set_state(inner, t.id, SendEvent::OfferDelivered, None).await;
    let pin = pin_of(inner, &id);
    let outcome = match client.prepare_upload(near.addr, Some(&fp), &req, pin.as_deref(), ANSWER_WAIT).await {
        Ok(o) => o,
        Err(e) => {
            set_state(inner, t.id, SendEvent::Failed(unreachable(&name, &e)), None).await;
            return true;
        }
    };
    if let Some(why) = refusal(&name, &outcome, pin.is_some()) {
        let event = match outcome {
            PrepareOutcome::Declined => SendEvent::PeerRejected(why),
            _ => SendEvent::Failed(why),
        };
        set_state(inner, t.id, event, None).await;
        return true;
    }
    set_state(inner, t.id, SendEvent::PeerAccepted, None).await;
    if let PrepareOutcome::Accepted(a) = outcome
        && let Err(e) = upload_all(inner, &t, near, &a).await
    {
        let _ = client.cancel(near.addr, Some(&fp), &a.session_id).await;
        set_state(inner, t.id, SendEvent::Failed(e), None).await;
        return true;
    }
    emit_progress(inner, &t, t.total_bytes(), 0.0);
    set_state(inner, t.id, SendEvent::Completed, None).await;
    true
}

/// Uploads every file the device asked for (a file without a token it already has), in order.
async fn upload_all(
    inner: &Arc<Context>,
    t: &TransferRecord,
    near: &LsNearby,
    a: &ferry_localsend::PrepareAnswer,
) -> Result<(), String> {
    let client = inner.ls.client.get().ok_or("LocalSend is off")?;
    let name = &near.info.alias;
    let mut before = 0u64;
    for (i, f) in t.files.iter().enumerate() {
        let fid = format!("f{i}");
        let Some(token) = a.files.get(&fid) else {
            before += f.size;
            continue;
        };
        let src = PathBuf::from(&t.sources[i]);
        let file = tokio::fs::File::open(&src).await.map_err(|e| format!("{}: {e}", src.display()))?;
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
        client
            .upload(near.addr, Some(&near.fingerprint), &a.session_id, &fid, token, file, f.size, progress)
            .await
            .map_err(|e| match e {
                LsError::Status(403) | LsError::Status(409) => format!("{name} cancelled the send"),
                LsError::Status(422) => format!("{name} received {} damaged (SHA-256 differs)", f.path.as_str()),
                e => format!("{} broke off: {e}", f.path.as_str()),
            })?;
        before += f.size;
        let (tid, done) = (t.id, before);
        let _ = inner
            .db(move |s| {
                s.update_transfer(&tid, |t| {
                    t.done_bytes = done;
                    true
                })
            })
            .await;
    }
    Ok(())
}

fn rfc3339(mtime_ns: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(mtime_ns as i128)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// After a restart no LocalSend session survives and the protocol has no resume: an outgoing
/// send that was offered or moving fails and says so (a queued one goes when the device is
/// heard again).
pub(super) async fn after_restart(inner: &Arc<Context>) {
    let Ok(all) = inner.db(|s| s.transfers()).await else { return };
    let Ok(ls) = inner.db(|s| s.ls_devices()).await else { return };
    for t in all.into_iter().filter(|t| t.outgoing && !t.state.is_final()) {
        if t.state == ferry_store::TransferState::Queued || !ls.iter().any(|r| r.id() == t.peer) {
            continue;
        }
        let why = "interrupted by a restart; send it again".to_string();
        set_state(inner, t.id, SendEvent::Failed(why), None).await;
    }
}
