//! The HTTPS API a LocalSend device serves (HTTP/1.1 over TLS, hyper): the requests are
//! checked and parsed here, and the decisions are the caller's [`Handler`]'s. Plain HTTP is
//! not served.
//!
//! Bounds: at most [`Limits::max_connections`] connections (more are closed at once), a TLS
//! handshake within [`Limits::handshake`], a request header within [`Limits::header`], no
//! pause longer than [`Limits::body_idle`] inside a body, JSON bodies of at most
//! [`MAX_JSON`] bytes (the declared length is checked before a byte is read).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::{
    DeviceInfo, Limits, LocalIdentity, LsError, MAX_JSON, PrepareAnswer, PrepareUpload, parse_info, parse_prepare,
    path, tls,
};

/// Who sent a request: its address and the fingerprint of the client certificate it showed
/// in the TLS handshake (none when it showed none).
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub client_fingerprint: Option<String>,
}

/// The decisions behind the API. Calls for one connection come one after the other; calls
/// for different connections run at once. A call's future is dropped when its connection
/// ends first (a sender that stops waiting for the user's decision): state a handler keeps
/// across an `.await` must be fine with that (e.g. a guard that clears a pending session).
pub trait Handler: Send + Sync + 'static {
    /// Our info: the answer to `GET /info` and to `/register`.
    fn info(&self) -> DeviceInfo;
    /// A device introduced itself (the answer to our announcement).
    fn register(&self, peer: &Peer, info: DeviceInfo) -> impl Future<Output = ()> + Send;
    /// A device offers files. May wait as long as the user takes to decide.
    fn prepare_upload(
        &self,
        peer: &Peer,
        req: PrepareUpload,
        pin: Option<String>,
    ) -> impl Future<Output = PrepareReply> + Send;
    /// One file's bytes. `body.len()` is the declared length; the handler checks it against
    /// the offered size.
    fn upload(
        &self,
        peer: &Peer,
        session: String,
        file_id: String,
        token: String,
        body: UploadBody,
    ) -> impl Future<Output = UploadReply> + Send;
    fn cancel(&self, peer: &Peer, session: String) -> impl Future<Output = ()> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrepareReply {
    /// 200 with the session and a token per wanted file.
    Accepted(PrepareAnswer),
    /// 204: nothing to transfer (a text message was shown, or every file declined).
    NothingWanted,
    /// 401: a PIN is needed, or the one given is wrong.
    PinRequired,
    /// 403: the user declined.
    Declined,
    /// 409: another session is in progress.
    Busy,
    /// 429: too many wrong PINs.
    TooManyAttempts,
}

impl PrepareReply {
    pub fn status(&self) -> u16 {
        match self {
            PrepareReply::Accepted(_) => 200,
            PrepareReply::NothingWanted => 204,
            PrepareReply::PinRequired => 401,
            PrepareReply::Declined => 403,
            PrepareReply::Busy => 409,
            PrepareReply::TooManyAttempts => 429,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadReply {
    Ok,
    /// 403: wrong session, file or token.
    Forbidden,
    /// 409: the session is not accepting this file now.
    Conflict,
    /// 422: the bytes do not match the offered sha256.
    HashMismatch,
    /// 413: more bytes than offered.
    TooLarge,
    /// 500: our side failed (disk full, write error).
    Failed,
}

impl UploadReply {
    pub fn status(self) -> u16 {
        match self {
            UploadReply::Ok => 200,
            UploadReply::Forbidden => 403,
            UploadReply::Conflict => 409,
            UploadReply::HashMismatch => 422,
            UploadReply::TooLarge => 413,
            UploadReply::Failed => 500,
        }
    }
}

/// An upload's body, read piece by piece: never buffered whole.
pub struct UploadBody {
    /// `None` only once handed back for draining (in `drop`).
    body: Option<Incoming>,
    len: u64,
    received: u64,
    idle: Duration,
    /// Set once the body ended (or failed): nothing is left to drain.
    finished: bool,
    /// Where an unfinished body goes when the handler drops it, so the server can drain it
    /// and the sender reads the answer (see [`drain`]).
    leftover: Option<tokio::sync::oneshot::Sender<Incoming>>,
}

impl UploadBody {
    /// The declared length (Content-Length).
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Bytes handed out so far.
    pub fn received(&self) -> u64 {
        self.received
    }
    /// The next piece, or `None` once the declared length has arrived. [`LsError::Short`] when
    /// the connection ends before, [`LsError::TooLong`] when more arrives than declared,
    /// [`LsError::Timeout`] after a pause of [`Limits::body_idle`].
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, LsError> {
        let r = self.next().await;
        if !matches!(r, Ok(Some(_))) {
            self.finished = true;
        }
        r
    }

    async fn next(&mut self) -> Result<Option<Bytes>, LsError> {
        let Some(body) = self.body.as_mut() else { return Ok(None) };
        loop {
            let frame = tokio::time::timeout(self.idle, body.frame())
                .await
                .map_err(|_| LsError::Timeout("the upload stalled"))?;
            let frame = match frame {
                None if self.received < self.len => return Err(LsError::Short),
                None => return Ok(None),
                Some(f) => f?,
            };
            let Ok(data) = frame.into_data() else { continue }; // trailers: nothing for us
            self.received += data.len() as u64;
            if self.received > self.len {
                return Err(LsError::TooLong);
            }
            if !data.is_empty() {
                return Ok(Some(data));
            }
        }
    }
}

impl Drop for UploadBody {
    fn drop(&mut self) {
        if !self.finished
            && let (Some(tx), Some(body)) = (self.leftover.take(), self.body.take())
        {
            let _ = tx.send(body);
        }
    }
}

/// Of a body the handler left unread (a refusal: wrong token, busy, too large), at most this
/// much is read and dropped so the sender, still writing, gets to read our answer instead of
/// a reset connection (HTTP/1.1 clients read the answer only after sending). 64 MiB is well
/// under a second on a LAN; past it, or past [`DRAIN_TIME`], the connection is cut.
const DRAIN_MAX: u64 = 64 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(5);

async fn drain(mut body: Incoming) {
    let mut left = DRAIN_MAX;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(frame)) = body.frame().await {
            let n = frame.data_ref().map_or(0, |d| d.len() as u64);
            if n > left {
                return;
            }
            left -= n;
        }
    })
    .await;
}

pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: Limits,
}

impl Server {
    /// Listens on `addr` (TCP). [`LsError::PortTaken`] when another program holds it.
    pub async fn bind(addr: SocketAddr, id: Arc<LocalIdentity>) -> Result<Server, LsError> {
        let acceptor = tls::acceptor(&id)?;
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(LsError::PortTaken(addr.port())),
            Err(e) => return Err(e.into()),
        };
        Ok(Server { listener, acceptor, limits: Limits::default() })
    }

    pub fn with_limits(mut self, limits: Limits) -> Server {
        self.limits = limits;
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `stop` completes; then every connection still open is dropped.
    pub async fn run<H: Handler>(self, h: Arc<H>, stop: impl Future<Output = ()>) {
        let slots = Arc::new(Semaphore::new(self.limits.max_connections));
        let limits = Arc::new(self.limits);
        let mut conns = tokio::task::JoinSet::new();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, addr)) => {
                        let Ok(slot) = slots.clone().try_acquire_owned() else {
                            tracing::debug!("localsend: {addr} refused: {} connections open", limits.max_connections);
                            continue; // dropping `tcp` closes it
                        };
                        let (acceptor, limits, h) = (self.acceptor.clone(), limits.clone(), h.clone());
                        conns.spawn(async move {
                            serve_connection(tcp, addr, acceptor, limits, h).await;
                            drop(slot);
                        });
                    }
                    Err(e) => {
                        // Out of descriptors and the like: pause rather than spin.
                        tracing::warn!("localsend: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        conns.shutdown().await;
    }
}

async fn serve_connection<H: Handler>(
    tcp: TcpStream,
    addr: SocketAddr,
    acceptor: TlsAcceptor,
    limits: Arc<Limits>,
    h: Arc<H>,
) {
    let tls = match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return tracing::debug!("localsend: TLS with {addr} failed: {e}"),
        Err(_) => return tracing::debug!("localsend: {addr} did not finish the TLS handshake"),
    };
    let peer = Arc::new(Peer { addr, client_fingerprint: tls::peer_fingerprint(tls.get_ref().1) });
    let header_timeout = limits.header;
    let service = hyper::service::service_fn(move |req| {
        let (h, peer, limits) = (h.clone(), peer.clone(), limits.clone());
        async move { Ok::<_, Infallible>(route(&*h, &peer, &limits, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(tls), service);
    if let Err(e) = conn.await {
        tracing::debug!("localsend: connection from {addr} ended: {e}");
    }
}

type Reply = Response<Full<Bytes>>;

fn empty(status: u16) -> Reply {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

fn json(status: u16, body: &impl serde::Serialize) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut r = empty(status);
    *r.body_mut() = Full::new(Bytes::from(bytes));
    r.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

/// An error answer with the app's `{"message": ...}` body.
fn refuse(status: u16, message: &str) -> Reply {
    json(status, &serde_json::json!({ "message": message }))
}

async fn route<H: Handler>(h: &H, peer: &Peer, limits: &Limits, req: Request<Incoming>) -> Reply {
    let q = Query::of(&req);
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, path::INFO) => json(200, &h.info()),
        (Method::POST, path::REGISTER) => match read_json(req, limits).await.map(|b| parse_info(&b)) {
            Ok(Ok(info)) => {
                h.register(peer, info).await;
                json(200, &h.info())
            }
            Ok(Err(e)) => refuse(400, &e.to_string()),
            Err(reply) => reply,
        },
        (Method::POST, path::PREPARE) => match read_json(req, limits).await.map(|b| parse_prepare(&b)) {
            Ok(Ok(offer)) => match h.prepare_upload(peer, offer, q.get("pin")).await {
                PrepareReply::Accepted(answer) => json(200, &answer),
                other => empty(other.status()),
            },
            Ok(Err(e)) => refuse(400, &e.to_string()),
            Err(reply) => reply,
        },
        (Method::POST, path::UPLOAD) => {
            let (Some(session), Some(file), Some(token)) = (q.get("sessionId"), q.get("fileId"), q.get("token")) else {
                return refuse(400, "sessionId, fileId and token are required");
            };
            let Some(len) = declared_length(&req) else { return refuse(411, "Content-Length is required") };
            let (leftover, unread) = tokio::sync::oneshot::channel();
            let body = UploadBody {
                body: Some(req.into_body()),
                len,
                received: 0,
                idle: limits.body_idle,
                finished: false,
                leftover: Some(leftover),
            };
            let reply = h.upload(peer, session, file, token, body).await;
            // A body the handler dropped unread (not one it kept, e.g. moved to a task).
            let mut unread = unread;
            if let Ok(rest) = unread.try_recv() {
                drain(rest).await;
            }
            empty(reply.status())
        }
        (Method::POST, path::CANCEL) => match q.get("sessionId") {
            Some(session) => {
                h.cancel(peer, session).await;
                empty(200)
            }
            None => refuse(400, "sessionId is required"),
        },
        (_, path::INFO | path::REGISTER | path::PREPARE | path::UPLOAD | path::CANCEL) => empty(405),
        _ => empty(404),
    }
}

/// The Content-Length of a body sent with one (a chunked body has none: refused, since an
/// upload's size must be known before it is written).
fn declared_length(req: &Request<Incoming>) -> Option<u64> {
    if req.headers().contains_key(header::TRANSFER_ENCODING) {
        return None;
    }
    req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// A JSON body, at most [`MAX_JSON`] bytes: a declared length over it is refused (413) without
/// keeping a byte; a chunked body is refused as soon as it passes the cap. Either way the rest
/// is drained (bounded) so the sender reads the refusal.
async fn read_json(req: Request<Incoming>, limits: &Limits) -> Result<Vec<u8>, Reply> {
    let too_large = || refuse(413, &format!("JSON bodies are capped at {MAX_JSON} bytes"));
    let declared = declared_length(&req);
    if declared.is_some_and(|n| n > MAX_JSON as u64) {
        // Read and dropped (bounded, see `drain`) so the sender reads the 413.
        drain(req.into_body()).await;
        return Err(too_large());
    }
    let mut body = req.into_body();
    let mut buf = Vec::with_capacity(declared.unwrap_or(0) as usize);
    let deadline = tokio::time::Instant::now() + limits.json_body;
    loop {
        let next = tokio::time::timeout(limits.body_idle, body.frame());
        let frame = match tokio::time::timeout_at(deadline, next).await {
            Err(_) | Ok(Err(_)) => return Err(refuse(408, "the body was too slow")),
            Ok(Ok(None)) => return Ok(buf),
            Ok(Ok(Some(Err(e)))) => return Err(refuse(400, &e.to_string())),
            Ok(Ok(Some(Ok(f)))) => f,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_JSON {
                drop(buf);
                drain(body).await;
                return Err(too_large());
            }
            buf.extend_from_slice(&data);
        }
    }
}

/// A request's query parameters (percent-decoded). Values are capped: ids and PINs are short,
/// and a value past the cap is treated as absent.
struct Query(Vec<(String, String)>);

impl Query {
    /// Longest value we take: ids and tokens are at most 128 characters (see info.rs).
    const MAX_VALUE: usize = 256;

    fn of<B>(req: &Request<B>) -> Query {
        let q = req.uri().query().unwrap_or("");
        Query(form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
    }

    fn get(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty() && v.len() <= Query::MAX_VALUE && !v.chars().any(char::is_control))
    }
}
