//! Hostile LocalSend input against a real `ferry daemon` (host 0 of a namespace network), sent
//! by the test peer on host 1 in its misbehaving modes: an oversized prepare-upload, names with
//! `..` or an absolute path, a body naming another certificate than the connection's, a wrong
//! token, more bytes than offered, a SHA-256 that does not match, a register in someone else's
//! name, a multicast announcement claiming a known device's fingerprint under another name. Each is refused with its status, and nothing is left in the Inbox.
//!
//! Needs root (namespaces) and the `ferry` binary; without root it prints "skipped" and passes.

use std::path::Path;
use std::time::Duration;

use ferry_e2e::kdepeer::ctl::{ferry_bin, listing, transfers};
use ferry_e2e::lspeer::Opts;
use ferry_e2e::lspeer::ctl::{PeerCtl, in_process};
use ferry_e2e::netns::{Net, NsDaemon, poll};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
const FERRY: &str = "10.77.0.1:53317";

fn outcome(p: &mut PeerCtl) -> Value {
    let names = ["sent", "declined", "pin-required", "busy", "too-many-attempts", "send-failed"];
    p.wait("a send outcome", WAIT, |v| names.iter().any(|n| v["event"] == *n))
}

/// Failed incoming transfers Ferry recorded.
fn failed_in(ferry: &NsDaemon) -> usize {
    transfers(ferry).iter().filter(|t| t["direction"] == "in" && t["state"] == "failed").count()
}

#[test]
fn hostile_localsend_input_is_refused_and_nothing_is_written() {
    let net = match Net::new(3) {
        Ok(n) => n,
        Err(e) => return eprintln!("skipped: {}", e.0),
    };
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("inbox");
    let ferry = NsDaemon::start(
        &net,
        0,
        &ferry_bin(),
        "desk",
        &["--localsend-bind", "0.0.0.0", "--inbox", inbox.to_str().unwrap(), "--no-mdns"],
    );
    let mut o = Opts::new("Mallory", work.path().join("peer"));
    o.timeout = Duration::from_secs(200);
    let (mut peer, fp) = {
        let (ctl, ready) = in_process(Some(&net.hosts[1].ns), o);
        (ctl, ready["fingerprint"].as_str().unwrap().to_string())
    };
    let src = work.path().join("f.bin");
    std::fs::write(&src, ferry_e2e::random_bytes(3, 256 << 10)).unwrap();
    let empty = |p: &Path| listing(p).is_empty();

    // A register naming another certificate than its own: not listed under that name.
    peer.send(json!({ "cmd": "register", "to": FERRY, "as_fingerprint": "AB".repeat(32) }));
    peer.wait_event("registered", WAIT);
    assert!(
        !ferry.devices().iter().any(|d| d["fingerprint"] == "AB".repeat(32)),
        "a claimed fingerprint is not trusted"
    );

    // An oversized prepare-upload: refused before it is read (413).
    peer.send(json!({ "cmd": "raw_prepare", "to": FERRY, "size": 5 << 20 }));
    let r = peer.wait_event("raw_prepare", WAIT);
    assert_eq!(r["status"], 413, "{r}");

    // Names that climb out, or are absolute: declined (403), nothing written.
    for name in ["../escape.txt", "/etc/escape.txt", "a/../../escape.txt", "..\\escape.txt"] {
        peer.send(json!({ "cmd": "send", "to": FERRY, "files": [{ "path": src, "name": name }] }));
        let o = outcome(&mut peer);
        assert_eq!((o["event"].as_str(), o["status"].as_i64()), (Some("declined"), Some(403)), "{name}: {o}");
    }
    assert!(!work.path().join("escape.txt").exists() && !Path::new("/etc/escape.txt").exists());

    // An offer whose body names another certificate: declined.
    peer.send(json!({ "cmd": "send", "to": FERRY, "files": [{ "path": src }], "as_fingerprint": "CD".repeat(32) }));
    assert_eq!(outcome(&mut peer)["event"], "declined");
    assert!(ferry.json(&["pending"]).as_array().unwrap().is_empty(), "no prompt for any of them");

    // From here the device is trusted to send without a prompt, so uploads happen.
    let dev = poll("Ferry lists the peer", WAIT, POLL, || {
        ferry.devices().into_iter().find(|d| d["fingerprint"].as_str().is_some_and(|f| f.eq_ignore_ascii_case(&fp)))
    });
    ferry.cli(&["devices", "auto-accept", dev["id"].as_str().unwrap(), "on"]);
    let before = failed_in(&ferry);
    let modes = [("wrong-token", 403), ("extra-bytes", 413), ("bad-sha", 422)];
    for (n, (mode, status)) in modes.into_iter().enumerate() {
        peer.send(json!({ "cmd": "send", "to": FERRY, "files": [{ "path": src }], "mode": mode }));
        // The offer is accepted (auto-accept); the upload itself is refused with `status`.
        let o = outcome(&mut peer);
        assert_eq!(o["event"], "sent", "{mode}: {o}");
        assert_eq!(o["files"][0]["status"], status, "{mode}: {o}");
        let failures = before + n + 1;
        poll(&format!("{mode}: the transfer failed"), WAIT, POLL, || (failed_in(&ferry) == failures).then_some(()));
        assert!(empty(&inbox), "{mode}: the Inbox holds {:?}", listing(&inbox));
    }
    // A multicast announcement from host 2 claiming the peer's fingerprint under another name:
    // Ferry checks it by registering with that address (pinned), which fails, answers the
    // announcement by multicast (the moment the check is over), and keeps nothing of it.
    let spoof = ferry_e2e::kdepeer::ctl::in_netns(&net.hosts[2].ns, {
        let fp = fp.clone();
        move || async move {
            let d = ferry_localsend::Discovery::bind(std::net::Ipv4Addr::UNSPECIFIED).unwrap();
            let info = ferry_localsend::DeviceInfo {
                alias: "Bank".into(),
                version: "2.1".into(),
                device_model: None,
                device_type: None,
                fingerprint: fp,
                port: ferry_localsend::PORT,
                protocol: ferry_localsend::Protocol::Https,
                download: false,
                announce: Some(true),
            };
            d.announce(&info).await.unwrap();
            // Ferry's multicast answer (its own fingerprint, announce false), bounded.
            let heard = tokio::time::timeout(WAIT, async {
                loop {
                    if let Ok((them, _)) = d.recv().await
                        && them.alias == "desk"
                        && them.announce == Some(false)
                    {
                        return;
                    }
                }
            })
            .await;
            heard.is_ok()
        }
    });
    assert!(spoof.join().unwrap(), "Ferry answered the spoofed announcement by multicast");
    let listed: Vec<Value> = ferry.devices().into_iter().filter(|d| d["kind"] == "localsend").collect();
    assert!(listed.iter().all(|d| d["name"] != "Bank"), "the spoofed name was not kept: {listed:?}");
    assert!(listed.iter().any(|d| d["name"] == "Mallory"), "{listed:?}");

    // After all that, an honest send still works (no session was left behind).
    peer.send(json!({ "cmd": "send", "to": FERRY, "files": [{ "path": src }] }));
    let o = outcome(&mut peer);
    assert_eq!(o["files"][0]["status"], 200, "{o}");
    poll("the honest file", WAIT, POLL, || (listing(&inbox) == vec!["f.bin".to_string()]).then_some(()));
}

/// Certificates cost nothing to make: a flood of never-seen senders (one certificate each)
/// draws from one shared bucket, so only a burst of their messages becomes notes.
#[test]
fn a_flood_of_new_senders_is_rate_limited() {
    let net = match Net::new(2) {
        Ok(n) => n,
        Err(e) => return eprintln!("skipped: {}", e.0),
    };
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("inbox");
    let ferry = NsDaemon::start(
        &net,
        0,
        &ferry_bin(),
        "desk",
        &["--localsend-bind", "0.0.0.0", "--inbox", inbox.to_str().unwrap(), "--no-mdns"],
    );
    let mut statuses = Vec::new();
    for i in 0..8 {
        let mut o = Opts::new(&format!("Spam{i}"), work.path().join(format!("s{i}")));
        o.port = 0;
        o.timeout = Duration::from_secs(60);
        let (mut p, _) = in_process(Some(&net.hosts[1].ns), o);
        p.send(json!({ "cmd": "send_text", "to": FERRY, "text": format!("spam {i}") }));
        statuses.push(outcome(&mut p)["status"].as_i64().unwrap());
    }
    let taken = statuses.iter().filter(|s| **s == 204).count();
    // The shared burst is 5 (one more per 12 s, which a second-long test does not reach).
    assert!((5..=6).contains(&taken), "{statuses:?}");
    assert!(statuses.iter().filter(|s| **s == 403).count() >= 2, "{statuses:?}");
    let notes = ferry.json(&["notes"]).as_array().unwrap().len();
    assert_eq!(notes, taken, "a note for each message taken, none for the refused");
}
