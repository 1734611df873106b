//! The LocalSend test peer against itself, so Ferry's LocalSend tests stand on a peer known to
//! work: two (or three) peers on 127.0.0.1 on ports of their own, no multicast — register, a
//! 5 MiB file (SHA-256 equal), text, decline, PIN, busy (409), cancel mid-upload, the hostile
//! modes each refused — and, in a namespace pair, multicast discovery both ways.

use std::path::Path;
use std::time::Duration;

use ferry_e2e::kdepeer::ctl::sha256_file;
use ferry_e2e::lspeer::ctl::{PeerCtl, in_process};
use ferry_e2e::lspeer::{KeyKind, Opts};
use serde_json::{Value, json};
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(20);
const MIB: usize = 1 << 20;

struct Peer {
    ctl: PeerCtl,
    fp: String,
    addr: String,
    dir: TempDir,
}

/// A peer on 127.0.0.1, on a port the system picks.
fn peer(alias: &str, tune: impl FnOnce(&mut Opts)) -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Opts::new(alias, dir.path().to_path_buf());
    o.bind = "127.0.0.1".parse().unwrap();
    o.port = 0;
    o.timeout = Duration::from_secs(60);
    tune(&mut o);
    let (ctl, ready) = in_process(None, o);
    let fp = ready["fingerprint"].as_str().unwrap().to_string();
    let addr = format!("127.0.0.1:{}", ready["port"]);
    Peer { ctl, fp, addr, dir }
}

impl Peer {
    fn wait(&mut self, name: &str) -> Value {
        self.ctl.wait_event(name, WAIT)
    }

    /// The next event of the send outcomes (whatever prepare-upload's answer was).
    fn outcome(&mut self) -> Value {
        let names = ["sent", "declined", "pin-required", "busy", "too-many-attempts", "send-failed"];
        self.ctl.wait("a send outcome", WAIT, |v| names.iter().any(|n| v["event"] == *n))
    }

    fn register_with(&mut self, other: &Peer) {
        self.ctl.send(json!({ "cmd": "register", "to": other.addr }));
        let r = self.wait("registered");
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["matches"], true, "{r}");
        assert_eq!(r["fingerprint"], other.fp.as_str());
    }
}

fn write_random(path: &Path, seed: u64, len: usize) {
    std::fs::write(path, ferry_e2e::random_bytes(seed, len)).unwrap();
}

fn files_in(dir: &Path) -> Vec<String> {
    ferry_e2e::kdepeer::ctl::listing(dir)
}

#[test]
fn register_file_and_text() {
    // The receiver announces its fingerprint in lower case, the sender in upper: pins and
    // checks compare without regard to case.
    let mut b = peer("bravo", |o| o.upper = false);
    let mut a = peer("alpha", |o| o.key = KeyKind::Rsa);
    assert_eq!(b.fp, b.fp.to_lowercase());
    assert_eq!(a.fp, a.fp.to_uppercase());
    a.register_with(&b);
    let dev = b.wait("device");
    assert_eq!(
        (dev["via"].as_str(), dev["alias"].as_str(), dev["fingerprint"].as_str()),
        (Some("register"), Some("alpha"), Some(a.fp.as_str()))
    );

    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("big.bin");
    write_random(&file, 1, 5 * MIB);
    let sha = sha256_file(&file);
    a.ctl.send(json!({ "cmd": "send", "to": b.addr, "files": [{ "path": file }] }));
    let offer = b.wait("offer");
    assert_eq!(offer["alias"], "alpha");
    assert_eq!(offer["files"][0]["fileName"], "big.bin");
    assert_eq!(offer["files"][0]["size"], 5 * MIB);
    assert_eq!(offer["files"][0]["sha256"], sha.as_str());
    let got = b.wait("received");
    assert_eq!(got["sha256"], sha.as_str());
    assert_eq!(sha256_file(&b.dir.path().join("big.bin")), sha);
    let sent = a.outcome();
    assert_eq!(sent["event"], "sent", "{sent}");
    assert_eq!(sent["files"][0]["status"], 200);
    assert_eq!(sent["files"][0]["sha256"], sha.as_str());
    let progress: Vec<_> = a.ctl.seen.iter().filter(|v| v["event"] == "progress").collect();
    assert_eq!(progress.last().unwrap()["bytes"], 5 * MIB);
    b.wait("session_done");

    a.ctl.send(json!({ "cmd": "send_text", "to": b.addr, "text": "hello, LocalSend ☃" }));
    let text = b.wait("text");
    assert_eq!(text["text"], "hello, LocalSend ☃");
    let sent = a.outcome();
    assert_eq!((sent["event"].as_str(), sent["status"].as_u64()), (Some("sent"), Some(204)), "{sent}");
    assert_eq!(files_in(b.dir.path()), ["big.bin"], "a message writes no file");
}

#[test]
fn decline_and_ask() {
    let mut b = peer("bravo", |o| o.auto_accept = false);
    let mut a = peer("alpha", |_| {});
    a.register_with(&b);
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("a.txt");
    write_random(&file, 2, 1000);
    a.ctl.send(json!({ "cmd": "send", "to": b.addr, "files": [{ "path": file }] }));
    b.wait("offer");
    b.ctl.send(json!({ "cmd": "decline" }));
    let out = a.outcome();
    assert_eq!((out["event"].as_str(), out["status"].as_u64()), (Some("declined"), Some(403)), "{out}");

    a.ctl.send(json!({ "cmd": "send_text", "to": b.addr, "text": "read me" }));
    assert_eq!(b.wait("text")["text"], "read me");
    b.ctl.send(json!({ "cmd": "accept" }));
    let out = a.outcome();
    assert_eq!((out["event"].as_str(), out["status"].as_u64()), (Some("sent"), Some(204)), "{out}");

    a.ctl.send(json!({ "cmd": "send", "to": b.addr, "files": [{ "path": file }] }));
    b.wait("offer");
    b.ctl.send(json!({ "cmd": "accept" }));
    assert_eq!(b.wait("received")["sha256"], sha256_file(&file).as_str());
    assert_eq!(a.outcome()["files"][0]["status"], 200);
    assert!(files_in(b.dir.path()) == ["a.txt"]);
}

#[test]
fn pin_required() {
    let b = peer("bravo", |o| o.pin = Some("4711".into()));
    let mut a = peer("alpha", |_| {});
    a.register_with(&b);
    let text = |pin: Option<&str>| json!({ "cmd": "send_text", "to": b.addr, "text": "hi", "pin": pin });
    for pin in [None, Some("0000")] {
        a.ctl.send(text(pin));
        let out = a.outcome();
        assert_eq!((out["event"].as_str(), out["status"].as_u64()), (Some("pin-required"), Some(401)), "{out}");
    }
    a.ctl.send(text(Some("4711")));
    assert_eq!(a.outcome()["status"], 204);
    for _ in 0..3 {
        a.ctl.send(text(Some("1")));
        assert_eq!(a.outcome()["status"], 401);
    }
    a.ctl.send(text(Some("4711")));
    let out = a.outcome();
    assert_eq!((out["event"].as_str(), out["status"].as_u64()), (Some("too-many-attempts"), Some(429)), "{out}");
}

#[test]
fn busy_while_asking() {
    let mut b = peer("bravo", |o| o.auto_accept = false);
    let mut a = peer("alpha", |_| {});
    let mut c = peer("charlie", |_| {});
    a.register_with(&b);
    c.register_with(&b);
    a.ctl.send(json!({ "cmd": "send_text", "to": b.addr, "text": "first" }));
    b.wait("text");
    c.ctl.send(json!({ "cmd": "send_text", "to": b.addr, "text": "second" }));
    let out = c.outcome();
    assert_eq!((out["event"].as_str(), out["status"].as_u64()), (Some("busy"), Some(409)), "{out}");
    b.ctl.send(json!({ "cmd": "decline" }));
    assert_eq!(a.outcome()["status"], 403);
    // The session is over: the next one is heard.
    c.ctl.send(json!({ "cmd": "send_text", "to": b.addr, "text": "third" }));
    assert_eq!(b.wait("text")["text"], "third");
}

#[test]
fn cancel_mid_upload() {
    let mut b = peer("bravo", |_| {});
    let mut a = peer("alpha", |_| {});
    a.register_with(&b);
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("half.bin");
    write_random(&file, 3, 3 * MIB);
    a.ctl.send(json!({ "cmd": "send", "to": b.addr, "files": [{ "path": file }], "stall_after": MIB }));
    let stalled = a.wait("stalled");
    assert_eq!(stalled["bytes"], MIB);
    a.ctl.send(json!({ "cmd": "cancel" }));
    assert_eq!(a.wait("cancel_sent")["status"], 200);
    let c = b.wait("cancelled");
    assert_eq!(c["by"], "sender");
    // The broken upload is refused and nothing of it stays.
    b.ctl.wait("the broken upload", WAIT, |v| v["event"] == "refused" && v["path"] == "upload");
    assert!(b.ctl.seen.iter().all(|v| v["event"] != "received"));
    assert!(files_in(b.dir.path()).is_empty(), "{:?}", files_in(b.dir.path()));
    // The session is free again.
    a.ctl.send(json!({ "cmd": "send", "to": b.addr, "files": [{ "path": file }] }));
    assert_eq!(b.wait("received")["sha256"], sha256_file(&file).as_str());
}

#[test]
fn hostile_modes_are_refused() {
    let mut b = peer("bravo", |_| {});
    let mut a = peer("alpha", |_| {});
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("f.bin");
    write_random(&file, 4, 4096);
    // A fingerprint that is not the certificate's.
    let other = "AB".repeat(32);
    a.ctl.send(json!({ "cmd": "register", "to": b.addr, "as_fingerprint": other }));
    assert_eq!(a.wait("registered")["status"], 403);
    a.register_with(&b);
    let to = b.addr.clone();
    let send = |extra: Value| {
        let mut c = json!({ "cmd": "send", "to": to, "files": [{ "path": file }] });
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    a.ctl.send(send(json!({ "as_fingerprint": other })));
    assert_eq!(a.outcome()["status"], 403);
    for name in ["../up.bin", "/etc/abs.bin"] {
        a.ctl.send(json!({ "cmd": "send", "to": b.addr, "files": [{ "path": file, "name": name }] }));
        let out = a.outcome();
        assert_eq!((out["event"].as_str(), out["status"].as_u64()), (Some("send-failed"), Some(400)), "{name}: {out}");
    }
    for (mode, status) in [("wrong-token", 403), ("wrong-session", 403), ("bad-sha", 422)] {
        a.ctl.send(send(json!({ "mode": mode })));
        let out = a.outcome();
        assert_eq!(out["files"][0]["status"], status, "{mode}: {out}");
        if mode == "bad-sha" {
            // The file was uploaded (and refused): the session is over.
            b.wait("session_done");
        } else {
            // Its token still unused, the session stays open as in the app until closed.
            a.ctl.send(send(json!({})));
            assert_eq!(a.outcome()["status"], 409);
            b.ctl.send(json!({ "cmd": "close" }));
            b.wait("closed");
        }
    }
    a.ctl.send(send(json!({ "mode": "extra-bytes" })));
    let out = a.outcome();
    let st = out["files"][0]["status"].as_u64().or(out["status"].as_u64());
    assert!(matches!(st, Some(400) | Some(0)), "extra bytes refused (or the connection cut): {out}");
    b.ctl.wait("the long upload refused", WAIT, |v| {
        v["event"] == "refused" && v["path"] == "upload" && v["status"] == 400
    });
    a.ctl.send(json!({ "cmd": "raw_prepare", "to": b.addr, "size": 5 * MIB }));
    let raw = a.wait("raw_prepare");
    assert_eq!((raw["bytes"].as_u64(), raw["status"].as_u64()), (Some(5 * MIB as u64), Some(413)), "{raw}");
    assert!(files_in(b.dir.path()).is_empty(), "{:?}", files_in(b.dir.path()));
    assert!(!b.dir.path().parent().unwrap().join("up.bin").exists());
}

/// In a namespace pair, multicast: each hears the other's announcement, answers with
/// /register, and a file then goes to the address and fingerprint heard.
#[test]
fn multicast_discovery_in_namespaces() {
    let net = match ferry_e2e::netns::Net::new(2) {
        Ok(n) => n,
        Err(e) => return eprintln!("skipped: {}", e.0),
    };
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut peers: Vec<(PeerCtl, Value)> = (0..2)
        .map(|i| {
            let mut o = Opts::new(["alpha", "bravo"][i], dirs[i].path().to_path_buf());
            o.multicast = true;
            o.timeout = Duration::from_secs(60);
            in_process(Some(&net.hosts[i].ns), o)
        })
        .collect();
    let fps: Vec<String> = peers.iter().map(|(_, r)| r["fingerprint"].as_str().unwrap().to_string()).collect();
    for (i, (ctl, _)) in peers.iter_mut().enumerate() {
        let other = 1 - i;
        let want = format!("{}:53317", net.hosts[other].ip);
        let d = ctl.wait("the other by multicast", WAIT, |v| v["event"] == "device" && v["via"] == "multicast");
        assert_eq!(
            (d["fingerprint"].as_str(), d["address"].as_str()),
            (Some(fps[other].as_str()), Some(want.as_str()))
        );
        // Its announcement was answered by /register, pinned to what was heard.
        ctl.wait("our answer", WAIT, |v| v["event"] == "answered" && v["via"] == "register" && v["status"] == 200);
    }
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("m.bin");
    write_random(&file, 5, 100_000);
    let to = format!("{}:53317", net.hosts[1].ip);
    peers[0].0.send(json!({ "cmd": "send", "to": to, "files": [{ "path": file }] }));
    let got = peers[1].0.wait_event("received", WAIT);
    assert_eq!(got["sha256"], sha256_file(&file).as_str());
}

/// The `ls-peer` binary (what the desktop flows run), driven over stdin/stdout: it receives a
/// file from a peer in this process and ends when its stdin closes.
#[test]
fn binary_over_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ls-peer"));
    cmd.args(["--alias", "desk", "--dir", dir.path().to_str().unwrap(), "--bind", "127.0.0.1", "--port", "0"]);
    cmd.args(["--case", "lower", "--ask", "--timeout", "60"]);
    let mut bin = PeerCtl::process(cmd);
    let ready = bin.wait_event("ready", WAIT);
    let addr = format!("127.0.0.1:{}", ready["port"]);
    let fp = ready["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(fp, fp.to_lowercase());
    let mut a = peer("alpha", |_| {});
    a.ctl.send(json!({ "cmd": "register", "to": addr }));
    assert_eq!(a.wait("registered")["fingerprint"], fp.as_str());
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("photo.jpg");
    write_random(&file, 6, 300_000);
    a.ctl.send(json!({ "cmd": "send", "to": addr, "files": [{ "path": file }] }));
    let offer = bin.wait_event("offer", WAIT);
    assert_eq!(offer["files"][0]["fileType"], "image/jpeg");
    bin.send(json!({ "cmd": "accept" }));
    assert_eq!(bin.wait_event("received", WAIT)["sha256"], sha256_file(&file).as_str());
    assert_eq!(sha256_file(&dir.path().join("photo.jpg")), sha256_file(&file));
    assert_eq!(a.outcome()["files"][0]["status"], 200);
}
