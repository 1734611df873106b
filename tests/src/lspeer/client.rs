//! The sending side, as the app's send_provider.dart: `/register` to an address, then
//! `prepare-upload` (the receiver's fingerprint pinned, our certificate shown) answered 200
//! (upload each file, in name order), 204 (nothing wanted: done), 401 (PIN), 403 (declined),
//! 409 (busy), 429 (too many PIN attempts); a text message is one text/plain file whose preview
//! is the text. `cancel` posts `/cancel` and drops the upload's connection. Hostile modes lie
//! about names, tokens, sessions, sizes, hashes and the announced fingerprint, and every one
//! reports the HTTP status it got.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{STEP, Shared, random_id, tls};

/// Answers the peer reads: JSON of a few KiB at most; 1 MiB bounds a hostile receiver.
const MAX_ANSWER: usize = 1 << 20;
/// Upload chunks and the progress step.
const CHUNK: usize = 64 << 10;
const PROGRESS_EVERY: u64 = 1 << 20;

pub(super) type Body = BoxBody<Bytes, std::io::Error>;

/// The send running now: where to, and the receiver's session once it answered.
pub struct Outgoing {
    to: SocketAddr,
    remote_session: Option<String>,
    abort: tokio::task::AbortHandle,
}

/// Aborts the task (a connection) when dropped: an aborted send drops its connection.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub struct Sender {
    shared: Arc<Shared>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub(super) fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|n| match n {}).boxed()
}

fn addr(c: &Value) -> anyhow::Result<SocketAddr> {
    c["to"].as_str().ok_or_else(|| anyhow::anyhow!("`to` (ip:port) is required"))?.parse().map_err(Into::into)
}

/// One HTTPS request on a connection of its own: status, body, the server's fingerprint.
pub(super) async fn request(
    shared: &Shared,
    to: SocketAddr,
    pin: Option<String>,
    path: &str,
    body: Body,
    len: Option<u64>,
    limit: Duration,
) -> anyhow::Result<(u16, Bytes, String)> {
    let tcp = tokio::time::timeout(STEP, tokio::net::TcpStream::connect(to)).await??;
    let connector = tls::connector(&shared.me, pin)?;
    let name = rustls::pki_types::ServerName::IpAddress(to.ip().into());
    let tls = tokio::time::timeout(STEP, connector.connect(name, tcp)).await??;
    let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default();
    let server_fp = tls::fingerprint(&cert);
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let mut req = hyper::Request::post(format!("/api/localsend/v2/{path}")).header("host", to.to_string());
    if let Some(len) = len {
        req = req.header("content-length", len);
    }
    let req = req.header("content-type", "application/json").body(body)?;
    let resp = tokio::time::timeout(limit, send.send_request(req)).await??;
    let status = resp.status().as_u16();
    let bytes = tokio::time::timeout(STEP, Limited::new(resp.into_body(), MAX_ANSWER).collect())
        .await?
        .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, bytes, server_fp))
}

/// A file to send, as listed in prepare-upload.
struct Item {
    id: String,
    name: String,
    path: Option<std::path::PathBuf>,
    bytes: Option<Bytes>,
    size: u64,
    sha256: String,
}

fn mime(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).as_deref() {
        Some("txt") => "text/plain",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("mp4") => "video/mp4",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(tls::hex(&h.finalize()))
}

/// Whether `cancel` posted by the receiver ends our send: same session, same address.
pub fn cancelled_by_receiver(shared: &Shared, sid: &str, ip: IpAddr) -> bool {
    let mut out = shared.outgoing.lock().unwrap();
    let Some(o) = out.as_ref().filter(|o| o.to.ip() == ip && o.remote_session.as_deref() == Some(sid)) else {
        return false;
    };
    o.abort.abort();
    *out = None;
    drop(out);
    shared.emit(json!({ "event": "cancelled", "session": sid, "by": "receiver" }));
    true
}

impl Sender {
    pub fn new(shared: Arc<Shared>) -> Sender {
        Sender { shared, task: None }
    }

    pub fn abort(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// The fingerprint to pin for `c["to"]`: `fingerprint` given, else the one heard there.
    fn pin_for(&self, c: &Value, to: SocketAddr) -> Option<String> {
        c["fingerprint"].as_str().map(str::to_string).or_else(|| self.shared.known_fp(to))
    }

    /// `register`: POST our info to `to` (first contact: nothing pinned unless `fingerprint`),
    /// record the answer. `as_fingerprint` announces another fingerprint than our certificate's.
    pub async fn register(&mut self, c: &Value) {
        let sh = &self.shared;
        let to = match addr(c) {
            Ok(a) => a,
            Err(e) => return sh.error(format!("register: {e}")),
        };
        let mut info = sh.info();
        if let Some(fp) = c["as_fingerprint"].as_str() {
            info["fingerprint"] = json!(fp);
        }
        let pin = c["fingerprint"].as_str().map(str::to_string);
        match request(sh, to, pin, "register", full(info.to_string()), None, STEP).await {
            Ok((status, body, server_fp)) => {
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let announced = body["fingerprint"].as_str().unwrap_or_default().to_string();
                let matches = tls::same_fingerprint(&announced, &server_fp);
                sh.emit(json!({
                    "event": "registered", "to": to.to_string(), "status": status,
                    "fingerprint": announced, "cert_fingerprint": server_fp, "matches": matches,
                }));
                if status == 200 && matches {
                    let alias = body["alias"].as_str().unwrap_or_default().to_string();
                    sh.heard(super::Device { alias, fingerprint: announced, addr: to }, "register-answer", &body);
                }
            }
            Err(e) => {
                sh.emit(json!({ "event": "registered", "to": to.to_string(), "status": 0, "error": format!("{e:#}") }))
            }
        }
    }

    /// `send`, `send_text`, `raw_prepare`: runs in a task of its own so `cancel` can reach it.
    pub fn start(&mut self, c: Value) {
        if self.task.as_ref().is_some_and(|t| !t.is_finished()) {
            return self.shared.error("a send is running already");
        }
        let to = match addr(&c) {
            Ok(a) => a,
            Err(e) => return self.shared.error(format!("{}: {e}", c["cmd"])),
        };
        let pin = self.pin_for(&c, to);
        let shared = self.shared.clone();
        // The task waits until its record is in place, so its own clean-up comes after it.
        let (go, ready) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = ready.await;
            let r = match c["cmd"].as_str() {
                Some("raw_prepare") => raw_prepare(&shared, to, pin, &c).await,
                _ => send(&shared, to, pin, &c).await,
            };
            if let Err(e) = r {
                shared.emit(json!({ "event": "send-failed", "status": 0, "error": format!("{e:#}") }));
            }
            *shared.outgoing.lock().unwrap() = None;
        });
        let out = Outgoing { to, remote_session: None, abort: task.abort_handle() };
        *self.shared.outgoing.lock().unwrap() = Some(out);
        let _ = go.send(());
        self.task = Some(task);
    }

    /// `cancel`: drop the running send's connection and tell the receiver (the app's
    /// cancel button: `/cancel?sessionId=`).
    ///
    /// `/cancel` goes first, while the upload is still open: dropping the connection first
    /// would let the receiver end the session on the broken upload, and the cancel meet none.
    pub async fn cancel(&mut self) {
        let out = self.shared.outgoing.lock().unwrap().as_ref().map(|o| (o.to, o.remote_session.clone()));
        let Some((to, sid)) = out else { return self.shared.error("cancel: no send is running") };
        let sid = sid.unwrap_or_default();
        let pin = self.shared.known_fp(to);
        let path = format!("cancel?sessionId={sid}");
        let status = match request(&self.shared, to, pin, &path, full(""), None, STEP).await {
            Ok((s, _, _)) => s,
            Err(_) => 0,
        };
        self.shared.outgoing.lock().unwrap().take();
        self.abort();
        self.shared.emit(json!({ "event": "cancel_sent", "session": sid, "status": status }));
    }
}

/// The items of a `send` (files, read from disk) or `send_text` (the text itself).
fn items(c: &Value) -> anyhow::Result<Vec<Item>> {
    if let Some(text) = c["text"].as_str() {
        let id = random_id();
        let bytes = Bytes::copy_from_slice(text.as_bytes());
        let sha256 = tls::hex(&Sha256::digest(&bytes));
        return Ok(vec![Item {
            name: format!("{id}.txt"),
            id,
            path: None,
            size: bytes.len() as u64,
            bytes: Some(bytes),
            sha256,
        }]);
    }
    let files = c["files"].as_array().ok_or_else(|| anyhow::anyhow!("`files` or `text` is required"))?;
    let mut out = vec![];
    for f in files {
        let path =
            std::path::PathBuf::from(f["path"].as_str().ok_or_else(|| anyhow::anyhow!("a file without `path`"))?);
        let size = std::fs::metadata(&path)?.len();
        let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let name = f["name"].as_str().map(str::to_string).unwrap_or(base);
        out.push(Item { id: random_id(), name, sha256: sha256_file(&path)?, path: Some(path), bytes: None, size });
    }
    Ok(out)
}

/// The outcome of prepare-upload, as the app names it (send_provider.dart `SessionStatus`).
fn outcome(status: u16) -> &'static str {
    match status {
        200 => "accepted",
        204 => "sent",
        401 => "pin-required",
        403 => "declined",
        409 => "busy",
        429 => "too-many-attempts",
        _ => "send-failed",
    }
}

async fn send(shared: &Arc<Shared>, to: SocketAddr, pin: Option<String>, c: &Value) -> anyhow::Result<()> {
    let mode = c["mode"].as_str().unwrap_or_default();
    let mut items = items(c)?;
    items.sort_by(|a, b| a.name.cmp(&b.name));
    let with_sha = c["sha256"].as_bool().unwrap_or(true) && c["text"].is_null();
    let mut files = serde_json::Map::new();
    for it in &items {
        let mut f = json!({ "id": it.id, "fileName": it.name, "size": it.size, "fileType": mime(&it.name) });
        if with_sha {
            // bad-sha: the hash of other bytes than those that will be sent.
            let sha = if mode == "bad-sha" { tls::hex(&Sha256::digest(b"other bytes")) } else { it.sha256.clone() };
            f["sha256"] = json!(sha);
        }
        if let Some(b) = it.bytes.as_ref().filter(|_| !c["text"].is_null()) {
            f["fileType"] = json!("text/plain");
            f["preview"] = json!(String::from_utf8_lossy(b));
        }
        files.insert(it.id.clone(), f);
    }
    let mut info = shared.info();
    if let Some(fp) = c["as_fingerprint"].as_str() {
        info["fingerprint"] = json!(fp);
    }
    let body = json!({ "info": info, "files": files }).to_string();
    let path = match c["pin"].as_str() {
        Some(p) => format!("prepare-upload?pin={p}"),
        None => "prepare-upload".into(),
    };
    // The answer waits for a person: bounded by the peer's own life, not STEP.
    let (status, answer, _) = request(shared, to, pin.clone(), &path, full(body), None, shared.opts.timeout).await?;
    if status != 200 {
        let body: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        shared.emit(json!({ "event": outcome(status), "status": status, "files": [], "body": body }));
        return Ok(());
    }
    let answer: Value = serde_json::from_slice(&answer)?;
    let session = answer["sessionId"].as_str().unwrap_or_default().to_string();
    if let Some(o) = shared.outgoing.lock().unwrap().as_mut() {
        o.remote_session = Some(session.clone());
    }
    shared.emit(json!({ "event": "accepted", "status": 200, "session": session }));
    let mut results = vec![];
    for it in &items {
        let Some(token) = answer["files"][&it.id].as_str() else { continue };
        let status = upload(shared, to, pin.clone(), c, &session, it, token).await?;
        shared.emit(
            json!({ "event": "uploaded", "name": it.name, "size": it.size, "sha256": it.sha256, "status": status }),
        );
        results.push(json!({ "name": it.name, "size": it.size, "sha256": it.sha256, "status": status }));
    }
    shared.emit(json!({ "event": "sent", "status": 200, "session": session, "files": results }));
    Ok(())
}

/// One upload; the status the receiver answered. Modes: `wrong-token`, `wrong-session`,
/// `extra-bytes` (`extra` more bytes than announced, 1024 by default); `stall_after` stops
/// sending after that many bytes (event `stalled`) until cancelled.
async fn upload(
    shared: &Arc<Shared>,
    to: SocketAddr,
    pin: Option<String>,
    c: &Value,
    session: &str,
    it: &Item,
    token: &str,
) -> anyhow::Result<u16> {
    let mode = c["mode"].as_str().unwrap_or_default();
    let token = if mode == "wrong-token" { "0123456789abcdef" } else { token };
    let session = if mode == "wrong-session" { "no-such-session" } else { session };
    let extra = if mode == "extra-bytes" { c["extra"].as_u64().unwrap_or(1024) } else { 0 };
    let stall = c["stall_after"].as_u64();
    let total = it.size + extra;
    let (tx, rx) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    let feeder = feed(shared.clone(), it.name.clone(), it.path.clone(), it.bytes.clone(), total, stall, tx);
    let _feeder = AbortOnDrop(tokio::spawn(feeder));
    let body = BodyExt::boxed(StreamBody::new(rx));
    let path = format!("upload?sessionId={session}&fileId={}&token={token}", it.id);
    let (status, _, _) = request(shared, to, pin, &path, body, Some(total), shared.opts.timeout).await?;
    Ok(status)
}

/// Feeds `total` bytes (the file's, then zeros past its end) into the upload body, reporting
/// progress; with `stall`, stops after that many bytes and waits to be aborted.
async fn feed(
    shared: Arc<Shared>,
    name: String,
    path: Option<std::path::PathBuf>,
    bytes: Option<Bytes>,
    total: u64,
    stall: Option<u64>,
    mut tx: futures::channel::mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
) {
    use futures::SinkExt;
    let mut file = match &path {
        Some(p) => match tokio::fs::File::open(p).await {
            Ok(f) => Some(f),
            Err(e) => return shared.error(format!("{}: {e}", p.display())),
        },
        None => None,
    };
    let mut sent = 0u64;
    let mut next_progress = PROGRESS_EVERY;
    while sent < total {
        if stall.is_some_and(|s| sent >= s) {
            shared.emit(json!({ "event": "stalled", "name": name, "bytes": sent }));
            // Held open until `cancel` aborts this task (or the peer's timeout ends it).
            tokio::time::sleep(shared.opts.timeout).await;
            return;
        }
        let mut want = CHUNK.min((total - sent) as usize);
        if let Some(s) = stall {
            want = want.min((s - sent) as usize);
        }
        let mut buf = vec![0u8; want];
        if let Some(f) = file.as_mut() {
            let mut got = 0;
            while got < want {
                match f.read(&mut buf[got..]).await {
                    Ok(0) => break, // past the end: zeros (extra-bytes)
                    Ok(n) => got += n,
                    Err(e) => return shared.error(format!("reading {name}: {e}")),
                }
            }
        } else if let Some(b) = &bytes {
            let start = (sent as usize).min(b.len());
            let end = (start + want).min(b.len());
            buf[..end - start].copy_from_slice(&b[start..end]);
        }
        if tx.send(Ok(Frame::data(Bytes::from(buf)))).await.is_err() {
            return;
        }
        sent += want as u64;
        if sent >= next_progress || sent == total {
            shared.emit(json!({ "event": "progress", "name": name, "bytes": sent, "size": total }));
            next_progress = sent + PROGRESS_EVERY;
        }
    }
}

/// `raw_prepare`: a prepare-upload body of exactly `size` bytes (valid JSON: a real offer
/// padded with a long string), to see how the receiver treats an oversized request.
async fn raw_prepare(shared: &Arc<Shared>, to: SocketAddr, pin: Option<String>, c: &Value) -> anyhow::Result<()> {
    let size = c["size"].as_u64().unwrap_or(0) as usize;
    let file = json!({ "id": "f", "fileName": "pad.bin", "size": 1, "fileType": "application/octet-stream" });
    let head = json!({ "info": shared.info(), "files": { "f": file }, "pad": "" }).to_string();
    let mut body = head.into_bytes();
    // The padding goes inside the empty "pad" string: before its closing `"}`.
    let tail = body.split_off(body.len() - 2);
    body.resize(size.saturating_sub(tail.len()).max(body.len()), b'a');
    body.extend_from_slice(&tail);
    let len = body.len();
    let r = request(shared, to, pin, "prepare-upload", full(body), None, STEP).await;
    let (status, error) = match r {
        Ok((s, _, _)) => (s, None),
        Err(e) => (0, Some(format!("{e:#}"))),
    };
    shared.emit(json!({ "event": "raw_prepare", "bytes": len, "status": status, "error": error }));
    Ok(())
}
