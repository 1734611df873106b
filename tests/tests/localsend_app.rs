//! Ferry's LocalSend link against a device that behaves like the LocalSend 2.2 app: the test
//! peer (`tests/src/lspeer`, written from LocalSend's sources, independent of ferry-localsend:
//! it requires a client certificate, pins fingerprints, holds one session at a time) on host 1
//! of a namespace network, a real `ferry daemon` on host 0 with `--localsend-bind 0.0.0.0`.
//! Discovery by multicast both ways, files both ways (SHA-256 equal), text both ways, a declined
//! offer, fingerprints in either letter case, a new certificate under a known alias listed as
//! another device, a PIN, busy (409) and a cancel mid-upload.
//!
//! Needs root (namespaces) and the `ferry` binary; without root every test prints "skipped"
//! and passes. Traffic stays in the namespaces.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_e2e::kdepeer::ctl::{ferry_bin, listing, notes, sha256_file, transfers};
use ferry_e2e::lspeer::Opts;
use ferry_e2e::lspeer::ctl::{PeerCtl, in_process};
use ferry_e2e::netns::{Net, NsDaemon, poll};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
const MIB: usize = 1 << 20;
/// Ferry's LocalSend server: host 0, LocalSend's port.
const FERRY: &str = "10.77.0.1:53317";

fn net() -> Option<Net> {
    match Net::new(2) {
        Ok(n) => Some(n),
        Err(e) => {
            eprintln!("skipped: {}", e.0);
            None
        }
    }
}

/// A Ferry daemon on host 0 with LocalSend on every address of its namespace (multicast on).
fn start_ferry(net: &Net, inbox: &Path, extra: &[&str]) -> NsDaemon {
    NsDaemon::start(net, 0, &ferry_bin(), "desk", &ferry_args(inbox, extra))
}

fn ferry_args<'a>(inbox: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--localsend-bind", "0.0.0.0", "--inbox", inbox.to_str().unwrap(), "--no-mdns"];
    args.extend_from_slice(extra);
    args
}

/// The app-like peer on host `host`, multicast on, saving into `dir`.
fn start_peer(net: &Net, host: usize, alias: &str, dir: &Path, tune: impl FnOnce(&mut Opts)) -> (PeerCtl, String) {
    let mut o = Opts::new(alias, dir.to_path_buf());
    o.multicast = true;
    o.timeout = Duration::from_secs(200);
    tune(&mut o);
    let (ctl, ready) = in_process(Some(&net.hosts[host].ns), o);
    (ctl, ready["fingerprint"].as_str().unwrap().to_string())
}

/// The LocalSend device called `alias` in `ferry devices --json`.
fn ls_device(d: &NsDaemon, alias: &str) -> Option<Value> {
    d.devices().into_iter().find(|v| v["kind"] == "localsend" && v["name"] == alias)
}

fn write_random(path: &Path, seed: u64, len: usize) {
    std::fs::write(path, ferry_e2e::random_bytes(seed, len)).unwrap();
}

/// The next outcome of a send the peer made.
fn outcome(p: &mut PeerCtl) -> Value {
    let names = ["sent", "declined", "pin-required", "busy", "too-many-attempts", "send-failed"];
    p.wait("a send outcome", WAIT, |v| names.iter().any(|n| v["event"] == *n))
}

/// The send prompt Ferry raised, once it is there.
fn send_prompt(ferry: &NsDaemon) -> Value {
    poll("the send prompt", WAIT, POLL, || {
        ferry.json(&["pending"]).as_array()?.iter().find(|p| p["kind"] == "send").cloned()
    })
}

fn transfer_state(ferry: &NsDaemon, incoming: bool) -> Option<(String, Value)> {
    let t = transfers(ferry).into_iter().find(|t| t["direction"] == if incoming { "in" } else { "out" })?;
    Some((t["state"].as_str()?.to_string(), t))
}

/// Discovery both ways, a file and text from the phone (prompt with alias and fingerprint),
/// a note and a file from Ferry (SHA-256 equal), a declined send (exit 1 with the reason).
#[test]
fn ferry_and_an_app_exchange_files_and_text() {
    let Some(net) = net() else { return };
    let work = tempfile::tempdir().unwrap();
    let (inbox, phone_dir) = (work.path().join("inbox"), work.path().join("phone"));
    std::fs::create_dir_all(&phone_dir).unwrap();
    let ferry = start_ferry(&net, &inbox, &[]);
    // The app writes fingerprints upper case; this peer announces lower case, so Ferry's
    // pinning must not care.
    let (mut phone, fp) = start_peer(&net, 1, "Pixel", &phone_dir, |o| {
        o.upper = false;
        o.auto_accept = false;
    });
    // Discovery: each hears the other (Ferry lists the phone; the phone lists Ferry).
    let dev = poll("Ferry lists the phone", WAIT, POLL, || ls_device(&ferry, "Pixel"));
    assert_eq!(dev["device_type"], "mobile");
    assert_eq!(dev["model"], "Pixel");
    assert_eq!(dev["fingerprint"].as_str().unwrap(), fp.to_uppercase());
    assert_eq!(dev["nearby"], true);
    let doctor = ferry.json(&["doctor"]);
    let ferry_fp = doctor["localsend"]["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(doctor["localsend"]["state"], "running", "{doctor}");
    phone.wait("Ferry in the phone's list", WAIT, |v| {
        v["event"] == "device" && v["fingerprint"].as_str().is_some_and(|f| f.eq_ignore_ascii_case(&ferry_fp))
    });

    // A file from the phone: the prompt names the phone and its fingerprint; accepted, it lands
    // in the Inbox whole.
    let src = work.path().join("holiday.jpg");
    write_random(&src, 7, 5 * MIB);
    phone.send(json!({ "cmd": "send", "to": FERRY, "files": [{ "path": src }] }));
    let p = send_prompt(&ferry);
    assert_eq!(p["device_name"], "Pixel");
    assert_eq!(p["device_kind"], "localsend");
    assert_eq!(p["fingerprint"].as_str().unwrap(), fp.to_uppercase());
    assert_eq!(p["names"], json!(["holiday.jpg"]));
    ferry.cli(&["accept", &p["id"].to_string()]);
    let sent = outcome(&mut phone);
    assert_eq!(sent["event"], "sent", "{sent}");
    let got = inbox.join("holiday.jpg");
    poll("the file in the Inbox", WAIT, POLL, || got.exists().then_some(()));
    assert_eq!(sha256_file(&got), sha256_file(&src));
    poll("the transfer done", WAIT, POLL, || (transfer_state(&ferry, true)?.0 == "done").then_some(()));
    assert_eq!(listing(&inbox), vec!["holiday.jpg"], "nothing else (no staging left)");

    // Text from the phone is a note (answered 204: nothing to upload).
    phone.send(json!({ "cmd": "send_text", "to": FERRY, "text": "on my way" }));
    let done = outcome(&mut phone);
    assert_eq!((done["event"].as_str(), done["status"].as_i64()), (Some("sent"), Some(204)), "{done}");
    let n = poll("the note", WAIT, POLL, || notes(&ferry).into_iter().find(|n| n["text"] == "on my way"));
    assert_eq!(n["state"], "unread");

    // A note from Ferry is the app's text message; the phone's user accepts it.
    ferry.cli(&["note", "send", "Pixel", "see you at 8"]);
    let shown = phone.wait_event("text", WAIT);
    assert_eq!(shown["text"], "see you at 8");
    assert_eq!(shown["cert_fingerprint"].as_str().unwrap().to_uppercase(), ferry_fp);
    phone.send(json!({ "cmd": "accept" }));
    poll("the note delivered", WAIT, POLL, || {
        notes(&ferry).into_iter().find(|n| n["text"] == "see you at 8" && n["state"] == "delivered")
    });

    // A file from Ferry: the phone's user accepts; what it saved hashes the same.
    let out = work.path().join("report.pdf");
    write_random(&out, 8, 3 * MIB + 17);
    let mut send = ferry.cmd(&["send", "Pixel", out.to_str().unwrap()]).spawn().unwrap();
    let offer = phone.wait_event("offer", WAIT);
    assert_eq!(offer["files"][0]["fileName"], "report.pdf");
    assert_eq!(offer["files"][0]["sha256"].as_str().unwrap(), sha256_file(&out));
    phone.send(json!({ "cmd": "accept" }));
    let r = phone.wait_event("received", WAIT);
    assert_eq!(r["sha256"].as_str().unwrap(), sha256_file(&out));
    assert!(send.wait().unwrap().success(), "ferry send exits 0 once the phone has it");

    // Declined: `ferry send` exits 1 and says so.
    let send =
        ferry.cmd(&["send", "Pixel", out.to_str().unwrap()]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    phone.wait_event("offer", WAIT);
    phone.send(json!({ "cmd": "decline" }));
    let end = send.wait_with_output().unwrap();
    assert_eq!(end.status.code(), Some(1), "a declined send exits 1");
    let err = String::from_utf8_lossy(&end.stderr);
    assert!(err.contains("Pixel declined"), "{err}");
}

/// A second device under a known alias with another certificate is another device, with a
/// warning (the first keeps none); a favorite is marked so; removing forgets it.
#[test]
fn a_new_certificate_under_a_known_alias_is_another_device() {
    let Some(net) = Net::new(3).map_err(|e| eprintln!("skipped: {}", e.0)).ok() else { return };
    let work = tempfile::tempdir().unwrap();
    let ferry = start_ferry(&net, &work.path().join("inbox"), &[]);
    let (_first, fp1) = start_peer(&net, 1, "Pixel", &work.path().join("a"), |_| {});
    poll("the first Pixel", WAIT, POLL, || ls_device(&ferry, "Pixel"));
    ferry.cli(&["devices", "favorite", "Pixel", "on"]);
    let (_second, fp2) = start_peer(&net, 2, "Pixel", &work.path().join("b"), |_| {});
    assert_ne!(fp1, fp2);
    let both = poll("both Pixels listed", WAIT, POLL, || {
        let list: Vec<Value> = ferry.devices().into_iter().filter(|d| d["name"] == "Pixel").collect();
        (list.len() == 2).then_some(list)
    });
    let old = both.iter().find(|d| d["fingerprint"] == fp1.as_str()).expect("the first");
    let new = both.iter().find(|d| d["fingerprint"] == fp2.as_str()).expect("the second");
    assert_eq!((old["favorite"].as_bool(), new["favorite"].as_bool()), (Some(true), Some(false)));
    assert!(old["warning"].is_null(), "{old}");
    let w = new["warning"].as_str().expect("the newcomer is flagged");
    assert!(w.contains("another certificate"), "{w}");
    // Forgetting the first (`devices remove`): it is forgotten, favorite mark and all.
    let id = old["id"].as_str().unwrap().to_string();
    let gone = ferry.json(&["devices", "remove", &id]);
    assert_eq!((gone["removed"].as_bool(), gone["kind"].as_str()), (Some(true), Some("localsend")), "{gone}");
    assert!(ferry.devices().iter().all(|d| d["favorite"] != true), "no favorite left");
}

/// A PIN: refused without it and with a wrong one; busy (409) while an offer waits; a cancel
/// mid-upload leaves nothing in the Inbox.
#[test]
fn pin_busy_and_cancel() {
    let Some(net) = net() else { return };
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("inbox");
    let ferry = start_ferry(&net, &inbox, &["--localsend-pin", "4321"]);
    let (mut phone, _) = start_peer(&net, 1, "Pixel", &work.path().join("p"), |_| {});
    let src = work.path().join("big.bin");
    write_random(&src, 9, 8 * MIB);
    poll("Ferry lists the phone", WAIT, POLL, || ls_device(&ferry, "Pixel"));

    phone.send(json!({ "cmd": "send", "to": FERRY, "files": [{ "path": src }] }));
    assert_eq!(outcome(&mut phone)["event"], "pin-required");
    phone.send(json!({ "cmd": "send", "to": FERRY, "files": [{ "path": src }], "pin": "1111" }));
    assert_eq!(outcome(&mut phone)["event"], "pin-required");

    // With the PIN: the offer waits for the user; meanwhile a second sender is busy.
    phone.send(json!({ "cmd": "send", "to": FERRY, "files": [{ "path": src }], "pin": "4321" }));
    let p = send_prompt(&ferry);
    let (mut other, _) = start_peer(&net, 1, "Tablet", &work.path().join("t"), |o| {
        o.multicast = false;
        o.port = 0;
    });
    other.send(json!({ "cmd": "send", "to": FERRY, "files": [{ "path": src }], "pin": "4321" }));
    assert_eq!(outcome(&mut other)["event"], "busy");
    ferry.cli(&["reject", &p["id"].to_string()]);
    assert_eq!(outcome(&mut phone)["event"], "declined");
    assert_eq!(transfer_state(&ferry, true).unwrap().0, "rejected");

    // Auto-accept for this very device; a send stalled after 1 MiB, then cancelled: the
    // transfer fails and nothing reaches the Inbox (its staging folder is gone too).
    ferry.cli(&["devices", "auto-accept", "Pixel", "on"]);
    phone.send(json!({ "cmd": "send", "to": FERRY, "files": [{ "path": src }], "pin": "4321", "stall_after": MIB }));
    phone.wait_event("stalled", WAIT);
    phone.send(json!({ "cmd": "cancel" }));
    phone.wait_event("cancel_sent", WAIT);
    poll("the transfer failed", WAIT, POLL, || {
        transfers(&ferry).into_iter().find(|t| t["state"] == "failed" && t["direction"] == "in")
    });
    poll("nothing in the Inbox", WAIT, POLL, || listing(&inbox).is_empty().then_some(()));

    // A sender that goes away while its offer waits for the user: the offer is withdrawn (no
    // prompt left, the transfer failed) and the next sender is not told "busy".
    other.send(json!({ "cmd": "send", "to": FERRY, "files": [{ "path": src }], "pin": "4321" }));
    send_prompt(&ferry);
    drop(other);
    poll("the withdrawn offer gone", WAIT, POLL, || {
        let pending = ferry.json(&["pending"]);
        let gone = pending.as_array()?.is_empty();
        let failed = transfers(&ferry)
            .into_iter()
            .any(|t| t["state"] == "failed" && t["message"].as_str().is_some_and(|m| m.contains("stopped waiting")));
        (gone && failed).then_some(())
    });
    ferry.cli(&["devices", "auto-accept", "Pixel", "off"]);
    phone.send(json!({ "cmd": "send", "to": FERRY, "files": [{ "path": src }], "pin": "4321" }));
    let p = send_prompt(&ferry);
    ferry.cli(&["reject", &p["id"].to_string()]);
    assert_eq!(outcome(&mut phone)["event"], "declined");
}

/// A device multicast does not reach (it neither announces nor listens) is found by the opt-in
/// scan of the network, and then listed.
#[test]
fn the_scan_finds_a_device_multicast_does_not_reach() {
    let Some(net) = net() else { return };
    let work = tempfile::tempdir().unwrap();
    let ferry = start_ferry(&net, &work.path().join("inbox"), &[]);
    let (_quiet, fp) = start_peer(&net, 1, "Quiet", &work.path().join("q"), |o| o.multicast = false);
    assert!(ls_device(&ferry, "Quiet").is_none(), "not heard without multicast");
    let scan = ferry.json(&["devices", "scan"]);
    assert_eq!(scan["probed"], 253, "the /24 without this host: {scan}");
    assert_eq!(scan["found"], json!(["Quiet"]), "{scan}");
    let dev = ls_device(&ferry, "Quiet").expect("listed after the scan");
    assert_eq!(dev["fingerprint"].as_str().unwrap(), fp.to_uppercase());
}

/// How a transfer from the phone ended after a crash and a restart.
struct Settled {
    /// The transfer's state (`done`, `rejected` or `failed`) and its record.
    state: String,
    record: Value,
    inbox: PathBuf,
    /// Each name sent, with the file its bytes came from.
    sources: Vec<(String, PathBuf)>,
    /// Holds the Inbox and the sources.
    _work: tempfile::TempDir,
}

/// Ferry, armed at crash point `send.placed` (aborted, no clean shutdown), accepts `names` from
/// the phone (3 MiB of random bytes each; a name with a `/` is a folder's file, as LocalSend
/// sends folders), crashes after placing the first top-level item in the Inbox and before
/// recording it, and is relaunched.
fn crash_while_placing(net: &Net, names: &[&str]) -> Settled {
    let work = tempfile::tempdir().unwrap();
    let (inbox, phone_dir) = (work.path().join("inbox"), work.path().join("phone"));
    std::fs::create_dir_all(&phone_dir).unwrap();
    let args = ferry_args(&inbox, &[]);
    let mut ferry = NsDaemon::start_env(net, 0, &ferry_bin(), "desk", &args, &[("FERRY_CRASH_AT", "send.placed")]);
    let (mut phone, _) = start_peer(net, 1, "Pixel", &phone_dir, |_| {});
    poll("Ferry lists the phone", WAIT, POLL, || ls_device(&ferry, "Pixel"));
    let mut sources = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let src = work.path().join(format!("src-{i}"));
        write_random(&src, 11 + i as u64, 3 * MIB);
        sources.push((name.to_string(), src));
    }
    let files: Vec<Value> = sources.iter().map(|(name, src)| json!({ "path": src, "name": name })).collect();
    phone.send(json!({ "cmd": "send", "to": FERRY, "files": files }));
    ferry.cli(&["accept", &send_prompt(&ferry)["id"].to_string()]);
    let status = ferry.wait_exit(WAIT).unwrap_or_else(|| panic!("Ferry did not crash:\n{}", ferry.log_tail(30)));
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGABRT), "{status}");
    assert!(ferry.log_tail(200).contains("crash point send.placed reached"), "{}", ferry.log_tail(30));
    // (Whether the phone heard its last upload answered is a race with the abort: the node
    // places the files after answering it, so nothing is asserted about the phone's end.)

    ferry.relaunch(net, &args, &[]);
    let (state, record) = poll("the transfer settled after the restart", WAIT, POLL, || {
        transfer_state(&ferry, true).filter(|(s, _)| ["done", "rejected", "failed"].contains(&s.as_str()))
    });
    Settled { state, record, inbox, sources, _work: work }
}

/// A file from the phone, placed before the crash: every byte had arrived and was durable, so
/// the restarted node finishes the placement: the file is in the Inbox once and whole, the
/// transfer is done (it used to fail as "interrupted", and the phone's user, told to send it
/// again, got a second copy), nothing is left in staging.
#[test]
fn a_crash_while_placing_a_received_file_finishes_it_at_restart() {
    let Some(net) = net() else { return };
    let s = crash_while_placing(&net, &["holiday.jpg"]);
    assert_eq!(s.state, "done", "{}", s.record);
    assert_eq!(listing(&s.inbox), vec!["holiday.jpg"], "in the Inbox once, no staging left");
    assert_eq!(sha256_file(&s.inbox.join("holiday.jpg")), sha256_file(&s.sources[0].1));
}

/// A folder from the phone, moved whole into the Inbox before the crash: no staging copy is
/// left to recognise it by, and the restart used to fail the transfer ("look for it there").
/// The claim noted before the move says where it went: done, the folder in the Inbox once.
#[test]
fn a_crash_after_moving_a_received_folder_finishes_it_at_restart() {
    let Some(net) = net() else { return };
    let s = crash_while_placing(&net, &["album/cover.jpg", "album/2026/june.jpg"]);
    assert_eq!(s.state, "done", "{}", s.record);
    assert_eq!(listing(&s.inbox), vec!["album"], "in the Inbox once, no staging left");
    for (name, src) in &s.sources {
        assert_eq!(sha256_file(&s.inbox.join(name)), sha256_file(src), "{name}");
    }
}
