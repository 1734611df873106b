//! The receiving side, as the app's receive_controller.dart: `/info`, `/register`,
//! `/prepare-upload` (one session at a time, 409 otherwise; the offer asked or accepted by
//! itself; a text message — one text file with a preview — shown and answered 204 when
//! accepted, as the app's "accept nothing"; 403 declined), `/upload` (sender's address,
//! session, file id and one-use token checked; bytes streamed to the download folder) and
//! `/cancel`. Beyond the app: a client certificate is required and the sender's announced
//! fingerprint must be its certificate's; names that climb out of the folder, more bytes than
//! announced and a SHA-256 that does not match are refused (the app checks none of these).
//! Every refusal is also reported as an event `refused`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use super::{STEP, Shared, random_id, tls};

const API: &str = "/api/localsend/v2/";
/// `/register` carries one device's info: a few hundred bytes; 64 KiB is plenty.
const MAX_REGISTER: usize = 64 << 10;
/// `/prepare-upload` lists files and may carry a text message's preview; 4 MiB holds
/// thousands of files and any message a person types, and bounds what a hostile sender costs.
const MAX_PREPARE: usize = 4 << 20;
/// Wrong PINs from one address before 429 (the app's PIN dialog gives up after a few).
const MAX_PIN_ATTEMPTS: u32 = 3;
/// The longest silence inside an upload body before the upload is dropped: longer than any
/// pause a test makes on purpose, short enough that a hang ends.
const UPLOAD_SILENCE: Duration = Duration::from_secs(30);

type Resp = Response<Full<Bytes>>;

#[derive(Default)]
pub struct State {
    pub session: Option<Session>,
    pin_attempts: HashMap<IpAddr, u32>,
}

pub struct Session {
    pub id: String,
    sender_ip: IpAddr,
    sending: bool,
    files: HashMap<String, RecvFile>,
    decide: Option<oneshot::Sender<bool>>,
}

struct RecvFile {
    name: String,
    size: u64,
    sha256: Option<String>,
    token: Option<String>,
    /// Accepted and not yet finished (received, failed or refused).
    open: bool,
}

/// What the connection tells the handlers: who connected, with which certificate.
#[derive(Clone)]
struct Conn {
    remote: SocketAddr,
    cert_fp: String,
}

pub async fn serve(shared: Arc<Shared>, listener: tokio::net::TcpListener, acceptor: tokio_rustls::TlsAcceptor) {
    while let Ok((tcp, remote)) = listener.accept().await {
        let (shared, acceptor) = (shared.clone(), acceptor.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(STEP, acceptor.accept(tcp)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => return refused(&shared, "tls", 0, &format!("{remote}: {e}")),
                Err(_) => return refused(&shared, "tls", 0, &format!("{remote}: handshake timed out")),
            };
            // The verifier requires a certificate, so one is there.
            let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
            let conn = Conn { remote, cert_fp: tls::fingerprint(&cert.unwrap_or_default()) };
            let svc = hyper::service::service_fn(move |req| {
                let (shared, conn) = (shared.clone(), conn.clone());
                async move { Ok::<_, Infallible>(handle(&shared, &conn, req).await) }
            });
            let io = hyper_util::rt::TokioIo::new(tls);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
        });
    }
}

fn refused(shared: &Shared, path: &str, status: u16, reason: &str) {
    shared.emit(json!({ "event": "refused", "path": path, "status": status, "reason": reason }));
}

/// An answer; a non-2xx one is reported as `refused` too.
fn answer(shared: &Shared, path: &str, status: u16, body: Value) -> Resp {
    if status >= 300 {
        refused(shared, path, status, body["message"].as_str().unwrap_or_default());
    }
    let bytes = if body.is_null() { Bytes::new() } else { Bytes::from(body.to_string()) };
    let mut r = Response::new(Full::new(bytes));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert("content-type", "application/json".parse().unwrap());
    r
}

fn msg(m: &str) -> Value {
    json!({ "message": m })
}

pub fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The body, at most `cap` bytes; `Err` carries the answer to give.
async fn read_body(body: Incoming, cap: usize) -> Result<Value, (u16, &'static str)> {
    let bytes = match tokio::time::timeout(STEP, Limited::new(body, cap).collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return Err((413, "Request body too large"));
        }
        _ => return Err((400, "Request body unreadable")),
    };
    serde_json::from_slice(&bytes).map_err(|_| (400, "Request body malformed"))
}

async fn handle(shared: &Arc<Shared>, conn: &Conn, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let Some(route) = path.strip_prefix(API) else { return answer(shared, &path, 404, msg("Not found")) };
    match (req.method().as_str(), route) {
        ("GET", "info") => {
            if query(&req).get("fingerprint").is_some_and(|f| tls::same_fingerprint(f, &shared.fp)) {
                return answer(shared, &path, 412, msg("Self-discovered"));
            }
            answer(shared, &path, 200, shared.info())
        }
        ("POST", "register") => register(shared, conn, req).await,
        ("POST", "prepare-upload") => prepare(shared, conn, req).await,
        ("POST", "upload") => upload(shared, conn, req).await,
        ("POST", "cancel") => cancel(shared, conn, &query(&req)),
        _ => answer(shared, &path, 404, msg("Not found")),
    }
}

/// Whether the sender's announced fingerprint is its certificate's (Ferry's rule, and the
/// protocol's meaning of the fingerprint over HTTPS).
fn fp_matches(info: &Value, conn: &Conn) -> bool {
    info["fingerprint"].as_str().is_some_and(|f| tls::same_fingerprint(f, &conn.cert_fp))
}

async fn register(shared: &Arc<Shared>, conn: &Conn, req: Request<Incoming>) -> Resp {
    let p = "register";
    let body = match read_body(req.into_body(), MAX_REGISTER).await {
        Ok(b) => b,
        Err((s, m)) => return answer(shared, p, s, msg(m)),
    };
    let (Some(alias), Some(fp)) = (body["alias"].as_str(), body["fingerprint"].as_str()) else {
        return answer(shared, p, 400, msg("Request body malformed"));
    };
    if tls::same_fingerprint(fp, &shared.fp) {
        return answer(shared, p, 412, msg("Self-discovered"));
    }
    if !fp_matches(&body, conn) {
        return answer(shared, p, 403, msg("Fingerprint does not match the certificate"));
    }
    let port = body["port"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or(super::PORT);
    let device =
        super::Device { alias: alias.into(), fingerprint: fp.into(), addr: SocketAddr::new(conn.remote.ip(), port) };
    shared.heard(device, "register", &body);
    answer(shared, p, 200, shared.info())
}

/// A file name the peer will write under its folder: relative, no `..`, no backslash, not
/// empty. (The app joins the parts as they come; a test peer must not write outside its folder.)
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('\\')
        && !name.contains('\0')
        && Path::new(name).components().all(|c| matches!(c, Component::Normal(_)))
}

/// The PIN check: `None` when none is set or the right one came; else the answer (401, or
/// 429 once an address has failed too often).
fn check_pin(shared: &Shared, ip: IpAddr, pin: Option<&str>) -> Option<Resp> {
    let p = "prepare-upload";
    let want = shared.opts.pin.as_deref()?;
    let mut st = shared.state.lock().unwrap();
    let tries = st.pin_attempts.entry(ip).or_default();
    if *tries >= MAX_PIN_ATTEMPTS {
        drop(st);
        return Some(answer(shared, p, 429, msg("Too many attempts")));
    }
    if pin != Some(want) {
        *tries += 1;
        drop(st);
        return Some(answer(shared, p, 401, msg(if pin.is_none() { "PIN required" } else { "Invalid PIN" })));
    }
    st.pin_attempts.remove(&ip);
    None
}

async fn prepare(shared: &Arc<Shared>, conn: &Conn, req: Request<Incoming>) -> Resp {
    let p = "prepare-upload";
    if shared.state.lock().unwrap().session.is_some() {
        return answer(shared, p, 409, msg("Blocked by another session"));
    }
    let pin = query(&req).get("pin").cloned();
    let body = match read_body(req.into_body(), MAX_PREPARE).await {
        Ok(b) => b,
        Err((s, m)) => return answer(shared, p, s, msg(m)),
    };
    let Some(files) = body["files"].as_object().filter(|f| !f.is_empty()) else {
        return answer(shared, p, 400, msg("Request must contain at least one file"));
    };
    if !fp_matches(&body["info"], conn) {
        return answer(shared, p, 403, msg("Fingerprint does not match the certificate"));
    }
    if let Some(refusal) = check_pin(shared, conn.remote.ip(), pin.as_deref()) {
        return refusal;
    }
    let mut recv = HashMap::new();
    let mut listed = vec![];
    for (id, f) in files {
        let (Some(name), Some(size)) = (f["fileName"].as_str(), f["size"].as_u64()) else {
            return answer(shared, p, 400, msg("Request body malformed"));
        };
        if !safe_name(name) {
            return answer(shared, p, 400, msg(&format!("Unsafe file name {name:?}")));
        }
        let sha256 = f["sha256"].as_str().map(str::to_string);
        recv.insert(id.clone(), RecvFile { name: name.into(), size, sha256: sha256.clone(), token: None, open: false });
        listed.push(json!({
            "id": id, "fileName": name, "size": size, "fileType": f["fileType"], "sha256": sha256, "preview": f["preview"],
        }));
    }
    // A message: one text file carrying its text as the preview (the app's `session.message`).
    let only = files.values().next().filter(|_| files.len() == 1);
    let text = only
        .filter(|f| f["fileType"].as_str().is_some_and(|t| t == "text" || t.starts_with("text/")))
        .and_then(|f| f["preview"].as_str());
    let session = random_id();
    let (tx, rx) = oneshot::channel();
    {
        let mut st = shared.state.lock().unwrap();
        if st.session.is_some() {
            drop(st);
            return answer(shared, p, 409, msg("Blocked by another session"));
        }
        let s =
            Session { id: session.clone(), sender_ip: conn.remote.ip(), sending: false, files: recv, decide: Some(tx) };
        st.session = Some(s);
    }
    let info = &body["info"];
    let head = json!({ "session": session, "alias": info["alias"], "fingerprint": info["fingerprint"], "cert_fingerprint": conn.cert_fp });
    let mut ev = head.clone();
    match text {
        Some(t) => ev["text"] = json!(t),
        None => ev["files"] = json!(listed),
    }
    ev["event"] = json!(if text.is_some() { "text" } else { "offer" });
    shared.emit(ev);
    // Quick save never applies to messages in the app; here auto-accept answers them as a
    // person who read them would (accept nothing: 204).
    let accepted = if shared.opts.auto_accept {
        true
    } else {
        match tokio::time::timeout(shared.opts.timeout, rx).await {
            Ok(Ok(a)) => a,
            // Cancelled by the sender while waiting (the session is gone) or no answer in time.
            Ok(Err(_)) => return answer(shared, p, 500, msg("Session cancelled")),
            Err(_) => false,
        }
    };
    let mut st = shared.state.lock().unwrap();
    let Some(s) = st.session.as_mut().filter(|s| s.id == session) else {
        drop(st);
        return answer(shared, p, 500, msg("Server is in invalid state"));
    };
    if !accepted || text.is_some() {
        st.session = None;
        drop(st);
        return if accepted {
            answer(shared, p, 204, Value::Null)
        } else {
            answer(shared, p, 403, msg("File request declined by recipient"))
        };
    }
    s.sending = true;
    s.decide = None;
    let mut tokens = serde_json::Map::new();
    for (id, f) in s.files.iter_mut() {
        let token = random_id();
        tokens.insert(id.clone(), json!(token));
        f.token = Some(token);
        f.open = true;
    }
    drop(st);
    answer(shared, p, 200, json!({ "sessionId": session, "files": tokens }))
}

/// Answers the offer waiting for a person (command `accept` / `decline`).
pub fn decide(shared: &Shared, accept: bool) {
    let tx = shared.state.lock().unwrap().session.as_mut().and_then(|s| s.decide.take());
    match tx {
        Some(tx) => {
            let _ = tx.send(accept);
        }
        None => shared.error("no offer waiting for an answer"),
    }
}

/// Ends the current receive session, as a person closing the app's progress page
/// (`closeSession`): a session whose sender gave up would otherwise block the next (409).
pub fn close(shared: &Shared) {
    let s = shared.state.lock().unwrap().session.take();
    match s {
        Some(s) => shared.emit(json!({ "event": "closed", "session": s.id })),
        None => shared.error("close: no session"),
    }
}

/// `path` or, when taken, `stem (n).ext` (the app's `withCount`), first free of 1000.
fn free_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
        _ => (name.to_string(), String::new()),
    };
    (2..1000).map(|n| dir.join(format!("{stem} ({n}){ext}"))).fold(first, |p, next| if p.exists() { next } else { p })
}

async fn upload(shared: &Arc<Shared>, conn: &Conn, req: Request<Incoming>) -> Resp {
    let p = "upload";
    let q = query(&req);
    let (session, file_id, name, size, sha) = {
        let mut st = shared.state.lock().unwrap();
        let Some(s) = st.session.as_mut() else { return answer(shared, p, 409, msg("No session")) };
        if s.sender_ip != conn.remote.ip() {
            return answer(shared, p, 403, msg("Invalid IP address"));
        }
        if !s.sending {
            return answer(shared, p, 409, msg("Recipient is in wrong state"));
        }
        let (Some(fid), Some(token), Some(sid)) = (q.get("fileId"), q.get("token"), q.get("sessionId")) else {
            return answer(shared, p, 400, msg("Missing parameters"));
        };
        if *sid != s.id {
            return answer(shared, p, 403, msg("Invalid session id"));
        }
        let Some(f) = s.files.get_mut(fid).filter(|f| f.token.as_ref() == Some(token)) else {
            return answer(shared, p, 403, msg("Invalid token"));
        };
        // One use: a second upload of the same file is refused.
        f.token = None;
        (s.id.clone(), fid.clone(), f.name.clone(), f.size, f.sha256.clone())
    };
    let dest = free_path(&shared.opts.download_dir, &name);
    let result = receive(req.into_body(), &dest, size).await;
    let (status, reason, digest) = match result {
        Ok(d) if sha.as_ref().is_some_and(|s| !s.eq_ignore_ascii_case(&d)) => (422, "SHA-256 does not match".into(), d),
        Ok(d) => (200, String::new(), d),
        Err((s, r)) => (s, r, String::new()),
    };
    if status == 200 {
        shared.emit(json!({
            "event": "received", "session": session, "id": file_id, "name": name,
            "path": dest.display().to_string(), "size": size, "sha256": digest, "announced_sha256": sha,
        }));
    } else {
        let _ = std::fs::remove_file(&dest);
    }
    finish_file(shared, &session, &file_id);
    if status == 200 { answer(shared, p, 200, Value::Null) } else { answer(shared, p, status, msg(&reason)) }
}

/// Streams the body into `dest`: exactly `size` bytes; returns their SHA-256.
async fn receive(mut body: Incoming, dest: &Path, size: u64) -> Result<String, (u16, String)> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| (500, e.to_string()))?;
    }
    let mut file = tokio::fs::File::create(dest).await.map_err(|e| (500, e.to_string()))?;
    let mut hash = Sha256::new();
    let mut got = 0u64;
    loop {
        let frame = match tokio::time::timeout(UPLOAD_SILENCE, body.frame()).await {
            Err(_) => return Err((408, "upload stalled".into())),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err((400, format!("upload broke off after {got} bytes: {e}"))),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else { continue };
        got += data.len() as u64;
        if got > size {
            return Err((400, format!("more bytes than the {size} announced")));
        }
        hash.update(&data);
        file.write_all(&data).await.map_err(|e| (500, e.to_string()))?;
    }
    file.flush().await.map_err(|e| (500, e.to_string()))?;
    if got != size {
        return Err((400, format!("{got} bytes of the {size} announced")));
    }
    Ok(tls::hex(&hash.finalize()))
}

/// Marks a file finished; the session ends when none is left (the app's quick save closes it).
fn finish_file(shared: &Shared, session: &str, file_id: &str) {
    let mut st = shared.state.lock().unwrap();
    let Some(s) = st.session.as_mut().filter(|s| s.id == session) else { return };
    if let Some(f) = s.files.get_mut(file_id) {
        f.open = false;
    }
    if s.files.values().all(|f| !f.open) {
        st.session = None;
        drop(st);
        shared.emit(json!({ "event": "session_done", "session": session }));
    }
}

fn cancel(shared: &Arc<Shared>, conn: &Conn, q: &HashMap<String, String>) -> Resp {
    let p = "cancel";
    let mut st = shared.state.lock().unwrap();
    let Some(s) = st.session.as_ref() else {
        drop(st);
        // Not receiving: the app looks for a send session the other side receives.
        let sid = q.get("sessionId").cloned().unwrap_or_default();
        if super::client::cancelled_by_receiver(shared, &sid, conn.remote.ip()) {
            return answer(shared, p, 200, Value::Null);
        }
        return answer(shared, p, 403, msg("No permission"));
    };
    if s.sender_ip != conn.remote.ip() || (s.sending && q.get("sessionId") != Some(&s.id)) {
        drop(st);
        return answer(shared, p, 403, msg("No permission"));
    }
    let id = s.id.clone();
    // Dropping the session drops a waiting offer's answer channel: prepare-upload ends too.
    st.session = None;
    drop(st);
    shared.emit(json!({ "event": "cancelled", "session": id, "by": "sender" }));
    answer(shared, p, 200, Value::Null)
}
