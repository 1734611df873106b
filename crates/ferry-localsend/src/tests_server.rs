//! The client against the server on 127.0.0.1, and raw requests the client would never send.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::*;

const LOCAL: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
/// Bounds every wait of these tests: far above what loopback needs.
const WAIT: Duration = Duration::from_secs(20);

/// One upload as the handler saw it: session, file, token, declared length, and the bytes
/// and their SHA-256 (hex), or the error that ended the body.
type Upload = (String, String, String, u64, Result<(u64, String), String>);

#[derive(Default)]
struct Seen {
    registered: Vec<(Option<String>, DeviceInfo)>,
    pins: Vec<Option<String>>,
    uploads: Vec<Upload>,
    cancelled: Vec<String>,
}

struct TestHandler {
    me: DeviceInfo,
    reply: Mutex<PrepareReply>,
    /// Every call but `info`: the checks that refuse a request must leave this at 0.
    calls: AtomicUsize,
    seen: Mutex<Seen>,
    /// prepare_upload waits for ever (a user who never decides) ...
    hang: std::sync::atomic::AtomicBool,
    /// ... and counts here when its future is dropped.
    dropped: AtomicUsize,
}

struct CountDrop<'a>(&'a AtomicUsize);

impl Drop for CountDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn device(alias: &str, fingerprint: &str) -> DeviceInfo {
    DeviceInfo {
        alias: alias.into(),
        version: "2.1".into(),
        device_model: Some("Linux".into()),
        device_type: Some(DeviceType::Desktop),
        fingerprint: fingerprint.into(),
        port: PORT,
        protocol: Protocol::Https,
        download: false,
        announce: None,
    }
}

impl Handler for TestHandler {
    fn info(&self) -> DeviceInfo {
        self.me.clone()
    }
    async fn register(&self, peer: &Peer, info: DeviceInfo) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().registered.push((peer.client_fingerprint.clone(), info));
    }
    async fn prepare_upload(&self, _peer: &Peer, _req: PrepareUpload, pin: Option<String>) -> PrepareReply {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().pins.push(pin);
        if self.hang.load(Ordering::SeqCst) {
            let _count = CountDrop(&self.dropped);
            std::future::pending::<()>().await;
        }
        self.reply.lock().unwrap().clone()
    }
    async fn upload(
        &self,
        _p: &Peer,
        session: String,
        file: String,
        token: String,
        mut body: UploadBody,
    ) -> UploadReply {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if token == "refuse" {
            return UploadReply::Forbidden; // without reading a byte of the body
        }
        let declared = body.len();
        let mut hash = Sha256::new();
        let result = loop {
            match body.chunk().await {
                Ok(Some(data)) => hash.update(&data),
                Ok(None) => break Ok((body.received(), hex(&hash.finalize()))),
                Err(e) => break Err(e.to_string()),
            }
        };
        let ok = result.is_ok();
        self.seen.lock().unwrap().uploads.push((session, file, token, declared, result));
        if ok { UploadReply::Ok } else { UploadReply::Failed }
    }
    async fn cancel(&self, _peer: &Peer, session: String) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().cancelled.push(session);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Running {
    addr: SocketAddr,
    h: Arc<TestHandler>,
    id: Arc<LocalIdentity>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(limits: Limits) -> Running {
    let id = Arc::new(LocalIdentity::generate().unwrap());
    let server = Server::bind(LOCAL, id.clone()).await.unwrap().with_limits(limits);
    let addr = server.local_addr();
    let h = Arc::new(TestHandler {
        me: device("Server", &id.fingerprint),
        reply: Mutex::new(PrepareReply::Declined),
        calls: AtomicUsize::new(0),
        seen: Mutex::default(),
        hang: Default::default(),
        dropped: AtomicUsize::new(0),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(h.clone(), async move {
        let _ = stopped.await;
    }));
    Running { addr, h, id, _stop: stop }
}

fn client() -> (Client, Arc<LocalIdentity>) {
    let id = Arc::new(LocalIdentity::generate().unwrap());
    (Client::new(id.clone()), id)
}

fn offer(from: &DeviceInfo, size: u64) -> PrepareUpload {
    let meta = FileMeta {
        id: "f1".into(),
        file_name: "big.bin".into(),
        size,
        file_type: "application/octet-stream".into(),
        sha256: None,
        preview: None,
        metadata: None,
    };
    PrepareUpload { info: from.clone(), files: [("f1".to_string(), meta)].into() }
}

/// A raw request over TLS (as our client, with its certificate): the whole answer as text.
/// Written while the answer is read: the server may answer (413) and close before taking
/// the whole request, and an unread request must not cost us its answer.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let id = LocalIdentity::generate().unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let tls = tls::connector(&id).unwrap().connect(name, tcp).await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(tls);
    let request = request.to_vec();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&request).await;
        wr // kept open until the answer is read: a half-close would end the connection early
    });
    let mut answer = vec![];
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    // Until the server closes (or resets): every answer carries `Connection: close` or ends it.
    while let Ok(Ok(n @ 1..)) = tokio::time::timeout_at(deadline, rd.read(&mut buf)).await {
        answer.extend_from_slice(&buf[..n]);
    }
    writer.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn info_and_register_both_ways_with_fingerprints() {
    let s = start(Limits::default()).await;
    let (c, cid) = client();
    let (info, seen) = c.info(s.addr, Some(&s.id.fingerprint)).await.unwrap();
    assert_eq!((info, seen.clone()), (s.h.me.clone(), s.id.fingerprint.clone()));
    // The app writes fingerprints in lower case: a lower-case pin is the same pin.
    c.info(s.addr, Some(&s.id.fingerprint.to_lowercase())).await.unwrap();
    let me = DeviceInfo { announce: Some(true), ..device("Client", &cid.fingerprint) };
    let (answer, _) = c.register(s.addr, None, &me).await.unwrap();
    assert_eq!(answer, s.h.me);
    let seen = s.h.seen.lock().unwrap();
    let (client_fp, info) = &seen.registered[0];
    assert_eq!(client_fp.as_deref(), Some(cid.fingerprint.as_str()), "the server sees the client certificate");
    assert_eq!(*info, DeviceInfo { announce: None, ..me }, "register carries no announce");
}

#[tokio::test]
async fn a_wrong_pin_stops_before_any_request() {
    let s = start(Limits::default()).await;
    let (c, cid) = client();
    let wrong = "AB".repeat(32);
    match c.register(s.addr, Some(&wrong), &device("Client", &cid.fingerprint)).await {
        Err(LsError::Pin { expected, got }) => assert_eq!((expected, got), (wrong, s.id.fingerprint.clone())),
        other => panic!("expected a pin error, got {other:?}"),
    }
    let req = offer(&device("Client", &cid.fingerprint), 1);
    assert!(matches!(c.prepare_upload(s.addr, Some("00"), &req, None, WAIT).await, Err(LsError::Pin { .. })));
    assert_eq!(s.h.calls.load(Ordering::SeqCst), 0, "the handler was never called");
}

#[tokio::test]
async fn every_prepare_reply_maps_to_its_status_and_back() {
    let s = start(Limits::default()).await;
    let (c, cid) = client();
    let req = offer(&device("Client", &cid.fingerprint), 5);
    let accepted = PrepareAnswer { session_id: "s-1".into(), files: [("f1".to_string(), "tok".to_string())].into() };
    let cases = [
        (PrepareReply::Accepted(accepted.clone()), PrepareOutcome::Accepted(accepted)),
        (PrepareReply::NothingWanted, PrepareOutcome::NothingWanted),
        (PrepareReply::PinRequired, PrepareOutcome::PinRequired),
        (PrepareReply::Declined, PrepareOutcome::Declined),
        (PrepareReply::Busy, PrepareOutcome::Busy),
        (PrepareReply::TooManyAttempts, PrepareOutcome::TooManyAttempts),
    ];
    for (reply, outcome) in cases {
        *s.h.reply.lock().unwrap() = reply;
        assert_eq!(
            c.prepare_upload(s.addr, Some(&s.id.fingerprint), &req, Some("12 34&"), WAIT).await.unwrap(),
            outcome
        );
    }
    assert_eq!(s.h.seen.lock().unwrap().pins, vec![Some("12 34&".to_string()); 6], "the PIN arrives decoded");
    // An answer naming a file we did not offer is refused by the client.
    let bogus = PrepareAnswer { session_id: "s".into(), files: [("f9".to_string(), "t".to_string())].into() };
    *s.h.reply.lock().unwrap() = PrepareReply::Accepted(bogus);
    assert!(matches!(c.prepare_upload(s.addr, None, &req, None, WAIT).await, Err(LsError::Json(_))));
    c.cancel(s.addr, None, "s-1").await.unwrap();
    assert_eq!(s.h.seen.lock().unwrap().cancelled, ["s-1"]);
}

#[tokio::test]
async fn upload_streams_twenty_mib_intact() {
    const LEN: u64 = 20 << 20;
    let s = start(Limits::default()).await;
    let (c, _) = client();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    // Not zeros: a pattern that differs per position, so a lost or repeated chunk shows.
    let data: Vec<u8> = (0..LEN).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let file = tokio::fs::File::open(&path).await.unwrap();
    let mut last = 0;
    let started = Instant::now();
    c.upload(s.addr, Some(&s.id.fingerprint), "s 1", "f/1", "t&1", file, LEN, |n| last = n).await.unwrap();
    eprintln!("20 MiB over loopback TLS in {:?}", started.elapsed());
    assert_eq!(last, LEN, "progress reaches the length");
    let seen = s.h.seen.lock().unwrap();
    let (session, file, token, declared, result) = &seen.uploads[0];
    assert_eq!((session.as_str(), file.as_str(), token.as_str(), *declared), ("s 1", "f/1", "t&1", LEN));
    assert_eq!(result.as_ref().unwrap(), &(LEN, hex(&Sha256::digest(&data))));
}

#[tokio::test]
async fn upload_bodies_are_held_to_their_declared_length() {
    let s = start(Limits::default()).await;
    let head = "POST /api/localsend/v2/upload?sessionId=s&fileId=f&token=t HTTP/1.1\r\nHost: x\r\n";
    let close = "Connection: close\r\n";
    // Longer than declared: the handler gets the declared 10 bytes and no more; the rest is
    // no request and is refused.
    let answer = raw(s.addr, format!("{head}Content-Length: 10\r\n\r\n0123456789EXTRA BYTES\r\n\r\n").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("HTTP/1.1 400"), "the extra bytes are refused: {answer}");
    let sha10 = hex(&Sha256::digest(b"0123456789"));
    assert_eq!(s.h.seen.lock().unwrap().uploads[0].4, Ok((10, sha10)));
    // Shorter than declared, then the connection ends: the handler sees Short.
    {
        let id = LocalIdentity::generate().unwrap();
        let tcp = TcpStream::connect(s.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::IpAddress(s.addr.ip().into());
        let mut tls = tls::connector(&id).unwrap().connect(name, tcp).await.unwrap();
        tls.write_all(
            format!("{head}Content-Length: 100\r\n\r\nonly fifty bytes..................................").as_bytes(),
        )
        .await
        .unwrap();
        tls.shutdown().await.unwrap();
        let mut rest = vec![];
        let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut rest)).await;
    }
    let deadline = Instant::now() + WAIT;
    while s.h.seen.lock().unwrap().uploads.len() < 2 {
        assert!(Instant::now() < deadline, "the short upload never reached the handler");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.h.seen.lock().unwrap().uploads[1].4, Err(LsError::Short.to_string()));
    // Chunked or no length: 411, the handler not called.
    let calls = s.h.calls.load(Ordering::SeqCst);
    let chunked =
        raw(s.addr, format!("{head}{close}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").as_bytes()).await;
    assert!(chunked.starts_with("HTTP/1.1 411"), "{chunked}");
    let no_ids = raw(
        s.addr,
        b"POST /api/localsend/v2/upload?sessionId=s HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(no_ids.starts_with("HTTP/1.1 400"), "{no_ids}");
    assert_eq!(s.h.calls.load(Ordering::SeqCst), calls);
}

#[tokio::test]
async fn json_bodies_are_capped_and_checked_before_the_handler() {
    let s = start(Limits::default()).await;
    let prepare = "POST /api/localsend/v2/prepare-upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
    // Declared over the cap: refused without waiting for (or reading) the body.
    let declared = raw(s.addr, format!("{prepare}Content-Length: {}\r\n\r\n{{", MAX_JSON + 1).as_bytes()).await;
    assert!(declared.starts_with("HTTP/1.1 413"), "{declared}");
    // Chunked past the cap: cut as soon as it passes.
    let mut chunked = format!("{prepare}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
    let piece = vec![b' '; 1 << 20];
    for _ in 0..5 {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(&piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let streamed = raw(s.addr, &chunked).await;
    assert!(streamed.starts_with("HTTP/1.1 413"), "{streamed}");
    let malformed = raw(s.addr, format!("{prepare}Content-Length: 9\r\n\r\n{{\"info\":1").as_bytes()).await;
    assert!(malformed.starts_with("HTTP/1.1 400"), "{malformed}");
    let register = "POST /api/localsend/v2/register HTTP/1.1\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}";
    assert!(raw(s.addr, register.as_bytes()).await.starts_with("HTTP/1.1 400"));
    assert!(
        raw(s.addr, b"GET /api/localsend/v1/info HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 404")
    );
    assert!(
        raw(s.addr, b"GET /api/localsend/v2/upload HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 405")
    );
    assert_eq!(s.h.calls.load(Ordering::SeqCst), 0, "no refused request reached the handler");
}

#[tokio::test]
async fn connections_are_capped_and_silent_ones_closed_after_the_handshake_timeout() {
    let limits = Limits { max_connections: 2, handshake: Duration::from_millis(300), ..Limits::default() };
    let s = start(limits).await;
    let (c, _) = client();
    let mut silent = vec![TcpStream::connect(s.addr).await.unwrap(), TcpStream::connect(s.addr).await.unwrap()];
    // Both slots are held: a third connection is closed at once.
    assert!(c.info(s.addr, None).await.is_err(), "a connection past the cap was served");
    // The silent ones are closed by the server after the handshake timeout.
    let started = Instant::now();
    for tcp in &mut silent {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut byte)).await.expect("closed in time").unwrap_or(0);
        assert_eq!(n, 0, "the server sent something to a silent client");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
    // Their slots are free again (the server frees a slot just after closing: poll, bounded).
    let deadline = Instant::now() + WAIT;
    while c.info(s.addr, None).await.is_err() {
        assert!(Instant::now() < deadline, "the slots never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn plain_http_devices_and_taken_ports_are_named() {
    // A plain HTTP server (a LocalSend set to HTTP): answers anything with an HTTP error.
    let plain = tokio::net::TcpListener::bind(LOCAL).await.unwrap();
    let addr = plain.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((mut tcp, _)) = plain.accept().await else { return };
            let mut buf = [0u8; 512];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        }
    });
    let (c, _) = client();
    assert!(matches!(c.info(addr, None).await, Err(LsError::PlainHttp)));

    let s = start(Limits::default()).await;
    let again = Server::bind(s.addr, s.id.clone()).await;
    assert!(matches!(again, Err(LsError::PortTaken(p)) if p == s.addr.port()));
}

#[tokio::test]
async fn a_sender_that_gives_up_ends_the_pending_decision() {
    let s = start(Limits::default()).await;
    s.h.hang.store(true, Ordering::SeqCst);
    let (c, cid) = client();
    let req = offer(&device("Client", &cid.fingerprint), 1);
    let gave_up = c.prepare_upload(s.addr, None, &req, None, Duration::from_millis(300)).await;
    assert!(matches!(gave_up, Err(LsError::Timeout(_))), "{gave_up:?}");
    // The connection closed: the server drops the handler's future (poll, bounded).
    let deadline = Instant::now() + WAIT;
    while s.h.dropped.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the handler still waits for a sender that left");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_header_timeout() {
    let s = start(Limits { header: Duration::from_millis(400), ..Limits::default() }).await;
    let started = Instant::now();
    // No `Connection: close`: the server keeps the connection for a next request, then gives up.
    let answer = raw(s.addr, b"GET /api/localsend/v2/info HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
}

#[tokio::test]
async fn a_client_without_a_certificate_is_served_without_a_fingerprint() {
    let s = start(Limits::default()).await;
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(s.addr.ip().into());
    let mut tls = tls::connector_without_certificate().connect(name, tcp).await.unwrap();
    let body = serde_json::to_string(&device("Anonymous", "F00D")).unwrap();
    let req = format!(
        "POST /api/localsend/v2/register HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut answer = vec![];
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut answer)).await;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    let seen = s.h.seen.lock().unwrap();
    assert_eq!((seen.registered[0].0.as_deref(), seen.registered[0].1.alias.as_str()), (None, "Anonymous"));
}

#[tokio::test]
async fn an_upload_refused_before_its_body_is_read_reports_the_status() {
    const LEN: u64 = 8 << 20;
    let s = start(Limits::default()).await;
    let (c, _) = client();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, vec![7u8; LEN as usize]).unwrap();
    for _ in 0..3 {
        let file = tokio::fs::File::open(&path).await.unwrap();
        let refused = c.upload(s.addr, None, "s", "f", "refuse", file, LEN, |_| {}).await;
        assert!(matches!(refused, Err(LsError::Status(403))), "{refused:?}");
    }
}

#[tokio::test]
async fn a_trickled_json_body_is_cut_at_its_deadline() {
    let limits = Limits { json_body: Duration::from_millis(300), ..Limits::default() };
    let s = start(limits).await;
    let id = LocalIdentity::generate().unwrap();
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(s.addr.ip().into());
    let mut tls = tls::connector(&id).unwrap().connect(name, tcp).await.unwrap();
    let head = "POST /api/localsend/v2/register HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{";
    tls.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = [0u8; 12];
    // One byte every 50 ms: never idle for long, but never done.
    let read = async {
        loop {
            tokio::select! {
                r = tls.read(&mut answer) => return r.unwrap(),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            if tls.write_all(b" ").await.is_err() {
                return 0;
            }
        }
    };
    let n = tokio::time::timeout(WAIT, read).await.expect("the server answered");
    assert_eq!(&answer[..n], b"HTTP/1.1 408", "after {:?}", started.elapsed());
    assert_eq!(s.h.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_tls_1_2_client_is_served_and_its_certificate_seen() {
    let s = start(Limits::default()).await;
    let id = LocalIdentity::generate().unwrap();
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(s.addr.ip().into());
    let mut tls = tls::connector_tls12(&id).connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    let body = serde_json::to_string(&device("Old phone", &id.fingerprint)).unwrap();
    let req = format!(
        "POST /api/localsend/v2/register HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut answer = vec![];
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut answer)).await;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    let seen = s.h.seen.lock().unwrap();
    assert_eq!(seen.registered[0].0.as_deref(), Some(id.fingerprint.as_str()));
}
