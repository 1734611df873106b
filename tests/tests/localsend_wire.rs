//! The ferry-localsend library on a network: two of its Discovery sockets in network
//! namespaces hearing each other, and the library against the real `localsendd` (PyPI 0.1.1,
//! protocol 2.2) both ways. Library code runs in a thread moved into its host's namespace,
//! with a current-thread runtime so every socket lives there; `localsendctl` calls that block
//! run on the blocking pool so the server keeps serving.
//!
//! Shown, each on contents: announcements heard both ways (and by a second socket on the same
//! port), malformed and oversized datagrams skipped and counted; our Client: info with the
//! certificate's fingerprint, pins (lower case accepted, wrong refused), register, a 50 MiB
//! file saved by localsendd with SHA-256 equal, PIN required / wrong / right / locked out
//! (401, 401, 200, 429), declined (403) when localsendd has no one to ask; our Server: hears
//! localsendd's announcement and its /register with its client certificate, receives a file
//! it sends (50 MiB) with SHA-256 equal, asks it for a PIN, declines it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_e2e::localsendd::{LocalSendd, Options};
use ferry_e2e::netns::Net;
use ferry_localsend::{
    Client, DeviceInfo, DeviceType, Discovery, FileMeta, Handler, LocalIdentity, LsError, MAX_DATAGRAM, MULTICAST,
    PORT, Peer, PrepareAnswer, PrepareOutcome, PrepareReply, PrepareUpload, Protocol, Server, UploadBody, UploadReply,
    fingerprint_eq,
};
use sha2::{Digest, Sha256};

/// Each step takes well under a second here (50 MiB: a few); 30 s bounds one that never ends.
const STEP: Duration = Duration::from_secs(30);

/// One thread, so every socket the library opens lives in the namespace that thread entered.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn me(alias: &str, id: &LocalIdentity) -> DeviceInfo {
    DeviceInfo {
        alias: alias.into(),
        version: "2.1".into(),
        device_model: Some("Linux".into()),
        device_type: Some(DeviceType::Desktop),
        fingerprint: id.fingerprint.clone(),
        port: PORT,
        protocol: Protocol::Https,
        download: false,
        announce: None,
    }
}

fn sha(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes that differ by position, so a lost or repeated chunk changes the hash.
fn pattern(len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

fn join<T>(r: std::thread::Result<T>) -> T {
    r.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Receives until `want` matches, skipping others; bounded by [`STEP`].
async fn recv_until(d: &Discovery, what: &str, want: impl Fn(&DeviceInfo, SocketAddr) -> bool) -> DeviceInfo {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match tokio::time::timeout_at(deadline, d.recv()).await {
            Err(_) => panic!("never heard {what}"),
            Ok(r) => {
                let (info, from) = r.unwrap();
                if want(&info, from) {
                    return info;
                }
            }
        }
    }
}

#[test]
fn discovery_between_two_hosts() {
    let net = match Net::new(2) {
        Ok(n) => n,
        Err(e) => return eprintln!("skipped: {}", e.0),
    };
    let ready = std::sync::Barrier::new(2);
    let ips = [net.hosts[0].ip, net.hosts[1].ip];
    std::thread::scope(|s| {
        let hosts: Vec<_> = (0..2)
            .map(|i| {
                let (net, ready) = (&net, &ready);
                s.spawn(move || {
                    net.enter(i);
                    let rt = runtime();
                    let id = LocalIdentity::generate().unwrap();
                    let (d, second) = {
                        let _in = rt.enter();
                        // Two sockets on the port in one host: as Ferry beside the app.
                        (Discovery::bind(ips[i]).unwrap(), Discovery::bind(ips[i]).unwrap())
                    };
                    ready.wait(); // both hosts listen before either speaks
                    rt.block_on(heard(i, ips, &d, &second, &me(&format!("host {i}"), &id)))
                })
            })
            .collect();
        for h in hosts {
            join(h.join());
        }
    });
}

/// Host `i`: junk, then an announcement, the other's announcement heard (by both sockets),
/// our answer, the other's answer heard; junk counted as skipped, our own never returned.
async fn heard(i: usize, ips: [Ipv4Addr; 2], d: &Discovery, second: &Discovery, info: &DeviceInfo) {
    let other = format!("host {}", 1 - i);
    let junk = std::net::UdpSocket::bind((ips[i], 0)).unwrap();
    junk.send_to(b"{not json", (MULTICAST, PORT)).unwrap();
    let mut big = br#"{"alias":""#.to_vec();
    big.resize(MAX_DATAGRAM + 100, b'a');
    junk.send_to(&big, (MULTICAST, PORT)).unwrap();
    d.announce(info).await.unwrap();
    // `second` never sent, so it hears our own datagrams too (as the app beside us would).
    let from_other = |want: bool, own_skipped: bool| {
        let other = other.clone();
        move |got: &DeviceInfo, from: SocketAddr| {
            assert!(!own_skipped || got.alias != info.alias, "our own announcement came back");
            got.alias == other && got.announce == Some(want) && from.ip() == IpAddr::V4(ips[1 - i])
        }
    };
    let announced = recv_until(d, "the other's announcement", from_other(true, true)).await;
    assert_eq!((announced.port, announced.protocol), (PORT, Protocol::Https));
    recv_until(second, "the other's announcement on the second socket", from_other(true, false)).await;
    d.answer(info).await.unwrap();
    recv_until(d, "the other's answer", from_other(false, true)).await;
    // Both hosts' junk (two datagrams each) came before the announcements that were heard.
    assert!(d.skipped() >= 2, "skipped {}", d.skipped());
}

/// A file as the receiver got it: name, bytes, SHA-256 (hex), the SHA-256 offered.
type Got = (String, u64, String, Option<String>);

/// A tiny receiving side for localsendd's sends: accepts with tokens (or asks a PIN, or
/// declines), checks token and length, hashes what arrives.
struct Receiver {
    me: DeviceInfo,
    pin: Mutex<Option<String>>,
    decline: AtomicBool,
    registered: Mutex<Vec<(Option<String>, DeviceInfo)>>,
    offers: Mutex<BTreeMap<String, PrepareUpload>>,
    received: Mutex<Vec<Got>>,
}

impl Handler for Receiver {
    fn info(&self) -> DeviceInfo {
        self.me.clone()
    }
    async fn register(&self, peer: &Peer, info: DeviceInfo) {
        self.registered.lock().unwrap().push((peer.client_fingerprint.clone(), info));
    }
    async fn prepare_upload(&self, _peer: &Peer, req: PrepareUpload, pin: Option<String>) -> PrepareReply {
        if self.decline.load(Ordering::SeqCst) {
            return PrepareReply::Declined;
        }
        if self.pin.lock().unwrap().as_ref().is_some_and(|p| Some(p) != pin.as_ref()) {
            return PrepareReply::PinRequired;
        }
        let mut offers = self.offers.lock().unwrap();
        let session = format!("s{}", offers.len());
        let files = req.files.keys().map(|id| (id.clone(), format!("tok-{id}"))).collect();
        offers.insert(session.clone(), req);
        PrepareReply::Accepted(PrepareAnswer { session_id: session, files })
    }
    async fn upload(
        &self,
        _p: &Peer,
        session: String,
        file: String,
        token: String,
        mut body: UploadBody,
    ) -> UploadReply {
        let meta = match self.offers.lock().unwrap().get(&session).and_then(|o| o.files.get(&file)) {
            Some(m) if token == format!("tok-{file}") => m.clone(),
            _ => return UploadReply::Forbidden,
        };
        if body.len() != meta.size {
            return UploadReply::TooLarge;
        }
        let mut h = Sha256::new();
        loop {
            match body.chunk().await {
                Ok(Some(data)) => h.update(&data),
                Ok(None) => break,
                Err(_) => return UploadReply::Failed,
            }
        }
        let got: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if meta.sha256.as_ref().is_some_and(|s| !s.eq_ignore_ascii_case(&got)) {
            return UploadReply::HashMismatch;
        }
        self.received.lock().unwrap().push((meta.file_name, body.received(), got, meta.sha256));
        UploadReply::Ok
    }
    async fn cancel(&self, _peer: &Peer, _session: String) {}
}

/// Polls `probe` on the runtime (it must not block) until it yields; bounded by [`STEP`].
async fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn client_against_localsendd() {
    if let Some(why) = LocalSendd::skip_reason() {
        return eprintln!("skipped: {why}");
    }
    let net = match Net::new(4) {
        Ok(n) => n,
        Err(e) => return eprintln!("skipped: {}", e.0),
    };
    let open = LocalSendd::start(&net, 1, &Options { alias: "lsd open".into(), pin: None, unattended: true });
    let pinned =
        LocalSendd::start(&net, 2, &Options { alias: "lsd pin".into(), pin: Some("4711".into()), unattended: true });
    let asks = LocalSendd::start(&net, 3, &Options { alias: "lsd asks".into(), pin: None, unattended: false });
    let addr = |i: usize| SocketAddr::new(IpAddr::V4(net.hosts[i].ip), PORT);
    let work = tempfile::tempdir().unwrap();
    std::thread::scope(|s| {
        join(
            s.spawn(|| {
                net.enter(0);
                runtime().block_on(async {
                    let id = Arc::new(LocalIdentity::generate().unwrap());
                    let c = Client::new(id.clone());
                    info_pins_and_register(&c, &me("ferry", &id), addr(1), &open).await;
                    fifty_mib(&c, &me("ferry", &id), addr(1), &open, work.path()).await;
                    pin_flow(&c, &me("ferry", &id), addr(2), &pinned, work.path()).await;
                    let offer = offer_of(&me("ferry", &id), "x.txt", b"x");
                    let declined = c.prepare_upload(addr(3), Some(asks.fingerprint()), &offer, None, STEP).await;
                    assert_eq!(declined.unwrap(), PrepareOutcome::Declined, "no one attached to localsendd to ask");
                })
            })
            .join(),
        )
    });
}

async fn info_pins_and_register(c: &Client, me: &DeviceInfo, addr: SocketAddr, lsd: &LocalSendd) {
    let (info, seen) = c.info(addr, None).await.unwrap();
    assert_eq!(seen, lsd.fingerprint(), "the certificate's fingerprint is the announced one");
    assert!(fingerprint_eq(&info.fingerprint, &seen));
    assert_eq!((info.alias.as_str(), info.version.as_str()), ("lsd open", "2.2"));
    c.info(addr, Some(&lsd.fingerprint().to_lowercase())).await.expect("a lower-case pin is the same pin");
    let wrong = "0".repeat(64);
    assert!(matches!(c.info(addr, Some(&wrong)).await, Err(LsError::Pin { .. })));
    let (answer, _) = c.register(addr, Some(lsd.fingerprint()), me).await.unwrap();
    assert_eq!(answer.alias, "lsd open");
    // Blocking is fine here: nothing of ours serves in this runtime.
    let devices = lsd.devices();
    assert!(
        devices.iter().any(|d| d["alias"] == "ferry" && d["fingerprint"] == me.fingerprint.as_str()),
        "localsendd lists us after /register: {devices:?}"
    );
}

fn offer_of(me: &DeviceInfo, name: &str, data: &[u8]) -> PrepareUpload {
    let meta = FileMeta {
        id: "f1".into(),
        file_name: name.into(),
        size: data.len() as u64,
        file_type: "application/octet-stream".into(),
        sha256: Some(sha(data)),
        preview: None,
        metadata: None,
    };
    PrepareUpload { info: me.clone(), files: [("f1".to_string(), meta)].into() }
}

/// Offers and uploads `data` as `name`; the answer's session.
async fn send_file(c: &Client, addr: SocketAddr, fp: &str, offer: &PrepareUpload, path: &Path) -> Duration {
    let answer = match c.prepare_upload(addr, Some(fp), offer, None, STEP).await.unwrap() {
        PrepareOutcome::Accepted(a) => a,
        other => panic!("localsendd did not accept: {other:?}"),
    };
    let token = answer.files.get("f1").expect("a token for the file");
    let len = offer.files["f1"].size;
    let started = Instant::now();
    let file = tokio::fs::File::open(path).await.unwrap();
    c.upload(addr, Some(fp), &answer.session_id, "f1", token, file, len, |_| {}).await.unwrap();
    started.elapsed()
}

async fn fifty_mib(c: &Client, me: &DeviceInfo, addr: SocketAddr, lsd: &LocalSendd, work: &Path) {
    let data = pattern(50 << 20);
    let path = work.join("fifty.bin");
    std::fs::write(&path, &data).unwrap();
    let took = send_file(c, addr, lsd.fingerprint(), &offer_of(me, "fifty.bin", &data), &path).await;
    let saved = std::fs::read(lsd.download_dir().join("fifty.bin")).expect("localsendd saved the file");
    assert_eq!((saved.len(), sha(&saved)), (data.len(), sha(&data)));
    eprintln!("localsend_wire: 50 MiB to localsendd in {took:?} ({:.0} MiB/s)", 50.0 / took.as_secs_f64());
}

async fn pin_flow(c: &Client, me: &DeviceInfo, addr: SocketAddr, lsd: &LocalSendd, work: &Path) {
    let fp = Some(lsd.fingerprint());
    let data = b"a note behind a PIN".to_vec();
    let path = work.join("pin.txt");
    std::fs::write(&path, &data).unwrap();
    let offer = offer_of(me, "pin.txt", &data);
    assert_eq!(c.prepare_upload(addr, fp, &offer, None, STEP).await.unwrap(), PrepareOutcome::PinRequired);
    assert_eq!(c.prepare_upload(addr, fp, &offer, Some("0000"), STEP).await.unwrap(), PrepareOutcome::PinRequired);
    let answer = match c.prepare_upload(addr, fp, &offer, Some("4711"), STEP).await.unwrap() {
        PrepareOutcome::Accepted(a) => a,
        other => panic!("the right PIN was not accepted: {other:?}"),
    };
    let file = tokio::fs::File::open(&path).await.unwrap();
    c.upload(addr, fp, &answer.session_id, "f1", &answer.files["f1"], file, data.len() as u64, |_| {}).await.unwrap();
    assert_eq!(std::fs::read(lsd.download_dir().join("pin.txt")).unwrap(), data);
    // Three wrong PINs, then localsendd locks this address out.
    for _ in 0..3 {
        assert_eq!(c.prepare_upload(addr, fp, &offer, Some("1"), STEP).await.unwrap(), PrepareOutcome::PinRequired);
    }
    assert_eq!(c.prepare_upload(addr, fp, &offer, Some("4711"), STEP).await.unwrap(), PrepareOutcome::TooManyAttempts);
}

#[test]
fn server_against_localsendd() {
    if let Some(why) = LocalSendd::skip_reason() {
        return eprintln!("skipped: {why}");
    }
    let net = match Net::new(2) {
        Ok(n) => n,
        Err(e) => return eprintln!("skipped: {}", e.0),
    };
    let work = tempfile::tempdir().unwrap();
    std::thread::scope(|s| {
        join(
            s.spawn(|| {
                net.enter(0);
                // Multi-threaded (its worker inherits this thread's namespace): the server keeps
                // serving while a `localsendctl send` blocks in `block_in_place`.
                let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
                let id = Arc::new(LocalIdentity::generate().unwrap());
                let (server, d) = rt.block_on(async {
                    let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT);
                    (Server::bind(any, id.clone()).await.unwrap(), Discovery::bind(net.hosts[0].ip).unwrap())
                });
                // Started after our sockets are bound, so its start-up announcements reach us.
                let lsd =
                    LocalSendd::start(&net, 1, &Options { alias: "lsd send".into(), pin: None, unattended: true });
                rt.block_on(receive_from(server, d, &me("ferry box", &id), &lsd, work.path()));
            })
            .join(),
        )
    });
}

async fn receive_from(server: Server, d: Discovery, me: &DeviceInfo, lsd: &LocalSendd, work: &Path) {
    let h = Arc::new(Receiver {
        me: me.clone(),
        pin: Mutex::new(None),
        decline: AtomicBool::new(false),
        registered: Mutex::default(),
        offers: Mutex::default(),
        received: Mutex::default(),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(h.clone(), async move {
        let _ = stopped.await;
    }));
    let lsd_fp = lsd.fingerprint().to_string();
    let heard = recv_until(&d, "localsendd's announcement", |i, _| i.alias == "lsd send").await;
    assert_eq!(heard.fingerprint, lsd_fp);
    d.announce(me).await.unwrap();
    // It answers our announcement with /register, showing its certificate as a client.
    let client_fp = wait_for("localsendd's /register", || {
        h.registered.lock().unwrap().iter().find(|(_, i)| i.alias == "lsd send").map(|(fp, _)| fp.clone())
    })
    .await;
    assert_eq!(client_fp.as_deref(), Some(lsd_fp.as_str()));

    let data = pattern(50 << 20);
    let path = work.join("from lsd.bin");
    std::fs::write(&path, &data).unwrap();
    let started = Instant::now();
    let out = tokio::task::block_in_place(|| lsd.send(&path, &me.alias, None));
    // localsendctl's whole send: hashing the file, the offer, the upload, its status polling.
    eprintln!("localsend_wire: 50 MiB from localsendd (localsendctl send --wait) in {:?}", started.elapsed());
    assert!(
        out.status.success(),
        "send: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let received = h.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (name, len, got, offered) = &received[0];
    assert_eq!((name.as_str(), *len, got.as_str()), ("from lsd.bin", data.len() as u64, sha(&data).as_str()));
    assert!(offered.as_ref().is_some_and(|o| o.eq_ignore_ascii_case(got)), "localsendd offers the SHA-256");

    *h.pin.lock().unwrap() = Some("2468".into());
    let out = tokio::task::block_in_place(|| lsd.send(&path, &me.alias, None));
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stdout).contains("pin_required"), "{out:?}");
    let out = tokio::task::block_in_place(|| lsd.send(&path, &me.alias, Some("2468")));
    assert!(out.status.success(), "send with the PIN: {out:?}");
    assert_eq!(h.received.lock().unwrap().len(), 2);

    h.decline.store(true, Ordering::SeqCst);
    let out = tokio::task::block_in_place(|| lsd.send(&path, &me.alias, None));
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stdout).contains("declined"), "{out:?}");
    assert_eq!(h.received.lock().unwrap().len(), 2);
    let _ = stop.send(());
}
