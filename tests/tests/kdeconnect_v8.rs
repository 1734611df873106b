//! Ferry's KDE Connect link against a protocol 8 device: the test peer (`kde-peer`, written
//! from KDE Connect's sources, independent of ferry-kdeconnect) on host 1 of a namespace
//! network, a real `ferry daemon` on host 0 with `--kdeconnect-bind 0.0.0.0`. Both directions
//! of discovery, pairing (the keys on both sides equal), notes, shared text, files (SHA-256
//! equal, one of 50 MiB), unpairing, the refusal of a re-keyed device and of a downgrade to
//! protocol 7.
//!
//! Needs root (namespaces) and the `ferry` binary (`cargo build -p ferry-cli`, or FERRY_BIN);
//! without root every test prints "skipped" and passes. Traffic stays in the namespaces.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ferry_e2e::kdepeer::ctl::{PeerCtl, kde_device, notes, peer_process, sha256_file, start_ferry, transfers};
use ferry_e2e::netns::{Net, NsDaemon, poll};
use serde_json::{Value, json};

const PEER: &str = env!("CARGO_BIN_EXE_kde-peer");
const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
const MIB: usize = 1 << 20;
/// Ferry's KDE Connect address: host 0, the first port of 1716-1764.
const FERRY_KDE: &str = "10.77.0.1:1716";

fn net() -> Option<Net> {
    match Net::new(2) {
        Ok(n) => Some(n),
        Err(e) => {
            eprintln!("skipped: {}", e.0);
            None
        }
    }
}

fn write_random(path: &Path, seed: u64, len: usize) {
    std::fs::write(path, ferry_e2e::random_bytes(seed, len)).unwrap();
}

/// `ferry pair NAME` toward the peer, which accepts; the keys both sides show are equal.
fn ferry_asks_to_pair(ferry: &NsDaemon, peer: &mut PeerCtl, name: &str) {
    let mut pair = ferry.cmd(&["pair", name, "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let is_request = |v: &Value| v["event"] == "pair" && v["request"] == true;
    let req = poll("a pairing request", WAIT, POLL, || {
        if let Some(status) = pair.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(pair.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("ferry pair ended early ({status}): {err}");
        }
        peer.try_wait(POLL, is_request).ok()
    });
    peer.send(json!({ "cmd": "accept_pair" }));
    let paired = peer.wait_event("paired", WAIT);
    let deadline = Instant::now() + WAIT;
    while pair.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "ferry pair {name} did not finish");
        std::thread::sleep(POLL);
    }
    let out = pair.wait_with_output().unwrap();
    assert!(out.status.success(), "ferry pair: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "accepted", "{v}");
    let key = req["key"].as_str().expect("the peer computed a key");
    assert_eq!(key.len(), 8);
    assert_eq!(v["code"], key, "Ferry shows the key the phone shows");
    assert_eq!(paired["key"], key);
}

/// The peer asks to pair; the prompt in `ferry pending` carries the key the peer shows.
fn peer_asks_to_pair(ferry: &NsDaemon, peer: &mut PeerCtl) {
    let (code, key) = peer_asks_to_pair_keys(ferry, peer);
    assert_eq!(code, key, "the prompt shows the key the phone shows");
}

/// [`peer_asks_to_pair`], returning the prompt's code and the peer's key.
fn peer_asks_to_pair_keys(ferry: &NsDaemon, peer: &mut PeerCtl) -> (String, String) {
    peer.send(json!({ "cmd": "pair" }));
    let sent = peer.wait_event("pair_sent", WAIT);
    let prompt = poll("the pairing prompt", WAIT, POLL, || {
        ferry.json(&["pending"]).as_array()?.iter().find(|p| p["kind"] == "pair").cloned()
    });
    let code = prompt["code"].as_str().expect("a pairing prompt has a code").to_string();
    let key = sent["key"].as_str().expect("the peer computed a key").to_string();
    ferry.cli(&["accept", &prompt["id"].to_string()]);
    let answer = peer.wait("the answer", WAIT, |v| v["event"] == "pair" && v["answer"] == true);
    assert_eq!(answer["pair"], true);
    (code, key)
}

fn paired(ferry: &NsDaemon, name: &str) -> Option<bool> {
    kde_device(ferry, name).map(|d| d["paired"] == true)
}

/// The note Ferry recorded with this text, once there is one.
fn note(ferry: &NsDaemon, text: &str) -> Value {
    poll(&format!("the note {text:?}"), WAIT, POLL, || notes(ferry).into_iter().find(|n| n["text"] == text))
}

/// Ferry dials the peer (heard by UDP): discovery, Ferry asks to pair, notes and text both
/// ways, a 50 MiB file to the phone and a file from it, and the phone unpairs.
#[test]
fn ferry_dials_a_v8_phone_pairs_and_exchanges() {
    let Some(net) = net() else { return };
    let t0 = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("inbox");
    let ferry = start_ferry(&net, "desk", &inbox);
    let id = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    let mut peer =
        peer_process(&net, 1, PEER, "Pixel", id, &work.path().join("peer"), &["--listen", "--announce", "10.77.0.1"]);
    // Discovery: Ferry heard the announcement and opened the link; it lists a phone.
    let c = peer.wait_event("connected", WAIT);
    assert_eq!(c["opened"], false, "Ferry opened the connection");
    assert_eq!(c["version"], 8);
    let dev = poll("Ferry lists the phone", WAIT, POLL, || kde_device(&ferry, "Pixel"));
    assert_eq!(dev["device_type"], "phone");
    assert_eq!(dev["paired"], false);
    assert!(dev["warning"].is_null(), "{dev}");

    ferry_asks_to_pair(&ferry, &mut peer, "Pixel");
    assert_eq!(paired(&ferry, "Pixel"), Some(true));

    // Notes: Ferry's note is a ping with the message; the phone's ping and shared text are notes.
    ferry.cli(&["note", "send", "Pixel", "hello phone"]);
    peer.wait("the note as a ping", WAIT, |v| v["event"] == "ping" && v["message"] == "hello phone");
    peer.send(json!({ "cmd": "ping", "message": "hello desk" }));
    let n = note(&ferry, "hello desk");
    assert_eq!((n["outgoing"].as_bool(), n["state"].as_str()), (Some(false), Some("unread")));
    peer.send(json!({ "cmd": "share_text", "text": "https://example.org/shared" }));
    assert_eq!(note(&ferry, "https://example.org/shared")["state"], "unread");

    // A note while the phone is away waits, and goes when it is back (it announces itself
    // again and Ferry dials it).
    peer.send(json!({ "cmd": "disconnect" }));
    poll("Ferry sees the phone gone", WAIT, POLL, || {
        (kde_device(&ferry, "Pixel")?["connected"] == false).then_some(())
    });
    ferry.cli(&["note", "send", "Pixel", "while you were away"]);
    assert_eq!(note(&ferry, "while you were away")["state"], "queued");
    peer.wait("the queued note", WAIT, |v| v["event"] == "ping" && v["message"] == "while you were away");
    poll("delivered", WAIT, POLL, || (note(&ferry, "while you were away")["state"] == "delivered").then_some(()));

    // A 50 MiB file to the phone: `ferry send` returns when the phone has read every byte.
    let big = work.path().join("big.bin");
    write_random(&big, 7, 50 * MIB);
    let t = Instant::now();
    ferry.cli(&["send", "Pixel", big.to_str().unwrap()]);
    let got = peer.wait("the big file", WAIT, |v| v["event"] == "file");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(got["sha256"], sha256_file(&big), "the phone got the same bytes");
    assert_eq!(got["size"], 50 * MIB as u64);
    eprintln!("50 MiB Ferry -> phone: {secs:.2} s ({:.1} MiB/s)", 50.0 / secs);

    // A file from the phone: offered (a `send` prompt), fetched, placed in the Inbox on accept.
    let small = work.path().join("photo.jpg");
    write_random(&small, 8, 3 * MIB + 17);
    let t = Instant::now();
    peer.send(json!({ "cmd": "send_file", "path": small }));
    let prompt = poll("the send prompt", WAIT, POLL, || {
        ferry.json(&["pending"]).as_array()?.iter().find(|p| p["kind"] == "send").cloned()
    });
    assert_eq!(prompt["names"], json!(["photo.jpg"]));
    ferry.cli(&["accept", &prompt["id"].to_string()]);
    let landed = inbox.join("photo.jpg");
    poll("the file in the Inbox", WAIT, POLL, || landed.exists().then_some(()));
    assert_eq!(sha256_file(&landed), sha256_file(&small));
    peer.wait("the phone's end of the send", WAIT, |v| v["event"] == "sent" && v["name"] == "photo.jpg");
    eprintln!("3 MiB phone -> Ferry (prompt and accept included): {:.2} s", t.elapsed().as_secs_f64());
    // The phone's end comes as its last byte leaves; Ferry's transfer is done once the file is
    // placed and its staging copy gone.
    poll("Ferry's transfer done", WAIT, POLL, || {
        transfers(&ferry).iter().any(|t| t["direction"] == "in" && t["state"] == "done").then_some(())
    });
    assert_eq!(ferry_e2e::kdepeer::ctl::listing(&inbox), vec!["photo.jpg"], "nothing else in the Inbox");

    // The phone unpairs: Ferry's row says unpaired.
    peer.send(json!({ "cmd": "unpair" }));
    poll("Ferry sees the unpairing", WAIT, POLL, || (paired(&ferry, "Pixel") == Some(false)).then_some(()));
    eprintln!("ferry_dials_a_v8_phone_pairs_and_exchanges: {:.1} s", t0.elapsed().as_secs_f64());
}

/// The peer hears Ferry's broadcast and dials it: the peer asks to pair, a file to Ferry
/// (50 MiB), Ferry unpairs; after pairing again, the phone comes back on protocol 7 (refused:
/// a downgrade) and with a new certificate (refused: not the pinned one), and nothing it sends
/// then is delivered.
#[test]
fn a_v8_phone_dials_ferry_and_is_refused_after_downgrade_or_rekey() {
    let Some(net) = net() else { return };
    let t0 = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("inbox");
    // The peer listens for Ferry's announcement first: Ferry announces when it starts.
    let id = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let mut peer =
        peer_process(&net, 1, PEER, "Tablet", id, &work.path().join("peer"), &["--discover", "--type", "tablet"]);
    let ferry = start_ferry(&net, "desk", &inbox);
    let c = peer.wait_event("connected", WAIT);
    assert_eq!((c["opened"].as_bool(), c["remote"].as_str()), (Some(true), Some(FERRY_KDE)), "the phone dialed");
    let dev = poll("Ferry lists the tablet", WAIT, POLL, || kde_device(&ferry, "Tablet"));
    assert_eq!(dev["device_type"], "tablet");

    peer_asks_to_pair(&ferry, &mut peer);
    poll("paired", WAIT, POLL, || (paired(&ferry, "Tablet") == Some(true)).then_some(()));

    // 50 MiB from the phone, auto-accepted this time (no prompt), straight into the Inbox.
    ferry.cli(&["devices", "auto-accept", "Tablet", "on"]);
    let big = work.path().join("video.mp4");
    write_random(&big, 9, 50 * MIB);
    let t = Instant::now();
    peer.send(json!({ "cmd": "send_file", "path": big }));
    let landed = inbox.join("video.mp4");
    poll("the video in the Inbox", WAIT, POLL, || landed.exists().then_some(()));
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(sha256_file(&landed), sha256_file(&big));
    eprintln!("50 MiB phone -> Ferry: {secs:.2} s ({:.1} MiB/s)", 50.0 / secs);

    // Ferry unpairs: the phone is told.
    ferry.cli(&["devices", "remove", "Tablet"]);
    peer.wait("the unpairing", WAIT, |v| v["event"] == "pair" && v["pair"] == false);
    poll("unpaired", WAIT, POLL, || (paired(&ferry, "Tablet") == Some(false)).then_some(()));
    peer_asks_to_pair(&ferry, &mut peer);
    poll("paired again", WAIT, POLL, || (paired(&ferry, "Tablet") == Some(true)).then_some(()));

    // Back on protocol 7: refused as a downgrade, shown as a warning, its ping not delivered.
    let before = notes(&ferry).len();
    peer.send(json!({ "cmd": "reconnect", "protocol": 7 }));
    refused(&ferry, &mut peer, "downgrade");
    assert_eq!(notes(&ferry).len(), before, "nothing delivered from the refused link");

    // A new certificate for the same id (reinstalled, or someone else): refused.
    peer.send(json!({ "cmd": "reconnect", "protocol": 8 }));
    peer.wait_event("connected", WAIT);
    poll("the warning cleared", WAIT, POLL, || kde_device(&ferry, "Tablet")?["warning"].is_null().then_some(()));
    peer.send(json!({ "cmd": "rekey" }));
    refused(&ferry, &mut peer, "certificate");
    assert_eq!(notes(&ferry).len(), before, "nothing delivered from the refused link");

    // The way back the warning gives: remove the device, pair again (with the new certificate).
    ferry.cli(&["devices", "remove", "Tablet"]);
    peer.send(json!({ "cmd": "reconnect" }));
    peer.wait_event("connected", WAIT);
    peer_asks_to_pair(&ferry, &mut peer);
    poll("paired with the new certificate", WAIT, POLL, || (paired(&ferry, "Tablet") == Some(true)).then_some(()));
    peer.send(json!({ "cmd": "ping", "message": "new phone, same id" }));
    note(&ferry, "new phone, same id");
    assert!(kde_device(&ferry, "Tablet").unwrap()["warning"].is_null());
    eprintln!("a_v8_phone_dials_ferry_and_is_refused_after_downgrade_or_rekey: {:.1} s", t0.elapsed().as_secs_f64());
}

/// The peer's new link is closed by Ferry, `ferry devices` shows a warning naming `why`, and a
/// ping sent on such a link never becomes a note.
fn refused(ferry: &NsDaemon, peer: &mut PeerCtl, why: &str) {
    peer.wait("the new link", WAIT, |v| v["event"] == "connected" || v["event"] == "error");
    peer.send(json!({ "cmd": "ping", "message": format!("after the {why}") }));
    peer.wait("Ferry closing the link", WAIT, |v| v["event"] == "disconnected" || v["event"] == "error");
    let warning =
        poll("the warning", WAIT, POLL, || kde_device(ferry, "Tablet")?["warning"].as_str().map(String::from));
    assert!(warning.contains(why), "warning {warning:?} should say {why}");
    assert!(notes(ferry).iter().all(|n| n["text"] != format!("after the {why}").as_str()));
}

/// The desktop test's case: `kde-peer --connect 127.0.0.1:PORT` on the daemon's own host (its
/// loopback), here on protocol 7: the peer asks to pair, then notes both ways.
#[test]
fn a_v7_peer_on_loopback_pairs_and_exchanges_notes() {
    let Some(net) = net() else { return };
    let work = tempfile::tempdir().unwrap();
    let ferry = start_ferry(&net, "desk", &work.path().join("inbox"));
    let id = "7777777777777777777777777777777a";
    let mut peer = peer_process(
        &net,
        0,
        PEER,
        "Old",
        id,
        &work.path().join("peer"),
        &["--connect", "127.0.0.1:1716", "--protocol", "7"],
    );
    let c = peer.wait_event("connected", WAIT);
    assert_eq!(c["version"], 7);
    let (code, key) = peer_asks_to_pair_keys(&ferry, &mut peer);
    // Version 7 has no timestamp in the key; Ferry prints it in lower case, Android (and the
    // peer) in upper case: the same digits.
    assert_eq!(code.to_uppercase(), key, "the same key on both screens");
    poll("paired", WAIT, POLL, || (paired(&ferry, "Old") == Some(true)).then_some(()));
    ferry.cli(&["note", "send", "Old", "hi old phone"]);
    peer.wait("the note as a ping", WAIT, |v| v["event"] == "ping" && v["message"] == "hi old phone");
    peer.send(json!({ "cmd": "ping" }));
    assert_eq!(note(&ferry, "Ping!")["state"], "unread", "a ping without a message is KDE's own Ping!");
}
