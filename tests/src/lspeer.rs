//! A LocalSend device for tests, written from the LocalSend app's sources (localsend/localsend:
//! app/lib/provider/network/server/controller/receive_controller.dart, send_provider.dart,
//! common/lib/src/task/discovery/multicast_discovery.dart, app/lib/util/security_helper.dart)
//! and the protocol README, and independent of ferry-localsend (a shared bug would otherwise
//! pass unnoticed). It serves HTTPS with its own self-signed certificate and requires a client
//! certificate, announces itself by multicast and answers announcements with `/register`,
//! receives (asking or accepting by itself, with an optional PIN, one session at a time),
//! sends files and text with the receiver's fingerprint pinned, cancels, and misbehaves on
//! request (oversized JSON, lying names, tokens, sizes, hashes and fingerprints).
//!
//! Driven by commands (JSON objects, `cmd` naming one) and reporting events (JSON objects,
//! `event` naming one): the `ls-peer` binary reads them from stdin and writes them to stdout;
//! tests use [`ctl::in_process`] (in a namespace or on loopback) or the binary. Every wait is
//! bounded and the peer ends by itself after its timeout. The vocabulary is in
//! src/bin/ls-peer.rs.

mod client;
pub mod ctl;
mod discovery;
mod server;
pub mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

pub use tls::KeyKind;

/// LocalSend's port for both HTTPS and multicast discovery.
pub const PORT: u16 = 53317;
/// LocalSend's multicast group (common/lib/constants.dart `defaultMulticastGroup`).
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 167);
/// Every network step (connect, handshake, one request's answer): a LAN answers in
/// milliseconds; 10 s leaves room for a loaded test machine.
pub const STEP: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct Opts {
    pub alias: String,
    pub device_model: String,
    pub device_type: String,
    /// The protocol version announced.
    pub version: String,
    pub bind: IpAddr,
    pub port: u16,
    /// Announce the fingerprint in upper-case hex (the app's `calculateHashOfCertificate`,
    /// whose test expects upper case) or lower case.
    pub upper: bool,
    /// Join the multicast group, announce and answer announcements (namespaces only).
    pub multicast: bool,
    pub pin: Option<String>,
    /// Accept offers by itself (the app's quick save); else wait for `accept` / `decline`.
    pub auto_accept: bool,
    pub download_dir: PathBuf,
    pub key: KeyKind,
    pub timeout: Duration,
}

impl Opts {
    pub fn new(alias: &str, download_dir: PathBuf) -> Opts {
        Opts {
            alias: alias.into(),
            device_model: "Pixel".into(),
            device_type: "mobile".into(),
            version: "2.2".into(),
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: PORT,
            upper: true,
            multicast: false,
            pin: None,
            auto_accept: true,
            download_dir,
            key: KeyKind::Ecdsa,
            timeout: Duration::from_secs(120),
        }
    }
}

pub type Events = std::sync::mpsc::Sender<Value>;

/// A device heard of (by multicast, by its `/register`, or by the answer to ours).
#[derive(Clone, Debug)]
pub struct Device {
    pub alias: String,
    pub fingerprint: String,
    pub addr: SocketAddr,
}

/// What the server, the discovery and the client share.
pub struct Shared {
    pub opts: Opts,
    pub me: tls::Identity,
    /// Our fingerprint as announced (in the chosen letter case).
    pub fp: String,
    /// Where we listen (the real port when `opts.port` was 0).
    pub port: u16,
    events: Events,
    pub state: Mutex<server::State>,
    pub devices: Mutex<HashMap<SocketAddr, Device>>,
    /// The send running now, if any (one at a time, like a person at the app).
    pub outgoing: Mutex<Option<client::Outgoing>>,
}

impl Shared {
    pub fn emit(&self, v: Value) {
        let _ = self.events.send(v);
    }

    pub fn error(&self, message: impl std::fmt::Display) {
        self.emit(json!({ "event": "error", "message": message.to_string() }));
    }

    /// Our info as the app sends it in `/register`, multicast and `prepare-upload`
    /// (common/lib/model/dto/info_register_dto.dart).
    pub fn info(&self) -> Value {
        let o = &self.opts;
        json!({
            "alias": o.alias, "version": o.version, "deviceModel": o.device_model,
            "deviceType": o.device_type, "fingerprint": self.fp, "port": self.port,
            "protocol": "https", "download": false,
        })
    }

    /// Records a device heard of and reports it.
    pub fn heard(&self, d: Device, via: &str, body: &Value) {
        self.emit(json!({
            "event": "device", "via": via, "alias": d.alias, "fingerprint": d.fingerprint,
            "address": d.addr.to_string(), "version": body["version"], "deviceType": body["deviceType"],
            "deviceModel": body["deviceModel"], "protocol": body["protocol"],
        }));
        self.devices.lock().unwrap().insert(d.addr, d);
    }

    /// The fingerprint recorded for `addr`, if any device was heard there.
    pub fn known_fp(&self, addr: SocketAddr) -> Option<String> {
        self.devices.lock().unwrap().get(&addr).map(|d| d.fingerprint.clone())
    }
}

/// Runs the peer until `quit`, the end of the commands, or its timeout.
pub async fn run(opts: Opts, mut cmds: mpsc::UnboundedReceiver<Value>, events: Events) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.download_dir)?;
    let me = tls::Identity::create(opts.key)?;
    let fp = tls::fingerprint(&me.cert_der);
    let fp = if opts.upper { fp.to_uppercase() } else { fp };
    let listener = tokio::net::TcpListener::bind((opts.bind, opts.port)).await?;
    let port = listener.local_addr()?.port();
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let shared = Arc::new(Shared {
        opts,
        me,
        fp,
        port,
        events,
        state: Mutex::new(server::State::default()),
        devices: Mutex::new(HashMap::new()),
        outgoing: Mutex::new(None),
    });
    let acceptor = tls::acceptor(&shared.me)?;
    let server = tokio::spawn(server::serve(shared.clone(), listener, acceptor));
    let multicast = if shared.opts.multicast { Some(discovery::start(shared.clone()).await?) } else { None };
    shared.emit(json!({
        "event": "ready", "alias": shared.opts.alias, "fingerprint": shared.fp, "port": port,
        "multicast": multicast.is_some(),
    }));
    let mut sender = client::Sender::new(shared.clone());
    loop {
        tokio::select! {
            c = cmds.recv() => match c {
                Some(c) => if !command(&shared, &mut sender, multicast.as_ref(), c).await { break },
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => {
                shared.emit(json!({ "event": "timeout" }));
                break;
            }
        }
    }
    sender.abort();
    server.abort();
    if let Some(m) = multicast {
        m.abort();
    }
    Ok(())
}

/// One command. False: quit.
async fn command(
    shared: &Arc<Shared>,
    sender: &mut client::Sender,
    multicast: Option<&discovery::Multicast>,
    c: Value,
) -> bool {
    match c["cmd"].as_str().unwrap_or_default() {
        "quit" => return false,
        "accept" => server::decide(shared, true),
        "decline" => server::decide(shared, false),
        "close" => server::close(shared),
        "announce" => match multicast {
            Some(m) => m.announce(),
            None => shared.error("announce: multicast is off"),
        },
        "register" => sender.register(&c).await,
        "send" | "send_text" | "raw_prepare" => sender.start(c),
        "cancel" => sender.cancel().await,
        "devices" => {
            let list: Vec<Value> = shared
                .devices
                .lock()
                .unwrap()
                .values()
                .map(|d| json!({ "alias": d.alias, "fingerprint": d.fingerprint, "address": d.addr.to_string() }))
                .collect();
            shared.emit(json!({ "event": "devices", "devices": list }));
        }
        other => shared.error(format!("unknown command {other:?}")),
    }
    true
}

/// A random hex id (sessions, tokens, file ids): the app uses UUID v4; 128 random bits either way.
pub fn random_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
