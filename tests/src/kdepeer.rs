//! A KDE Connect device for tests: protocol 8 (or 7), written from KDE Connect's own sources
//! and independent of ferry-kdeconnect (a shared bug would otherwise pass unnoticed). It
//! announces itself by UDP, listens or connects over TCP, runs TLS in either role with its own
//! certificate (CN = its device id), checks the other side's CN and, once paired, its pinned
//! certificate, pairs both ways (computing the verification key itself), sends and receives
//! pings, shared text and files (payloads over TLS on 1739-1764, SHA-256 of what arrived),
//! unpairs, re-keys, comes back on another protocol version, and misbehaves on request (raw
//! lines, oversized lines, file names and payload sizes that lie).
//!
//! Driven by commands (JSON objects, `cmd` naming one) and reporting events (JSON objects,
//! `event` naming one): the `kde-peer` binary reads them from stdin and writes them to
//! stdout; tests use [`ctl::PeerCtl`], in a namespace, either way. Every wait is bounded and
//! the peer ends by itself after its timeout.

pub mod ctl;
mod payload;
pub mod proto;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use proto::{Established, Local, Stream, TheirIdentity, packet};

/// KDE Connect's fixed ports: UDP discovery, the TCP link range, the payload range.
pub const UDP_PORT: u16 = 1716;
pub const TCP_PORTS: std::ops::RangeInclusive<u16> = 1716..=1764;
pub const PAYLOAD_PORTS: std::ops::RangeInclusive<u16> = 1739..=1764;
/// While not linked, the peer announces itself this often (KDE announces on network changes
/// and on demand; a test wants the next one soon).
const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct Opts {
    pub name: String,
    pub id: String,
    pub protocol: u32,
    pub device_type: String,
    pub state: PathBuf,
    /// Open TCP to this address at start (and on `reconnect`).
    pub connect: Option<SocketAddr>,
    /// Listen on the first free port of 1716-1764.
    pub listen: bool,
    /// Bind UDP 1716 and open TCP to the first device heard there.
    pub discover: bool,
    /// Announce by UDP to this address, port 1716, while not linked (needs `listen`).
    pub announce: Option<IpAddr>,
    /// The address to listen and serve payloads on.
    pub bind: IpAddr,
    pub timeout: Duration,
}

impl Opts {
    pub fn new(name: &str, id: &str, state: PathBuf) -> Opts {
        Opts {
            name: name.into(),
            id: id.into(),
            protocol: 8,
            device_type: "phone".into(),
            state,
            connect: None,
            listen: false,
            discover: false,
            announce: None,
            bind: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            timeout: Duration::from_secs(120),
        }
    }
}

pub type Events = std::sync::mpsc::Sender<Value>;

struct Link {
    w: WriteHalf<Stream>,
    their: TheirIdentity,
    their_cert: Vec<u8>,
    remote: SocketAddr,
    serial: u64,
    reader: tokio::task::JoinHandle<()>,
}

/// A packet (or the end of the link) from the reader task of link `serial`.
type FromLink = (u64, anyhow::Result<Option<Value>>);

struct Peer {
    opts: Opts,
    local: Arc<Local>,
    events: Events,
    link: Option<Link>,
    serial: u64,
    from_link: mpsc::UnboundedSender<FromLink>,
    /// Our pairing request waiting for an answer: its timestamp.
    pair_out: Option<i64>,
    /// Their pairing request waiting for `accept_pair`: its timestamp.
    pair_in: Option<i64>,
    /// Where the other side listens (heard by UDP, or `--connect`), for `reconnect`.
    last_addr: Option<SocketAddr>,
    tcp_port: Option<u16>,
}

/// Runs the peer until `quit`, the end of the commands, or its timeout.
pub async fn run(opts: Opts, mut cmds: mpsc::UnboundedReceiver<Value>, events: Events) -> anyhow::Result<()> {
    let local = Arc::new(Local::load_or_create(&opts.state, &opts.id)?);
    let (from_link, mut links) = mpsc::unbounded_channel();
    let (accepted_tx, mut accepted) = mpsc::unbounded_channel();
    let (heard_tx, mut heard) = mpsc::unbounded_channel::<(TheirIdentity, SocketAddr)>();
    let mut tcp_port = None;
    if opts.listen {
        let listener = bind_first(opts.bind, TCP_PORTS).await?;
        tcp_port = Some(listener.local_addr()?.port());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if accepted_tx.send(tcp).is_err() {
                    return;
                }
            }
        });
    }
    if opts.discover {
        let udp = UdpSocket::bind((opts.bind, UDP_PORT)).await?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                if let Ok(id) = proto::parse_identity(buf[..n].trim_ascii_end())
                    && heard_tx.send((id, from)).is_err()
                {
                    return;
                }
            }
        });
    }
    let announcer = UdpSocket::bind((opts.bind, 0)).await?;
    announcer.set_broadcast(true)?;
    let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let mut p = Peer {
        last_addr: opts.connect,
        opts,
        local,
        events,
        link: None,
        serial: 0,
        from_link,
        pair_out: None,
        pair_in: None,
        tcp_port,
    };
    p.emit(json!({ "event": "ready", "id": p.local.id, "tcp_port": tcp_port }));
    if let Some(addr) = p.opts.connect {
        p.open(addr).await;
    }
    loop {
        tokio::select! {
            c = cmds.recv() => match c {
                Some(c) => if !p.command(c).await { break },
                None => break,
            },
            Some((serial, r)) = links.recv() => p.on_link(serial, r).await,
            Some(tcp) = accepted.recv() => p.accepted(tcp).await,
            Some((their, from)) = heard.recv() => {
                if let (None, Some(port)) = (&p.link, their.tcp_port) {
                    let addr = SocketAddr::new(from.ip(), port);
                    p.last_addr = Some(addr);
                    p.open(addr).await;
                }
            }
            _ = tick.tick(), if p.link.is_none() && p.opts.announce.is_some() && p.tcp_port.is_some() => {
                let to = SocketAddr::new(p.opts.announce.unwrap(), UDP_PORT);
                if let Err(e) = announcer.send_to(&p.identity(), to).await {
                    p.emit(json!({ "event": "error", "message": format!("announce to {to}: {e}") }));
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                p.emit(json!({ "event": "timeout" }));
                break;
            }
        }
    }
    p.close().await;
    Ok(())
}

/// An identity packet line: ping and share both ways, like a phone with only those plugins.
pub fn identity_line(id: &str, name: &str, device_type: &str, protocol: u32, tcp_port: Option<u16>) -> Vec<u8> {
    let caps = ["kdeconnect.ping", "kdeconnect.share.request"];
    let mut body = json!({
        "deviceId": id,
        "deviceName": name,
        "deviceType": device_type,
        "protocolVersion": protocol,
        "incomingCapabilities": caps,
        "outgoingCapabilities": caps,
    });
    if let Some(port) = tcp_port {
        body["tcpPort"] = json!(port);
    }
    packet("kdeconnect.identity", body)
}

async fn bind_first(bind: IpAddr, ports: std::ops::RangeInclusive<u16>) -> anyhow::Result<TcpListener> {
    for port in ports {
        if let Ok(l) = TcpListener::bind((bind, port)).await {
            return Ok(l);
        }
    }
    anyhow::bail!("no free port")
}

impl Peer {
    fn emit(&self, v: Value) {
        let _ = self.events.send(v);
    }

    fn error(&self, message: impl std::fmt::Display) {
        self.emit(json!({ "event": "error", "message": message.to_string() }));
    }

    /// Our identity line, as announced now.
    fn identity(&self) -> Vec<u8> {
        let o = &self.opts;
        identity_line(&o.id, &o.name, &o.device_type, o.protocol, self.tcp_port)
    }

    fn trust_path(&self, id: &str) -> PathBuf {
        self.opts.state.join(format!("trusted-{}.der", id.replace(|c: char| !c.is_ascii_alphanumeric(), "_")))
    }

    fn paired(&self) -> bool {
        self.link.as_ref().is_some_and(|l| self.trust_path(&l.their.id).exists())
    }

    async fn open(&mut self, addr: SocketAddr) {
        let ours = self.identity();
        match proto::open(addr, &self.local, &ours, self.opts.protocol).await {
            Ok(e) => self.linked(e, true),
            Err(e) => self.error(format!("connecting to {addr}: {e:#}")),
        }
    }

    async fn accepted(&mut self, tcp: tokio::net::TcpStream) {
        let ours = self.identity();
        match proto::accept(tcp, &self.local, &ours, self.opts.protocol).await {
            Ok(e) => self.linked(e, false),
            Err(e) => self.error(format!("accepting: {e:#}")),
        }
    }

    /// A link is up: the pin is checked, the reader task started, the old link replaced.
    fn linked(&mut self, e: Established, opened: bool) {
        if let Ok(pinned) = std::fs::read(self.trust_path(&e.their.id))
            && pinned != e.their_cert
        {
            self.error(format!("{} shows another certificate than the paired one; refused", e.their.id));
            return;
        }
        let paired = self.trust_path(&e.their.id).exists();
        if let Some(old) = self.link.take() {
            old.reader.abort();
        }
        self.serial += 1;
        let serial = self.serial;
        let (r, w) = tokio::io::split(e.stream);
        // The split half reads through the handshake's buffer first, so nothing it held is lost.
        let mut r = tokio::io::BufReader::new(r);
        let tx = self.from_link.clone();
        let reader = tokio::spawn(async move {
            loop {
                let next = proto::read_line(&mut r, proto::MAX_LINE).await.and_then(|line| match line {
                    None => Ok(None),
                    Some(l) if l.iter().all(u8::is_ascii_whitespace) => Ok(Some(Value::Null)),
                    Some(l) => Ok(Some(serde_json::from_slice(&l)?)),
                });
                let end = !matches!(next, Ok(Some(_)));
                if tx.send((serial, next)).is_err() || end {
                    return;
                }
            }
        });
        self.emit(json!({
            "event": "connected", "key": null, "id": e.their.id, "name": e.their.name,
            "version": e.version, "opened": opened, "paired": paired, "remote": e.remote.to_string(),
        }));
        if !opened && let Some(port) = e.their.tcp_port {
            self.last_addr = Some(SocketAddr::new(e.remote.ip(), port));
        }
        self.link = Some(Link { w, their: e.their, their_cert: e.their_cert, remote: e.remote, serial, reader });
    }

    async fn close(&mut self) {
        if let Some(mut l) = self.link.take() {
            l.reader.abort();
            let _ = l.w.shutdown().await;
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> bool {
        let Some(l) = self.link.as_mut() else {
            self.error("not connected");
            return false;
        };
        let r = tokio::time::timeout(proto::STEP, async {
            l.w.write_all(bytes).await?;
            l.w.flush().await
        })
        .await;
        match r {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                self.error(format!("write: {e}"));
                false
            }
            Err(_) => {
                self.error("write: timed out");
                false
            }
        }
    }

    async fn send(&mut self, kind: &str, body: Value) -> bool {
        self.write(&packet(kind, body)).await
    }

    fn key(&self, timestamp: Option<i64>) -> Option<String> {
        let l = self.link.as_ref()?;
        let ts = if self.opts.protocol >= 8 { timestamp } else { None };
        proto::verification_key(&self.local.cert_der, &l.their_cert, ts).ok()
    }

    fn pin(&self) {
        if let Some(l) = &self.link {
            let _ = std::fs::write(self.trust_path(&l.their.id), &l.their_cert);
        }
    }

    fn unpin(&self) {
        if let Some(l) = &self.link {
            let _ = std::fs::remove_file(self.trust_path(&l.their.id));
        }
    }

    /// One command. False: quit.
    async fn command(&mut self, c: Value) -> bool {
        let s = |k: &str| c[k].as_str().map(str::to_string);
        match c["cmd"].as_str().unwrap_or_default() {
            "quit" => return false,
            "pair" => {
                let ts = proto::now_ms() / 1000;
                if self.send("kdeconnect.pair", json!({ "pair": true, "timestamp": ts })).await {
                    self.pair_out = Some(ts);
                    self.emit(json!({ "event": "pair_sent", "key": self.key(Some(ts)) }));
                }
            }
            "accept_pair" | "decline_pair" => {
                let accept = c["cmd"] == "accept_pair";
                let Some(ts) = self.pair_in.take() else { return self.no("no pairing request to answer") };
                if self.send("kdeconnect.pair", json!({ "pair": accept })).await && accept {
                    self.pin();
                    self.emit(json!({ "event": "paired", "key": self.key(Some(ts)) }));
                }
            }
            "unpair" => {
                self.send("kdeconnect.pair", json!({ "pair": false })).await;
                self.unpin();
                self.emit(json!({ "event": "unpaired" }));
            }
            "ping" => {
                let body = s("message").map(|m| json!({ "message": m })).unwrap_or_else(|| json!({}));
                if self.send("kdeconnect.ping", body).await {
                    self.emit(json!({ "event": "sent", "kind": "ping" }));
                }
            }
            "share_text" => {
                if self.send("kdeconnect.share.request", json!({ "text": s("text") })).await {
                    self.emit(json!({ "event": "sent", "kind": "text" }));
                }
            }
            "send_file" => self.send_file(&c).await,
            "raw" => {
                let mut line = s("line").unwrap_or_default().into_bytes();
                line.push(b'\n');
                self.write(&line).await;
            }
            "raw_bytes" => {
                // A line that never ends: `len` bytes of a JSON string, no newline.
                let len = c["len"].as_u64().unwrap_or(0) as usize;
                let mut bytes = b"{\"id\":1,\"type\":\"kdeconnect.ping\",\"body\":{\"message\":\"".to_vec();
                bytes.resize(len.max(bytes.len()), b'a');
                self.write(&bytes).await;
            }
            "rekey" => match Local::create(&self.opts.state, &self.opts.id) {
                Ok(l) => {
                    self.local = Arc::new(l);
                    self.emit(json!({ "event": "rekeyed" }));
                    self.reconnect().await;
                }
                Err(e) => self.error(format!("rekey: {e}")),
            },
            "reconnect" => {
                if let Some(v) = c["protocol"].as_u64() {
                    self.opts.protocol = v as u32;
                }
                self.reconnect().await;
            }
            "disconnect" => {
                self.close().await;
                self.emit(json!({ "event": "disconnected", "reason": "asked" }));
            }
            other => self.error(format!("unknown command {other:?}")),
        }
        true
    }

    fn no(&self, why: &str) -> bool {
        self.error(why);
        true
    }

    /// Drops the link and opens a new one where the other side listens (when this side
    /// opened it, or heard where); a listening peer that announces is found again instead.
    async fn reconnect(&mut self) {
        self.close().await;
        self.emit(json!({ "event": "disconnected", "reason": "reconnecting" }));
        if let Some(addr) = self.last_addr.filter(|_| !self.opts.listen || self.opts.discover) {
            self.open(addr).await;
        }
    }

    async fn send_file(&mut self, c: &Value) {
        let Some(path) = c["path"].as_str().map(PathBuf::from) else { return self.error("send_file needs a path") };
        let Some(l) = &self.link else { return self.error("not connected") };
        let real = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) => return self.error(format!("{}: {e}", path.display())),
        };
        let name = c["name"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| path.file_name().unwrap().to_string_lossy().into_owned());
        let announced = c["announce_size"].as_i64().unwrap_or(real as i64);
        let job = payload::Serve {
            local: self.local.clone(),
            path,
            name: name.clone(),
            cert: l.their_cert.clone(),
            events: self.events.clone(),
        };
        let port = match job.start(self.opts.bind, PAYLOAD_PORTS).await {
            Ok(p) => p,
            Err(e) => return self.error(format!("payload port: {e}")),
        };
        let mut v = json!({
            "id": proto::now_ms(),
            "type": "kdeconnect.share.request",
            "body": { "filename": name, "open": false, "lastModified": proto::now_ms(),
                      "numberOfFiles": 1, "totalPayloadSize": announced },
            "payloadSize": announced,
            "payloadTransferInfo": { "port": port },
        });
        if let Some(extra) = c["packet"].as_object() {
            for (k, x) in extra {
                v[k] = x.clone();
            }
        }
        let mut line = serde_json::to_vec(&v).unwrap();
        line.push(b'\n');
        self.write(&line).await;
    }

    async fn on_link(&mut self, serial: u64, r: anyhow::Result<Option<Value>>) {
        if self.link.as_ref().map(|l| l.serial) != Some(serial) {
            return;
        }
        let p = match r {
            Ok(Some(Value::Null)) => return,
            Ok(Some(p)) => p,
            Ok(None) | Err(_) => {
                let reason = match r {
                    Err(e) => format!("{e:#}"),
                    _ => "closed by the other side".into(),
                };
                self.link = None;
                self.emit(json!({ "event": "disconnected", "reason": reason }));
                return;
            }
        };
        let body = &p["body"];
        match p["type"].as_str().unwrap_or_default() {
            "kdeconnect.pair" => self.on_pair(body),
            "kdeconnect.ping" => self.emit(json!({ "event": "ping", "message": body["message"] })),
            "kdeconnect.share.request" if body.get("filename").is_some() => self.fetch(&p),
            "kdeconnect.share.request" => self.emit(json!({ "event": "text", "text": body["text"] })),
            other => self.emit(json!({ "event": "packet", "type": other, "body": body })),
        }
    }

    fn on_pair(&mut self, body: &Value) {
        let want = body["pair"].as_bool().unwrap_or(false);
        let their_ts = body["timestamp"].as_i64();
        if let Some(ts) = self.pair_out.take() {
            if want {
                self.pin();
            }
            let ev = json!({ "event": "pair", "pair": want, "key": self.key(Some(ts)), "answer": true });
            return self.emit(ev);
        }
        if !want {
            self.unpin();
            self.pair_in = None;
            return self.emit(json!({ "event": "pair", "pair": false, "key": null }));
        }
        if self.paired() {
            // Already paired: KDE answers yes again.
            return self.emit(json!({ "event": "pair", "pair": true, "key": null, "again": true }));
        }
        self.pair_in = Some(their_ts.unwrap_or(0));
        self.emit(json!({ "event": "pair", "pair": true, "key": self.key(their_ts), "request": true }));
    }

    fn fetch(&self, p: &Value) {
        let Some(l) = &self.link else { return };
        let (Some(size), Some(port)) = (p["payloadSize"].as_u64(), p["payloadTransferInfo"]["port"].as_u64()) else {
            return self.error("a file without payloadSize or port");
        };
        let name = p["body"]["filename"].as_str().unwrap_or("unnamed").to_string();
        let job = payload::Fetch {
            local: self.local.clone(),
            addr: SocketAddr::new(l.remote.ip(), port as u16),
            cert: l.their_cert.clone(),
            size,
            name,
            dir: self.opts.state.join("received"),
            events: self.events.clone(),
        };
        tokio::spawn(job.run());
    }
}
