//! Hostile KDE Connect input against a real `ferry daemon` (host 0 of a namespace network,
//! KDE Connect on): malformed identities over TCP and UDP, a connection that never speaks,
//! oversized and malformed packets, payloads longer and shorter than announced, file names
//! that try to leave the Inbox or take Ferry's reserved names, an unpaired device sending
//! notes and files, and floods of connections and announcements. Each is refused, the daemon
//! keeps answering, and nothing is written in the Inbox or beside it (its listing and the
//! daemon's notes and transfers are checked).
//!
//! The misbehaving side is the test peer (`kde-peer`, host 1) or raw sockets opened from a
//! thread moved into host 1's namespace. Needs root and the `ferry` binary (see
//! kdeconnect_v8.rs); without root every test prints "skipped" and passes.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ferry_e2e::kdepeer::ctl::{PeerCtl, in_netns, kde_device, listing, notes, peer_process, start_ferry, transfers};
use ferry_e2e::netns::{Net, NsDaemon, poll};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PEER: &str = env!("CARGO_BIN_EXE_kde-peer");
const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
const FERRY_KDE: &str = "10.77.0.1:1716";

struct Setup {
    net: Net,
    ferry: NsDaemon,
    work: tempfile::TempDir,
}

impl Setup {
    fn new() -> Option<Setup> {
        let net = match Net::new(2) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("skipped: {}", e.0);
                return None;
            }
        };
        let work = tempfile::tempdir().unwrap();
        let ferry = start_ferry(&net, "desk", &work.path().join("inbox"));
        Some(Setup { net, ferry, work })
    }

    fn inbox(&self) -> std::path::PathBuf {
        self.work.path().join("inbox")
    }

    /// The peer on host 1, dialing Ferry.
    fn peer(&self, name: &str, id: &str) -> PeerCtl {
        self.peer_at(name, id, &format!("peer-{id}"))
    }

    /// [`Setup::peer`] with its own state (certificate) in `peer-...` folder `state`.
    fn peer_at(&self, name: &str, id: &str, state: &str) -> PeerCtl {
        let state = self.work.path().join(state);
        let mut p = peer_process(&self.net, 1, PEER, name, id, &state, &["--connect", FERRY_KDE]);
        p.wait_event("connected", WAIT);
        p
    }

    /// The daemon answers, and has recorded no note, no transfer and no prompt; the Inbox (if
    /// made) is empty and nothing but it was written beside it.
    fn nothing_recorded(&self) {
        assert!(self.ferry.try_cli(&["id"]).status.success(), "the daemon answers");
        assert_eq!(notes(&self.ferry), Vec::<Value>::new(), "no note recorded");
        assert_eq!(transfers(&self.ferry), Vec::<Value>::new(), "no transfer recorded");
        self.inbox_untouched();
    }

    fn inbox_untouched(&self) {
        assert_eq!(listing(&self.inbox()), Vec::<String>::new(), "nothing in the Inbox");
        let beside: Vec<String> = listing(self.work.path()).into_iter().filter(|n| !n.starts_with("peer-")).collect();
        assert!(beside.is_empty() || beside == ["inbox"], "nothing beside the Inbox: {beside:?}");
    }
}

/// Pairs the peer (it asks, the test accepts the prompt).
fn pair(s: &Setup, peer: &mut PeerCtl) {
    peer.send(json!({ "cmd": "pair" }));
    let prompt = poll("the pairing prompt", WAIT, POLL, || {
        s.ferry.json(&["pending"]).as_array()?.iter().find(|p| p["kind"] == "pair").cloned()
    });
    s.ferry.cli(&["accept", &prompt["id"].to_string()]);
    peer.wait("the answer", WAIT, |v| v["event"] == "pair" && v["answer"] == true);
}

/// A ping from a paired peer whose note shows that Ferry has handled every packet sent
/// before it (one link's packets are handled in order).
fn sentinel(s: &Setup, peer: &mut PeerCtl, text: &str) {
    peer.send(json!({ "cmd": "ping", "message": text }));
    poll(&format!("the note {text:?}"), WAIT, POLL, || notes(&s.ferry).into_iter().find(|n| n["text"] == text));
}

// ---------------------------------------------------------------------------------------------
// Raw sockets from host 1.

/// How long Ferry took to close a TCP connection on which `bytes` were sent (whatever it
/// sent meanwhile is read and dropped); `None` if still open after `limit`.
async fn closed_after(to: SocketAddr, bytes: Vec<u8>, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(to).await.expect("connect to Ferry");
    if tcp.write_all(&bytes).await.is_err() {
        return Some(t0.elapsed()); // closed while we were still writing
    }
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return t0.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

fn identity(body: Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(&json!({ "id": 1, "type": "kdeconnect.identity", "body": body })).unwrap();
    line.push(b'\n');
    line
}

fn good_body(id: &str) -> Value {
    json!({ "deviceId": id, "deviceName": "Evil", "deviceType": "phone", "protocolVersion": 8,
            "incomingCapabilities": [], "outgoingCapabilities": [], "tcpPort": 1716 })
}

/// Identities that must be refused, each on its own connection, and how the refusal looks.
fn malformed_identities() -> Vec<(&'static str, Vec<u8>)> {
    let with = |k: &str, v: Value| {
        let mut b = good_body("e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0");
        b[k] = v;
        identity(b)
    };
    let mut huge = b"{\"id\":1,\"type\":\"kdeconnect.identity\",\"body\":{\"deviceName\":\"".to_vec();
    huge.resize(4 << 20, b'a');
    vec![
        ("not JSON", b"hello, this is not JSON\n".to_vec()),
        ("a JSON list", b"[1,2,3]\n".to_vec()),
        ("body not an object", b"{\"id\":1,\"type\":\"kdeconnect.identity\",\"body\":7}\n".to_vec()),
        ("deviceId a number", with("deviceId", json!(12345))),
        ("protocolVersion a string", with("protocolVersion", json!("8"))),
        ("protocol 6", with("protocolVersion", json!(6))),
        ("device id with a path", with("deviceId", json!("../../../../etc/passwd_aaaaaaaaaaaaa"))),
        ("device id too short", with("deviceId", json!("abc"))),
        ("device id not ASCII", with("deviceId", json!("ééééééééééééééééééééééééééééééééé"))),
        ("capabilities not a list", with("incomingCapabilities", json!({ "a": 1 }))),
        ("a ping instead of an identity", b"{\"id\":1,\"type\":\"kdeconnect.ping\",\"body\":{}}\n".to_vec()),
        ("4 MiB without a newline", huge),
        (
            "bytes after the identity",
            [identity(good_body("e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1")), b"junk".to_vec()].concat(),
        ),
        ("garbage instead of TLS", [identity(good_body("e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2")), vec![0x16; 1]].concat()),
    ]
}

#[test]
fn malformed_identities_are_refused_and_the_daemon_lives() {
    let Some(s) = Setup::new() else { return };
    let to: SocketAddr = FERRY_KDE.parse().unwrap();
    let cases = malformed_identities();
    let names: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let n = cases.len();
    // All at once, plus one connection that never says anything (held until Ferry's timeout).
    let results = in_netns(&s.net.hosts[1].ns, move || async move {
        let mut set = tokio::task::JoinSet::new();
        for (i, (_, bytes)) in cases.into_iter().enumerate() {
            set.spawn(async move { (i, closed_after(to, bytes, Duration::from_secs(15)).await) });
        }
        set.spawn(async move { (usize::MAX, closed_after(to, vec![], Duration::from_secs(25)).await) });
        // UDP: datagrams that are not identities, or not acceptable ones.
        let udp = tokio::net::UdpSocket::bind("0.0.0.0:0").await.unwrap();
        let bad_id =
            identity(json!({ "deviceId": "x/../y", "deviceName": "Evil", "protocolVersion": 8, "tcpPort": 1 }));
        for d in [b"junk".to_vec(), vec![b'{'; 65_000], bad_id, identity(json!({ "deviceName": "no id" }))] {
            udp.send_to(&d, "10.77.0.1:1716").await.unwrap();
        }
        let mut out = vec![None; n];
        let mut silent = None;
        while let Some(r) = set.join_next().await {
            let (i, closed) = r.unwrap();
            if i == usize::MAX {
                silent = closed;
            } else {
                out[i] = closed;
            }
        }
        (out, silent)
    })
    .join()
    .unwrap();
    let (closed, silent) = results;
    for (name, c) in names.iter().zip(&closed) {
        let c = c.unwrap_or_else(|| panic!("{name}: Ferry kept the connection open"));
        eprintln!("{name}: closed after {:.0} ms", c.as_secs_f64() * 1000.0);
    }
    let silent = silent.expect("a silent connection is closed");
    eprintln!("a silent connection: closed after {:.1} s", silent.as_secs_f64());
    assert!(silent >= Duration::from_secs(5), "the silent one had its time to speak ({silent:?})");
    // None of them became a device; the daemon and KDE Connect still work.
    assert!(s.ferry.devices().iter().all(|d| d["kind"] != "kdeconnect"), "{:?}", s.ferry.devices());
    let mut peer = s.peer("Pixel", "c0ffeec0ffeec0ffeec0ffeec0ffeec0");
    pair(&s, &mut peer);
    sentinel(&s, &mut peer, "still here");
    assert_eq!(s.ferry.devices().iter().filter(|d| d["kind"] == "kdeconnect").count(), 1);
    assert_eq!(transfers(&s.ferry), Vec::<Value>::new());
    s.inbox_untouched();
}

/// An unpaired device may only ask to pair: its pings, shared text and files are dropped.
#[test]
fn an_unpaired_device_is_only_heard_asking_to_pair() {
    let Some(s) = Setup::new() else { return };
    // This one runs in this process (a thread moved into host 1's namespace), not as `kde-peer`.
    let id = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
    let mut opts = ferry_e2e::kdepeer::Opts::new("Stranger", id, s.work.path().join(format!("peer-{id}")));
    opts.connect = Some(FERRY_KDE.parse().unwrap());
    let mut peer = PeerCtl::in_process(&s.net.hosts[1].ns, opts);
    peer.wait_event("connected", WAIT);
    let file = s.work.path().join("peer-file.bin");
    std::fs::write(&file, ferry_e2e::random_bytes(3, 100_000)).unwrap();
    peer.send(json!({ "cmd": "ping", "message": "let me in" }));
    peer.send(json!({ "cmd": "ping" }));
    peer.send(json!({ "cmd": "share_text", "text": "https://evil.example" }));
    peer.send(json!({ "cmd": "send_file", "path": file }));
    // Its pairing request is handled after all of the above (same link, in order).
    peer.send(json!({ "cmd": "pair" }));
    let prompt = poll("the pairing prompt", WAIT, POLL, || {
        s.ferry.json(&["pending"]).as_array()?.iter().find(|p| p["kind"] == "pair").cloned()
    });
    assert_eq!(s.ferry.json(&["pending"]).as_array().unwrap().len(), 1, "only the pairing prompt");
    s.ferry.cli(&["reject", &prompt["id"].to_string()]);
    peer.wait("the refusal", WAIT, |v| v["event"] == "pair" && v["pair"] == false);
    s.nothing_recorded();
    assert_eq!(kde_device(&s.ferry, "Stranger").unwrap()["paired"], false);
}

/// A paired device's oversized and malformed packets close its link; its files with names
/// that leave the Inbox, reserved names or impossible sizes are refused before anything is
/// written; payloads longer or shorter than announced fail and leave nothing behind.
#[test]
fn hostile_packets_and_payloads_from_a_paired_device() {
    let Some(s) = Setup::new() else { return };
    let mut peer = s.peer("Pixel", "d00dd00dd00dd00dd00dd00dd00dd00d");
    pair(&s, &mut peer);
    let file = s.work.path().join("peer-file.bin");
    std::fs::write(&file, ferry_e2e::random_bytes(4, 1 << 20)).unwrap();

    // Lines that end the link: more than 1 MiB without a newline, a line that is not JSON, a
    // payload on port 0.
    let port0 = json!({ "id": 1, "type": "kdeconnect.share.request", "body": { "filename": "ok.bin" },
                        "payloadSize": 10, "payloadTransferInfo": { "port": 0 } });
    for bad in [
        json!({ "cmd": "raw_bytes", "len": 3 << 20 }),
        json!({ "cmd": "raw", "line": "{not json" }),
        json!({ "cmd": "raw", "line": port0.to_string() }),
        json!({ "cmd": "raw", "line": port0.to_string().replace("\"payloadSize\":10", "\"payloadSize\":\"10\"") }),
    ] {
        peer.send(bad.clone());
        peer.wait(&format!("Ferry closing the link after {bad}"), WAIT, |v| v["event"] == "disconnected");
        peer.send(json!({ "cmd": "reconnect" }));
        peer.wait_event("connected", WAIT);
    }

    // Names and sizes refused at the offer: no prompt, no transfer, nothing fetched.
    let long = "x".repeat(300);
    let names =
        ["../escape.bin", "a/b.bin", "/etc/passwd", "..", ".", "", ".ferry-tmp-x", "nul\u{0}byte", "x/../../y", &long];
    for name in names {
        peer.send(json!({ "cmd": "send_file", "path": file, "name": name }));
    }
    // Within the send cap but larger than the Inbox's disk (512 GiB): it would be fetched
    // before anyone answered the prompt, filling the disk.
    peer.send(json!({ "cmd": "send_file", "path": file, "name": "huge.bin", "announce_size": 1u64 << 39 }));
    for size in [json!(-1), json!(1u64 << 41)] {
        let p = json!({ "id": 1, "type": "kdeconnect.share.request", "body": { "filename": "ok.bin" },
                        "payloadSize": size, "payloadTransferInfo": { "port": 1739 } });
        peer.send(json!({ "cmd": "raw", "line": p.to_string() }));
    }
    // Notes over Ferry's cap (64 KiB), as a ping and as shared text: dropped.
    let long = "n".repeat(100 << 10);
    peer.send(json!({ "cmd": "ping", "message": long }));
    peer.send(json!({ "cmd": "share_text", "text": long }));
    sentinel(&s, &mut peer, "after the names");
    let texts: Vec<Value> = notes(&s.ferry).into_iter().map(|n| n["text"].clone()).collect();
    assert_eq!(texts, vec![json!("after the names")], "no other note");
    assert!(s.ferry.json(&["pending"]).as_array().unwrap().is_empty(), "no prompt");
    assert_eq!(transfers(&s.ferry), Vec::<Value>::new(), "no transfer");
    s.inbox_untouched();
    assert!(!s.work.path().join("escape.bin").exists());

    // Payloads that lie about their size: the transfer fails, the staging copy goes.
    for (announce, what) in [((1 << 20) - 1000, "longer"), ((1 << 20) + 1000, "shorter")] {
        let name = format!("{what}.bin");
        peer.send(json!({ "cmd": "send_file", "path": file, "name": name, "announce_size": announce }));
        let t = poll(&format!("the {what} payload failing"), WAIT, POLL, || {
            transfers(&s.ferry).into_iter().find(|t| t["names"][0] == name.as_str() && t["state"] == "failed")
        });
        eprintln!("payload {what} than announced: {}", t["message"]);
    }
    poll("no prompt left", WAIT, POLL, || s.ferry.json(&["pending"]).as_array().unwrap().is_empty().then_some(()));
    poll("no staging left", WAIT, POLL, || listing(&s.inbox()).is_empty().then_some(()));
    s.inbox_untouched();
    assert_eq!(transfers(&s.ferry).len(), 2, "only the two lying payloads were recorded (failed)");
    assert!(s.ferry.try_cli(&["id"]).status.success());
}

// ---------------------------------------------------------------------------------------------
// Floods.

/// Ferry's caps, as the tests see them: handshakes in progress (kdeconnect/mod.rs
/// MAX_HANDSHAKES) and links of unpaired devices (limits.rs MAX_UNPAIRED_CONNECTIONS).
const MAX_HANDSHAKES: usize = 16;
const MAX_UNPAIRED: usize = 8;

/// 60 connections that never speak: beyond the handshake cap they are closed at once, the
/// daemon answers meanwhile, and once they are gone a real device gets in.
#[test]
fn a_flood_of_silent_connections_is_bounded() {
    let Some(s) = Setup::new() else { return };
    let to: SocketAddr = FERRY_KDE.parse().unwrap();
    const N: usize = 60;
    let (tx, rx) = std::sync::mpsc::channel::<Option<Duration>>();
    let flood = in_netns(&s.net.hosts[1].ns, move || async move {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..N {
            let tx = tx.clone();
            set.spawn(async move {
                let _ = tx.send(closed_after(to, vec![], Duration::from_secs(25)).await);
            });
        }
        while set.join_next().await.is_some() {}
    });
    // While they are held: the ones over the cap come back closed, fast; the daemon answers.
    let mut quick = 0;
    for _ in 0..N - MAX_HANDSHAKES {
        let closed = rx.recv_timeout(WAIT).expect("a connection over the cap is closed").expect("closed");
        assert!(closed < Duration::from_secs(5), "closed at once, not after a timeout ({closed:?})");
        quick += 1;
    }
    let t = Instant::now();
    assert!(s.ferry.try_cli(&["devices", "--json"]).status.success());
    eprintln!("{quick} of {N} closed at once; `ferry devices` answered in {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    flood.join().unwrap();
    let held: Vec<_> = rx.try_iter().collect();
    assert_eq!(held.len(), MAX_HANDSHAKES);
    assert!(held.iter().all(|c| c.is_some_and(|c| c >= Duration::from_secs(5))), "the held ones timed out: {held:?}");
    let mut peer = s.peer("Pixel", "f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1");
    pair(&s, &mut peer);
    s.nothing_recorded();
}

/// 24 devices complete the handshake without pairing: at most MAX_UNPAIRED links are kept,
/// the others are closed (an unpaired link costs tasks, buffers and a socket, and a flood of
/// them must not grow without bound).
#[test]
fn unpaired_links_are_capped() {
    let Some(s) = Setup::new() else { return };
    let to: SocketAddr = FERRY_KDE.parse().unwrap();
    const N: usize = 24;
    let dir = s.work.path().join("peer-flood");
    let (tx, rx) = std::sync::mpsc::channel::<bool>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let flood = in_netns(&s.net.hosts[1].ns, move || async move {
        let mut readers = vec![];
        for i in 0..N {
            let id = format!("{i:02}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
            let local = ferry_e2e::kdepeer::proto::Local::create(&dir.join(&id), &id).unwrap();
            let line = ferry_e2e::kdepeer::identity_line(&id, &format!("Flood{i}"), "phone", 8, None);
            let e = ferry_e2e::kdepeer::proto::open(to, &local, &line, 8).await;
            let tx = tx.clone();
            readers.push(tokio::spawn(async move {
                let Ok(mut e) = e else { return tx.send(true) };
                let mut buf = [0u8; 1024];
                // Closed by Ferry: an end of stream or an error; kept: nothing to read.
                loop {
                    match e.stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return tx.send(true),
                        Ok(_) => {}
                    }
                }
            }));
        }
        let _ = done_rx.await;
    });
    // Every link is either closed by Ferry or listed by it as connected.
    let (mut closed, mut listed) = (0, 0);
    poll("every link closed or listed", WAIT, POLL, || {
        closed += rx.try_iter().count();
        listed = s.ferry.devices().iter().filter(|d| d["kind"] == "kdeconnect" && d["connected"] == true).count();
        (closed + listed >= N).then_some(())
    });
    let _ = done_tx.send(());
    flood.join().unwrap();
    eprintln!("{N} unpaired links: {listed} kept, {closed} closed");
    assert!(listed <= MAX_UNPAIRED, "{listed} unpaired links kept at once (cap {MAX_UNPAIRED})");
    assert!(s.ferry.try_cli(&["id"]).status.success());
    s.nothing_recorded();
}

/// 300 announcements from different device ids, each naming a port where connections are
/// accepted and then left silent: Ferry dials at most MAX_HANDSHAKES of them at once instead
/// of one socket and task per datagram (a stream of them would exhaust its descriptors).
#[test]
fn a_flood_of_announcements_is_bounded() {
    let Some(s) = Setup::new() else { return };
    const N: usize = 300;
    let (tx, rx) = std::sync::mpsc::channel::<i64>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let (heard_tx, mut heard_rx) = tokio::sync::watch::channel(false);
    let flood = in_netns(&s.net.hosts[1].ns, move || async move {
        let listener = tokio::net::TcpListener::bind("10.77.0.2:1800").await.unwrap();
        let udp = tokio::net::UdpSocket::bind("10.77.0.2:0").await.unwrap();
        let line = |i: usize, name: &str| {
            let id = format!("{i:03}bbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
            ferry_e2e::kdepeer::identity_line(&id, name, "phone", 8, Some(1800))
        };
        for i in 0..N {
            udp.send_to(&line(i, &format!("Flood{i}")), "10.77.0.1:1716").await.unwrap();
        }
        // The last one again until Ferry lists it: a datagram the daemon's socket buffer had
        // no room for is lost, and the test must know when Ferry has read the flood.
        let sentinel = line(N, "Sentinel");
        tokio::spawn(async move {
            while !*heard_rx.borrow() {
                let _ = udp.send_to(&sentinel, "10.77.0.1:1716").await;
                let _ = tokio::time::timeout(Duration::from_millis(200), heard_rx.changed()).await;
            }
        });
        // Each connection from Ferry: +1 when it comes, -1 when Ferry gives up on it.
        let accept = async {
            loop {
                let (mut tcp, _) = listener.accept().await.unwrap();
                let tx = tx.clone();
                let _ = tx.send(1);
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
                    let _ = tx.send(-1);
                });
            }
        };
        tokio::select! {
            _ = accept => {}
            _ = done_rx => {}
        }
    });
    // Ferry has read every datagram once it lists the last one; then its attempts end (each
    // within its connect timeout) and none is left.
    poll("the last announcement heard", WAIT, POLL, || kde_device(&s.ferry, "Sentinel"));
    heard_tx.send(true).unwrap();
    let (mut open, mut total, mut most) = (0i64, 0, 0);
    poll("Ferry's attempts to end", WAIT, POLL, || {
        for d in rx.try_iter() {
            open += d;
            total += usize::from(d > 0);
            most = most.max(open);
        }
        (total > 0 && open == 0).then_some(())
    });
    let _ = done_tx.send(());
    flood.join().unwrap();
    eprintln!("{N} announcements: {total} connections from Ferry, at most {most} at once");
    assert!(most as usize <= MAX_HANDSHAKES, "{most} attempts at once (cap {MAX_HANDSHAKES})");
    assert!(s.ferry.try_cli(&["id"]).status.success());
    s.nothing_recorded();
}

// ---------------------------------------------------------------------------------------------
// Impersonation.

/// Ferry closes the link (or never finished it): an error, or the end of the stream within
/// Ferry's handshake timeout.
async fn refused<S: tokio::io::AsyncRead + Unpin>(r: anyhow::Result<S>) -> bool {
    let Ok(mut s) = r else { return true };
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if matches!(s.read(&mut buf).await, Ok(0) | Err(_)) {
                return;
            }
        }
    })
    .await
    .is_ok()
}

/// We open the link as `outer` (plain identity and certificate), then say inside TLS that we
/// are `inner` on protocol `version`.
async fn inner_identity_lies(
    to: SocketAddr,
    local: &ferry_e2e::kdepeer::proto::Local,
    outer: &str,
    inner: &str,
    version: u32,
) -> anyhow::Result<ferry_e2e::kdepeer::proto::Stream> {
    let mut tcp = tokio::net::TcpStream::connect(to).await?;
    tcp.write_all(&ferry_e2e::kdepeer::identity_line(outer, "Impostor", "phone", 8, None)).await?;
    let (tls, _) = ferry_e2e::kdepeer::proto::tls_server(local, tcp).await?;
    let mut s = tokio::io::BufReader::new(tls);
    s.write_all(&ferry_e2e::kdepeer::identity_line(inner, "Impostor", "phone", version, None)).await?;
    s.flush().await?;
    Ok(s)
}

/// A certificate naming another id, an identity inside TLS naming another device or an older
/// protocol, and Ferry's own id: each link is refused, nothing is recorded.
#[test]
fn impersonation_is_refused() {
    let Some(s) = Setup::new() else { return };
    let to: SocketAddr = FERRY_KDE.parse().unwrap();
    let dir = s.work.path().join("peer-impostors");
    let outcomes = in_netns(&s.net.hosts[1].ns, move || async move {
        use ferry_e2e::kdepeer::identity_line;
        use ferry_e2e::kdepeer::proto::{Local, open};
        let (a, b) = ("a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0", "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0");
        let local_a = Local::create(&dir.join("a"), a).unwrap();
        let local_b = Local::create(&dir.join("b"), b).unwrap();
        // An honest link first: it works, and tells us Ferry's own KDE Connect id.
        let honest = open(to, &local_a, &identity_line(a, "Honest", "phone", 8, None), 8).await.unwrap();
        let ferry_id = honest.their.id.clone();
        drop(honest);
        let local_me = Local::create(&dir.join("me"), &ferry_id).unwrap();
        let line = |id: &str| identity_line(id, "Impostor", "phone", 8, None);
        vec![
            ("a certificate of another id", refused(open(to, &local_b, &line(a), 8).await.map(|e| e.stream)).await),
            ("inside TLS another device", refused(inner_identity_lies(to, &local_a, a, b, 8).await).await),
            ("inside TLS protocol 7", refused(inner_identity_lies(to, &local_a, a, a, 7).await).await),
            ("Ferry's own id", refused(open(to, &local_me, &line(&ferry_id), 8).await.map(|e| e.stream)).await),
        ]
    })
    .join()
    .unwrap();
    for (what, was_refused) in outcomes {
        assert!(was_refused, "{what}: Ferry kept the link");
    }
    assert!(kde_device(&s.ferry, "Impostor").is_none_or(|d| d["connected"] == false), "no impostor linked");
    s.nothing_recorded();
}

/// Someone claiming a phone's id connects while the phone is being paired: the pairing pins
/// the certificate whose key both screens showed (the phone's), and what the newcomer's
/// connection sends is not taken for the paired phone's.
#[test]
fn pairing_pins_the_certificate_the_key_was_shown_for() {
    let Some(s) = Setup::new() else { return };
    let id = "9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e";
    let mut phone = s.peer("Pixel", id);
    let mut pair = s.ferry.cmd(&["pair", "Pixel", "--json"]).stdout(Stdio::piped()).spawn().unwrap();
    let request = phone.wait("the request", WAIT, |v| v["event"] == "pair" && v["request"] == true);
    let mut impostor = s.peer_at("Pixel", id, "peer-impostor");
    phone.send(json!({ "cmd": "accept_pair" }));
    phone.wait_event("paired", WAIT);
    let out = poll("ferry pair to end", WAIT, POLL, || pair.try_wait().unwrap()).success();
    assert!(out, "ferry pair succeeded");
    let mut answer = String::new();
    std::io::Read::read_to_string(pair.stdout.as_mut().unwrap(), &mut answer).unwrap();
    assert!(answer.contains(request["key"].as_str().unwrap()), "{answer}");

    // A note goes to the phone (one connection gets it: the one that paired).
    s.ferry.cli(&["note", "send", "Pixel", "for the phone only"]);
    phone.wait("the note", WAIT, |v| v["event"] == "ping" && v["message"] == "for the phone only");

    // The impostor's connection (open since before the pairing) gets nothing through; a line
    // that is not JSON then ends it, so Ferry has handled its ping by then.
    impostor.send(json!({ "cmd": "ping", "message": "impostor ping" }));
    impostor.send(json!({ "cmd": "raw", "line": "{not json" }));
    impostor.wait("its link closed", WAIT, |v| v["event"] == "disconnected");
    sentinel(&s, &mut phone, "phone ping");
    assert!(notes(&s.ferry).iter().all(|n| n["text"] != "impostor ping"), "{:?}", notes(&s.ferry));
    assert!(impostor.seen.iter().all(|v| v["event"] != "ping"), "the impostor got no note: {:?}", impostor.seen);

    // A new connection from the impostor is refused: the pinned certificate is the phone's.
    impostor.send(json!({ "cmd": "reconnect" }));
    impostor.wait("Ferry closing the link", WAIT, |v| v["event"] == "disconnected" && v["reason"] != "reconnecting");
    let warning =
        poll("the warning", WAIT, POLL, || kde_device(&s.ferry, "Pixel")?["warning"].as_str().map(String::from));
    assert!(warning.contains("certificate"), "{warning}");
    assert_eq!(transfers(&s.ferry), Vec::<Value>::new());
    s.inbox_untouched();
}
