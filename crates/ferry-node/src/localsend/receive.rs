//! Receiving from LocalSend devices: this node's side of `register`, `prepare-upload`, `upload`
//! and `cancel`.
//!
//! An offer is checked whole before anything is kept: the sender's certificate must be the one
//! its announcement names, the PIN (when set) right, each name a plain relative path, the sizes
//! within the send caps and within the Inbox disk's free space. A text message (one text file
//! carrying its text as `preview`) becomes a received note and is answered 204 (nothing to
//! upload), as the LocalSend app does. Files become a transfer with the usual `send` prompt, or
//! are accepted at once for a device marked auto-accept; the request is held open until the user
//! answers (bounded), as LocalSend's senders expect.
//!
//! Uploads (`upload.rs`) land in the transfer's staging folder inside the Inbox, never the Inbox
//! itself. A cancel, a refused file, or a sender gone quiet ends the session and deletes its
//! staging folder: nothing of a transfer that did not finish reaches the Inbox.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_engine::send::SendEvent;
use ferry_localsend::{DeviceInfo, Peer, PrepareAnswer, PrepareReply, PrepareUpload, UploadBody, UploadReply};
use ferry_proto::wire::{MAX_NOTE, MAX_SEND_BYTES, MAX_SEND_FILES, SendFile};
use ferry_proto::{ChunkHash, DeviceId, TransferId};
use ferry_store::{LsDeviceRecord, PromptKind, TransferRecord, TransferState};

use crate::api::{ApiError, ApiResult, ErrorCode};
use crate::clock::now_ms;
use crate::context::{Context, add_prompt};
use crate::events::Event;
use crate::ls_handle::{InFile, InSession};

use super::session::{SessionGuard, device_name, end_session, peer_is};
use crate::send::{emit_state, remove_prompt_for, remove_staging, set_state};

/// How long an offer waits for the user before it is declined: the sender's request is held
/// open meanwhile (LocalSend senders wait; localsendd gives its user 60 s, the app longer).
const ANSWER_WAIT: Duration = Duration::from_secs(120);
/// An accepted session nobody uploads to for this long is ended, so a sender that went away
/// does not keep every other sender busy (localsendd: 45 s).
const SESSION_IDLE: Duration = Duration::from_secs(60);
/// Wrong PINs from one address within `PIN_WINDOW` before it is refused (429) until the window
/// passes: a 4-digit PIN must not be guessable by trying (localsendd: 3 per 60 s).
const PIN_ATTEMPTS: u32 = 3;
const PIN_WINDOW: Duration = Duration::from_secs(60);
/// The rate-limit bucket of LocalSend devices that never sent here before (no device id is
/// all zeros: ids are SHA-256 digests).
const NEW_SENDERS: DeviceId = DeviceId([0; 32]);
/// Token and session ids: 128 random bits, hex.
fn random_hex() -> String {
    let b: [u8; 16] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The HTTPS server's handler: the node's side of each request.
pub(super) struct Receiver(pub Arc<Context>);

impl ferry_localsend::Handler for Receiver {
    fn info(&self) -> DeviceInfo {
        super::our_info(&self.0, None)
    }

    async fn register(&self, peer: &Peer, info: DeviceInfo) {
        // The certificate is the identity: a register whose body names another one is ignored.
        let Some(fp) = sender_fingerprint(peer, &info) else { return };
        let addr = SocketAddr::new(peer.addr.ip(), info.port);
        let id = LsDeviceRecord::ferry_id(&fp);
        super::remember(&self.0, info, fp, addr).await;
        super::send::flush_soon(&self.0, id);
    }

    async fn prepare_upload(&self, peer: &Peer, req: PrepareUpload, pin: Option<String>) -> PrepareReply {
        let inner = &self.0;
        match offer(inner, peer, req, pin).await {
            Ok(reply) => reply,
            Err(Refusal(reply, why)) => {
                tracing::info!(from = %peer.addr, "LocalSend offer refused: {why}");
                reply
            }
        }
    }

    async fn upload(
        &self,
        peer: &Peer,
        session: String,
        file_id: String,
        token: String,
        body: UploadBody,
    ) -> UploadReply {
        super::upload::upload(&self.0, peer, session, file_id, token, body).await
    }

    async fn cancel(&self, peer: &Peer, session: String) {
        let inner = &self.0;
        let ended = {
            let cur = inner.ls.session.lock().unwrap();
            cur.as_ref().filter(|s| s.id == session && peer_is(peer, &s.fingerprint)).map(|s| (s.transfer, s.device))
        };
        if let Some((tid, dev)) = ended {
            let name = device_name(inner, dev).await;
            end_session(inner, tid, Some(format!("{name} cancelled the send"))).await;
        }
    }
}

/// A refused offer: the status to answer and why (logged).
struct Refusal(PrepareReply, String);

fn refuse(reply: PrepareReply, why: impl Into<String>) -> Refusal {
    Refusal(reply, why.into())
}

/// The sender's fingerprint (upper case): the one its TLS client certificate shows, which the
/// body's `fingerprint` must name. None for a connection without a certificate or a body that
/// names another one.
fn sender_fingerprint(peer: &Peer, info: &DeviceInfo) -> Option<String> {
    let cert = peer.client_fingerprint.as_deref()?;
    ferry_localsend::fingerprint_eq(cert, &info.fingerprint).then(|| cert.to_ascii_uppercase())
}

/// Checks the PIN an offer carries, counting wrong ones per address.
fn check_pin(inner: &Context, peer: &Peer, given: Option<&str>) -> Result<(), Refusal> {
    let Some(want) = inner.cfg.localsend_pin.as_deref() else { return Ok(()) };
    let ip = peer.addr.ip();
    let mut failures = inner.ls.pin_failures.lock().unwrap();
    failures.retain(|_, (_, since)| since.elapsed() < PIN_WINDOW);
    if failures.get(&ip).is_some_and(|(n, _)| *n >= PIN_ATTEMPTS) {
        return Err(refuse(PrepareReply::TooManyAttempts, "too many wrong PINs; wait a minute"));
    }
    if given == Some(want) {
        return Ok(());
    }
    if given.is_some() {
        failures.entry(ip).or_insert((0, Instant::now())).0 += 1;
    }
    Err(refuse(PrepareReply::PinRequired, if given.is_some() { "wrong PIN" } else { "no PIN" }))
}

async fn offer(
    inner: &Arc<Context>,
    peer: &Peer,
    req: PrepareUpload,
    pin: Option<String>,
) -> Result<PrepareReply, Refusal> {
    let fp = sender_fingerprint(peer, &req.info).ok_or_else(|| {
        refuse(
            PrepareReply::Declined,
            "the sender showed no certificate, or one that is not the fingerprint it announced",
        )
    })?;
    check_pin(inner, peer, pin.as_deref())?;
    if req.files.is_empty() {
        return Ok(PrepareReply::NothingWanted);
    }
    if inner.ls.session.lock().unwrap().is_some() {
        return Err(refuse(PrepareReply::Busy, "another transfer is running"));
    }
    let addr = SocketAddr::new(peer.addr.ip(), req.info.port);
    let rec = super::record_for(inner, &req.info, &fp, addr).await;
    let id = rec.id();
    // A certificate costs nothing to make, so a device never seen sending before draws from
    // one bucket shared by all such devices: a flood of made-up senders gets a few messages
    // and prompts through, not one per certificate.
    let known = inner.db(move |s| s.device(&id)).await.map_err(|e| refuse(PrepareReply::Declined, e.message))?;
    if known.is_none() {
        inner
            .prompt_limits
            .check(NEW_SENDERS, "a send from a new device")
            .map_err(|e| refuse(PrepareReply::Declined, e))?;
    }
    inner.db(move |s| s.put_ls_device(&rec, true)).await.map_err(|e| refuse(PrepareReply::Declined, e.message))?;
    super::remember(inner, req.info.clone(), fp.clone(), addr).await;
    let (muted, auto) = inner
        .db(move |s| Ok((s.is_muted(&id)?, s.auto_accept(&id)?)))
        .await
        .map_err(|e| refuse(PrepareReply::Declined, e.message))?;
    if let Some(text) = text_message(&req) {
        if muted {
            return Err(refuse(PrepareReply::Declined, "the device is muted"));
        }
        if text.len() > MAX_NOTE {
            return Err(refuse(PrepareReply::Declined, format!("a message over {MAX_NOTE} bytes")));
        }
        inner.prompt_limits.check(id, "a message").map_err(|e| refuse(PrepareReply::Declined, e))?;
        crate::foreign::receive_note(inner, id, text).await;
        return Ok(PrepareReply::NothingWanted);
    }
    if muted {
        return Err(refuse(PrepareReply::Declined, "the device is muted"));
    }
    let files = check_files(&req)?;
    if !auto {
        inner.prompt_limits.check(id, "a send offer").map_err(|e| refuse(PrepareReply::Declined, e))?;
    }
    let total: u64 = files.values().map(|f| f.size).sum();
    let reserved = crate::foreign::reserve_space(inner, total).await.map_err(|e| refuse(PrepareReply::Declined, e))?;
    let t = transfer_record(id, &req, &files, auto);
    let tid = t.id;
    let session = InSession {
        id: random_hex(),
        device: id,
        fingerprint: fp,
        transfer: tid,
        files,
        accepted: auto,
        active: Instant::now(),
        received: 0,
        _reserved: reserved,
    };
    {
        let mut cur = inner.ls.session.lock().unwrap();
        if cur.is_some() {
            return Err(refuse(PrepareReply::Busy, "another transfer is running"));
        }
        *cur = Some(session);
    }
    let guard = SessionGuard::new(inner, tid, "the device stopped waiting for the answer");
    if let Err(e) = start_transfer(inner, id, t, auto).await {
        guard.disarm();
        inner.ls.session.lock().unwrap().take();
        return Err(refuse(PrepareReply::Declined, e.message));
    }
    let reply = answer_offer(inner, tid, auto).await;
    guard.disarm();
    reply
}

/// Waits for the user's answer (or takes auto-accept's) and answers the offer: the session's
/// tokens when accepted (and its watchdog started), declined otherwise.
async fn answer_offer(inner: &Arc<Context>, tid: TransferId, auto: bool) -> Result<PrepareReply, Refusal> {
    let accepted = auto || wait_answer(inner, tid).await;
    let answer = {
        let mut cur = inner.ls.session.lock().unwrap();
        match cur.as_mut().filter(|s| s.transfer == tid) {
            Some(s) if accepted => {
                s.accepted = true;
                s.active = Instant::now();
                Some(PrepareAnswer {
                    session_id: s.id.clone(),
                    files: s.files.iter().map(|(k, f)| (k.clone(), f.token.clone())).collect(),
                })
            }
            _ => None,
        }
    };
    match answer {
        Some(a) => {
            let i = inner.clone();
            inner.spawn(async move { watchdog(&i, tid).await });
            Ok(PrepareReply::Accepted(a))
        }
        None => {
            end_session(inner, tid, None).await;
            Err(refuse(PrepareReply::Declined, "declined"))
        }
    }
}

/// The text of a text message: one file, of a text type, carrying its text as `preview`.
fn text_message(req: &PrepareUpload) -> Option<String> {
    if req.files.len() != 1 {
        return None;
    }
    let f = req.files.values().next()?;
    (f.file_type.starts_with("text/") || f.file_type == "text").then(|| f.preview.clone()).flatten()
}

/// Every file of an offer, checked: a relative path Ferry accepts, no two the same, sizes and
/// counts within the send caps.
fn check_files(req: &PrepareUpload) -> Result<HashMap<String, InFile>, Refusal> {
    if req.files.len() > MAX_SEND_FILES {
        return Err(refuse(PrepareReply::Declined, format!("more than {MAX_SEND_FILES} files")));
    }
    let mut out = HashMap::new();
    let mut names = std::collections::HashSet::new();
    let mut total = 0u64;
    for (fid, f) in &req.files {
        let path = crate::foreign::check_path(&f.file_name).map_err(|e| refuse(PrepareReply::Declined, e))?;
        if !names.insert(path.as_str().to_lowercase()) {
            return Err(refuse(PrepareReply::Declined, format!("{:?} is offered twice", f.file_name)));
        }
        total = total.saturating_add(f.size);
        if total > MAX_SEND_BYTES {
            return Err(refuse(PrepareReply::Declined, format!("more than {MAX_SEND_BYTES} bytes in one send")));
        }
        let sha256 = match &f.sha256 {
            Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => Some(h.to_ascii_lowercase()),
            Some(h) if h.is_empty() => None,
            Some(h) => return Err(refuse(PrepareReply::Declined, format!("{h:?} is not a SHA-256"))),
            None => None,
        };
        out.insert(fid.clone(), InFile { token: random_hex(), path, size: f.size, sha256, busy: false, done: false });
    }
    Ok(out)
}

fn transfer_record(id: DeviceId, req: &PrepareUpload, files: &HashMap<String, InFile>, auto: bool) -> TransferRecord {
    let mut list: Vec<(&String, &InFile)> = files.iter().collect();
    list.sort_by(|a, b| a.1.path.as_str().cmp(b.1.path.as_str()));
    let mtime = |fid: &str| -> i64 {
        req.files
            .get(fid)
            .and_then(|f| f.metadata.as_ref())
            .and_then(|m| m.get("modified"))
            .and_then(|v| v.as_str())
            .and_then(|s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok())
            .map(|t| (t.unix_timestamp_nanos()).clamp(0, i64::MAX as i128) as i64)
            .unwrap_or(0)
    };
    TransferRecord {
        id: TransferId(rand::random()),
        peer: id,
        outgoing: false,
        created_ms: now_ms(),
        files: list
            .iter()
            .map(|(fid, f)| SendFile {
                path: f.path.clone(),
                size: f.size,
                mtime_ns: mtime(fid),
                executable: false,
                hash: ChunkHash([0; 32]),
                chunks: vec![],
            })
            .collect(),
        dirs: vec![],
        sources: vec![],
        state: if auto { TransferState::Active } else { TransferState::Offered },
        done_bytes: 0,
        notify: None,
        placed: vec![],
        finished_ms: None,
    }
}

/// Stores the transfer and raises its prompt (or announces it accepted).
async fn start_transfer(inner: &Arc<Context>, id: DeviceId, t: TransferRecord, auto: bool) -> ApiResult<()> {
    let r = t.clone();
    inner.db(move |s| s.add_transfer(&r).map(|_| ())).await?;
    let name = device_name(inner, id).await;
    let names = crate::send::top_names(&t);
    inner.emit(Event::SendOffered {
        id: t.id.to_hex(),
        device: id.to_string(),
        device_name: name,
        direction: "in".into(),
        files: t.files.len() as u64,
        bytes: t.total_bytes(),
        names: names.clone(),
    });
    if auto {
        emit_state(inner, &t);
        return Ok(());
    }
    let kind = PromptKind::SendOffer { transfer: t.id, files: t.files.len() as u64, bytes: t.total_bytes(), names };
    add_prompt(inner, id, kind).await.map(|_| ())
}

/// Waits (bounded) for the user's answer to the prompt of transfer `tid`; false when declined,
/// unanswered in time, or the session ended meanwhile (the sender cancelled).
async fn wait_answer(inner: &Arc<Context>, tid: TransferId) -> bool {
    let (tx, rx) = tokio::sync::oneshot::channel();
    inner.ls.answers.lock().unwrap().insert(tid, tx);
    let mut stop = inner.stop.subscribe();
    // (No await inside the branches: the stop signal's guard must not live across one.)
    let answer = tokio::select! {
        r = tokio::time::timeout(ANSWER_WAIT, rx) => r.map(|r| r.unwrap_or(false)),
        _ = stop.wait_for(|s| *s) => Ok(false),
    };
    let answer = match answer {
        Ok(yes) => yes,
        Err(_) => {
            set_state(inner, tid, SendEvent::Failed("no answer in time".into()), None).await;
            remove_prompt_for(inner, tid).await;
            false
        }
    };
    inner.ls.answers.lock().unwrap().remove(&tid);
    answer
}

/// The user answered the prompt for a send from a LocalSend device.
pub(crate) async fn answer(inner: &Arc<Context>, _device: DeviceId, id: TransferId, accept: bool) -> ApiResult<()> {
    let changed = if accept {
        set_state(inner, id, SendEvent::UserAccepted, None).await
    } else {
        let why = format!("{} declined the send", inner.cfg.name);
        set_state(inner, id, SendEvent::UserDeclined(why), None).await
    };
    let waiter = inner.ls.answers.lock().unwrap().remove(&id);
    if changed.is_none() {
        let cur = inner.db(move |s| s.transfer(&id)).await?;
        let state = cur.map(|t| t.state.as_str()).unwrap_or("gone");
        return Err(ApiError::new(ErrorCode::Conflict, format!("this send is already {state}")));
    }
    match waiter {
        Some(w) => {
            let _ = w.send(accept);
            Ok(())
        }
        None if accept => {
            // The sender is no longer waiting (it gave up, or the node restarted).
            let why = "the device stopped waiting for the answer; ask it to send again".to_string();
            set_state(inner, id, SendEvent::Failed(why.clone()), None).await;
            Err(ApiError::new(ErrorCode::Conflict, why))
        }
        None => Ok(()),
    }
}

/// Ends a session that went quiet (accepted, but no upload for `SESSION_IDLE`).
async fn watchdog(inner: &Arc<Context>, tid: TransferId) {
    let mut stop = inner.stop.subscribe();
    loop {
        let idle = {
            let cur = inner.ls.session.lock().unwrap();
            match cur.as_ref().filter(|s| s.transfer == tid) {
                None => return,
                Some(s) if s.files.values().any(|f| f.busy) => Duration::ZERO,
                Some(s) => s.active.elapsed(),
            }
        };
        if idle >= SESSION_IDLE {
            end_session(inner, tid, Some("the device stopped sending".into())).await;
            return;
        }
        let wait = SESSION_IDLE.saturating_sub(idle).max(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// After a restart no LocalSend session survives (the sender's connection is gone): an
/// incoming transfer that did not finish fails, its prompt and staging folder go. One whose
/// items were placed (recorded) before the stop is done: they are in the Inbox. One that had
/// every byte (recorded before placing began) is placed now: a stop in the middle of placing
/// leaves some items in the Inbox already, and those are found there, not placed again.
pub(super) async fn after_restart(inner: &Arc<Context>) {
    let Ok(all) = inner.db(|s| s.transfers()).await else { return };
    let Ok(ls) = inner.db(|s| s.ls_devices()).await else { return };
    for t in all.into_iter().filter(|t| !t.outgoing && !t.state.is_final()) {
        if !ls.iter().any(|r| r.id() == t.peer) {
            continue;
        }
        let placed = if !t.placed.is_empty() {
            Ok(())
        } else if t.total_bytes() > 0 && t.done_bytes == t.total_bytes() {
            super::upload::place_received(inner, &t).await
        } else {
            Err("interrupted by a restart; ask the device to send it again".to_string())
        };
        match placed {
            Ok(()) => {
                remove_staging(inner, &t.id).await;
                set_state(inner, t.id, SendEvent::Completed, None).await;
            }
            Err(why) => {
                set_state(inner, t.id, SendEvent::Failed(why), None).await;
                remove_prompt_for(inner, t.id).await;
                remove_staging(inner, &t.id).await;
            }
        }
    }
}
