//! The API's client side: one TLS connection per request (requests are few and far apart),
//! our certificate shown as the client certificate, the device's certificate compared with
//! the caller's pin before a byte of the request is written.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use crate::{
    DeviceInfo, Limits, LocalIdentity, LsError, MAX_JSON, PrepareAnswer, PrepareUpload, parse_answer, parse_info, path,
    tls,
};

/// What a device answered to a prepare-upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrepareOutcome {
    Accepted(PrepareAnswer),
    NothingWanted,
    PinRequired,
    Declined,
    Busy,
    TooManyAttempts,
    /// Any other status (500 and the like).
    Status(u16),
}

pub struct Client {
    connector: TlsConnector,
    limits: Limits,
}

/// Ends the task driving a connection when the request that needed it is done or dropped.
struct ConnTask(JoinHandle<()>);

impl Drop for ConnTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Bytes of a file read per body frame: large enough that per-frame costs vanish next to the
/// network, small enough to keep memory per upload flat.
const FILE_CHUNK: usize = 256 << 10;

impl Client {
    pub fn new(id: Arc<LocalIdentity>) -> Client {
        // A LocalIdentity's key has been loaded once already (load_or_create, generate), so
        // building the config cannot fail on it.
        let connector = tls::connector(&id).expect("a LocalIdentity holds a usable key");
        Client { connector, limits: Limits::default() }
    }

    pub fn with_limits(mut self, limits: Limits) -> Client {
        self.limits = limits;
        self
    }

    /// `GET /info`: the device's info and the fingerprint of the certificate it showed.
    pub async fn info(&self, addr: SocketAddr, pin: Option<&str>) -> Result<(DeviceInfo, String), LsError> {
        let (mut send, seen, _task) = self.connect(addr, pin).await?;
        let res = self.answer(send.send_request(request(Method::GET, addr, path::INFO, Bytes::new()))).await?;
        let body = expect_ok(res, self.limits.answer).await?;
        Ok((parse_info(&body)?, seen))
    }

    /// `POST /register` with our info (without `announce`); the answer is the device's info.
    pub async fn register(
        &self,
        addr: SocketAddr,
        pin: Option<&str>,
        me: &DeviceInfo,
    ) -> Result<(DeviceInfo, String), LsError> {
        let me = DeviceInfo { announce: None, ..me.clone() };
        let (mut send, seen, _task) = self.connect(addr, pin).await?;
        let req = request(Method::POST, addr, path::REGISTER, to_json(&me));
        let body = expect_ok(self.answer(send.send_request(req)).await?, self.limits.answer).await?;
        Ok((parse_info(&body)?, seen))
    }

    /// `POST /prepare-upload[?pin=]`, waiting up to `wait` for the answer: the receiver's user
    /// decides meanwhile (the app waits minutes).
    pub async fn prepare_upload(
        &self,
        addr: SocketAddr,
        pin: Option<&str>,
        req: &PrepareUpload,
        user_pin: Option<&str>,
        wait: Duration,
    ) -> Result<PrepareOutcome, LsError> {
        let uri = match user_pin {
            Some(p) => format!("{}?{}", path::PREPARE, query(&[("pin", p)])),
            None => path::PREPARE.to_string(),
        };
        let (mut send, _, _task) = self.connect(addr, pin).await?;
        let pending = send.send_request(request(Method::POST, addr, &uri, to_json(req)));
        let res =
            tokio::time::timeout(wait, pending).await.map_err(|_| LsError::Timeout("the receiver's decision"))??;
        Ok(match res.status().as_u16() {
            200 => PrepareOutcome::Accepted(parse_answer(&read_body(res, self.limits.answer).await?, req)?),
            204 => PrepareOutcome::NothingWanted,
            401 => PrepareOutcome::PinRequired,
            403 => PrepareOutcome::Declined,
            409 => PrepareOutcome::Busy,
            429 => PrepareOutcome::TooManyAttempts,
            other => PrepareOutcome::Status(other),
        })
    }

    /// `POST /upload`: streams `len` bytes of `file` (a file, or any reader; never buffered whole), calling
    /// `progress` with the bytes sent so far. [`LsError::Status`] for any answer but 200.
    #[allow(clippy::too_many_arguments)] // the protocol's three ids, plus where and what
    pub async fn upload(
        &self,
        addr: SocketAddr,
        pin: Option<&str>,
        session: &str,
        file_id: &str,
        token: &str,
        file: impl tokio::io::AsyncRead + Send + Unpin + 'static,
        len: u64,
        mut progress: impl FnMut(u64) + Send,
    ) -> Result<(), LsError> {
        let uri =
            format!("{}?{}", path::UPLOAD, query(&[("sessionId", session), ("fileId", file_id), ("token", token)]));
        let (tx, mut rx) = watch::channel(0u64);
        let body = FileBody { file, remaining: len, sent: 0, buf: vec![0; FILE_CHUNK.min(len as usize)], tx };
        let (mut send, _, _task) = self.connect(addr, pin).await?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::HOST, addr.to_string())
            .header(header::CONTENT_LENGTH, len)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .map_err(|e| LsError::Http(e.to_string()))?;
        let pending = send.send_request(req);
        tokio::pin!(pending);
        // A stall is a pause in progress, or no answer in time once every byte is out.
        let mut deadline = tokio::time::Instant::now() + self.limits.body_idle;
        let mut sending = true;
        let res = loop {
            tokio::select! {
                res = &mut pending => break res?,
                changed = rx.changed(), if sending => {
                    if changed.is_err() { sending = false; continue } // the body is gone: sent or failed
                    let sent = *rx.borrow_and_update();
                    progress(sent);
                    let pause = if sent >= len { self.limits.answer } else { self.limits.body_idle };
                    deadline = tokio::time::Instant::now() + pause;
                }
                _ = tokio::time::sleep_until(deadline) => return Err(LsError::Timeout("the upload stalled")),
            }
        };
        match res.status().as_u16() {
            200 => Ok(()),
            other => Err(LsError::Status(other)),
        }
    }

    /// `POST /cancel?sessionId=`.
    pub async fn cancel(&self, addr: SocketAddr, pin: Option<&str>, session: &str) -> Result<(), LsError> {
        let uri = format!("{}?{}", path::CANCEL, query(&[("sessionId", session)]));
        let (mut send, _, _task) = self.connect(addr, pin).await?;
        let res = self.answer(send.send_request(request(Method::POST, addr, &uri, Bytes::new()))).await?;
        expect_ok(res, self.limits.answer).await.map(|_| ())
    }

    /// TCP, TLS (bounded in time), the pin, then HTTP/1.1. The fingerprint the device showed
    /// comes back with the sender.
    async fn connect<B>(
        &self,
        addr: SocketAddr,
        pin: Option<&str>,
    ) -> Result<(SendRequest<B>, String, ConnTask), LsError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let tcp = tokio::time::timeout(self.limits.connect, TcpStream::connect(addr))
            .await
            .map_err(|_| LsError::Timeout("connecting"))??;
        tcp.set_nodelay(true)?;
        // An IP server name sends no SNI; LocalSend servers have no names.
        let name = ServerName::IpAddress(addr.ip().into());
        let tls = match tokio::time::timeout(self.limits.handshake, self.connector.connect(name, tcp)).await {
            Ok(Ok(tls)) => tls,
            failed => {
                if speaks_plain_http(addr, &self.limits).await {
                    return Err(LsError::PlainHttp);
                }
                return Err(match failed {
                    Ok(Err(e)) => LsError::Tls(e.to_string()),
                    _ => LsError::Timeout("the TLS handshake"),
                });
            }
        };
        let seen = tls::peer_fingerprint(tls.get_ref().1).ok_or_else(|| LsError::Tls("no certificate shown".into()))?;
        tls::check_pin(&seen, pin)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        let task = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("localsend: connection to {addr} ended: {e}");
            }
        });
        Ok((send, seen, ConnTask(task)))
    }

    async fn answer(
        &self,
        pending: impl Future<Output = Result<Response<Incoming>, hyper::Error>>,
    ) -> Result<Response<Incoming>, LsError> {
        Ok(tokio::time::timeout(self.limits.answer, pending).await.map_err(|_| LsError::Timeout("the answer"))??)
    }
}

/// Whether `addr` answers a plain `GET /info` with HTTP: asked only after TLS failed, to tell
/// the user why the device cannot be used. The request carries nothing of ours.
async fn speaks_plain_http(addr: SocketAddr, limits: &Limits) -> bool {
    let probe = async {
        let mut tcp = TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n", path::INFO);
        tcp.write_all(req.as_bytes()).await.ok()?;
        let mut head = [0u8; 5];
        tcp.read_exact(&mut head).await.ok()?;
        Some(&head == b"HTTP/")
    };
    // Bounded like a handshake: an HTTP server answers a request at once.
    tokio::time::timeout(limits.handshake, probe).await.ok().flatten().unwrap_or(false)
}

fn to_json(value: &impl serde::Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("our own types serialise"))
}

fn query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

fn request(method: Method, addr: SocketAddr, uri: &str, body: Bytes) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = method;
    *req.uri_mut() = uri.parse().expect("our paths and encoded queries are valid URIs");
    let headers = req.headers_mut();
    headers.insert(header::HOST, addr.to_string().parse().expect("an address is a valid header"));
    headers.insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    req
}

/// The body of a 200 answer; any other status is [`LsError::Status`].
async fn expect_ok(res: Response<Incoming>, idle: Duration) -> Result<Vec<u8>, LsError> {
    match res.status().as_u16() {
        200 => read_body(res, idle).await,
        other => Err(LsError::Status(other)),
    }
}

/// An answer's body, capped at [`MAX_JSON`] (a declared length over it is refused unread).
async fn read_body(res: Response<Incoming>, idle: Duration) -> Result<Vec<u8>, LsError> {
    let too_large = LsError::TooLarge { what: "an answer", cap: MAX_JSON as u64 };
    let declared = res.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_JSON as u64) {
        return Err(too_large);
    }
    let mut body = res.into_body();
    let mut buf = Vec::with_capacity(declared.unwrap_or(0) as usize);
    loop {
        match tokio::time::timeout(idle, body.frame()).await.map_err(|_| LsError::Timeout("the answer's body"))? {
            None => return Ok(buf),
            Some(frame) => {
                if let Ok(data) = frame?.into_data() {
                    if buf.len() + data.len() > MAX_JSON {
                        return Err(too_large);
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
}

/// A file's first `remaining` bytes as a body, one [`FILE_CHUNK`] at a time, reporting the
/// bytes handed to the connection through `tx`.
struct FileBody<R> {
    file: R,
    remaining: u64,
    sent: u64,
    buf: Vec<u8>,
    tx: watch::Sender<u64>,
}

impl<R: tokio::io::AsyncRead + Unpin> Body for FileBody<R> {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let me = self.get_mut();
        if me.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = me.buf.len().min(me.remaining.min(usize::MAX as u64) as usize);
        let mut rb = ReadBuf::new(&mut me.buf[..want]);
        match Pin::new(&mut me.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file is shorter than the length being sent",
            )))),
            Poll::Ready(Ok(())) => {
                let data = Bytes::copy_from_slice(rb.filled());
                me.remaining -= data.len() as u64;
                me.sent += data.len() as u64;
                me.tx.send_replace(me.sent);
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
