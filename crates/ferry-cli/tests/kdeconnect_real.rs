//! Ferry's KDE Connect link against the real KDE Connect daemon (Debian's kdeconnectd 22.12,
//! protocol 7), in network namespaces: host 0 runs a Ferry daemon with KDE Connect on, host 1
//! runs kdeconnectd with its own bus (`ferry_e2e::kdeconnectd`). Everything goes through the
//! two CLIs (`ferry`, `kdeconnect-cli`) and the daemon's D-Bus, as a user's actions would.
//!
//! Shown, both directions each, on contents: discovery, pairing (the keys both sides show are
//! equal), a note (Ferry's reaches the daemon's Notify; a `--ping-msg` arrives as an unread
//! note), shared text, a file (SHA-256 equal; 50 MiB towards Ferry), unpairing, and a device
//! that comes back with a new certificate under the same id: refused and shown.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ferry_e2e::kdeconnectd::KdeDaemon;
use ferry_e2e::netns::{Net, NsDaemon, poll};
use sha2::{Digest, Sha256};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
/// Each step takes well under a second here (50 MiB a few); 30 s bounds one that never comes.
const STEP: Duration = Duration::from_secs(30);
const EVERY: Duration = Duration::from_millis(100);

fn sha_file(p: &Path) -> String {
    let data = std::fs::read(p).unwrap();
    Sha256::digest(&data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The `code` of Ferry's pending pair prompt from `name`, with its id.
fn pair_prompt(ferry: &NsDaemon, name: &str) -> Option<(u64, String)> {
    let pending = ferry.json(&["pending"]);
    pending
        .as_array()?
        .iter()
        .find(|p| p["kind"] == "pair" && p["device_name"] == name)
        .map(|p| (p["id"].as_u64().unwrap(), p["code"].as_str().unwrap_or_default().to_string()))
}

fn ferry_device(ferry: &NsDaemon, name: &str) -> Option<serde_json::Value> {
    ferry.devices().into_iter().find(|d| d["name"] == name)
}

fn wait_output(mut child: Child, what: &str) -> String {
    let deadline = Instant::now() + STEP + STEP;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{what} did not finish");
        std::thread::sleep(EVERY);
    }
    let o = child.wait_with_output().unwrap();
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{what} failed: {out}");
    out
}

#[test]
fn ferry_and_kdeconnectd_both_ways() {
    if let Some(why) = KdeDaemon::skip_reason() {
        return eprintln!("skipped: {why}");
    }
    let net = match Net::new(2) {
        Ok(n) => n,
        Err(e) => return eprintln!("skipped: {}", e.0),
    };
    net.enable_broadcast();
    let started = Instant::now();
    let mut kde = KdeDaemon::start(&net, 1, "kde-desk");
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("Inbox");
    let inbox_arg = inbox.display().to_string();
    let ferry = NsDaemon::start(
        &net,
        0,
        Path::new(FERRY),
        "ferry-a",
        &["--kdeconnect-bind", "0.0.0.0", "--inbox", &inbox_arg, "--no-mdns"],
    );

    // Discovery, both ways: each lists the other, reachable.
    let d = poll("Ferry to list kde-desk", STEP, EVERY, || ferry_device(&ferry, "kde-desk"));
    assert_eq!(d["kind"], "kdeconnect");
    assert_eq!(d["device_type"], "desktop");
    assert_eq!(d["paired"], false);
    let me = kde.wait_device("ferry-a", true, Some(false), STEP);

    // Pairing asked by Ferry, accepted on the daemon: both show the same key.
    let pair = ferry.cmd(&["pair", "kde-desk"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    poll("kdeconnectd to trust Ferry", STEP, EVERY, || {
        kde.accept_pairing(&me);
        (kde.device_flag(&me, "isTrusted") == Some(true)).then_some(())
    });
    let out = wait_output(pair, "ferry pair kde-desk");
    assert!(out.contains("accepted"), "{out}");
    let code = out.lines().find_map(|l| l.strip_prefix("Code: ")).expect("ferry pair prints the code").trim();
    assert_eq!(code, &kde.verification_key(&me)[..8], "the key on both screens");
    assert_eq!(ferry_device(&ferry, "kde-desk").unwrap()["paired"], true);
    eprintln!("paired (asked by Ferry), key {code}, at {:?}", started.elapsed());

    // It can never join a share: the invite is refused (exit 1), the share keeps no member.
    let folder = work.path().join("Shared");
    std::fs::create_dir(&folder).unwrap();
    ferry.json(&["share", "add", &folder.display().to_string(), "--label", "docs"]);
    let o = ferry.try_cli(&["share", "invite", "docs", "kde-desk"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("never a share"), "{o:?}");
    let shares = ferry.json(&["share", "list"]);
    assert_eq!(shares[0]["devices"], serde_json::json!([]));

    // A note from Ferry rings the daemon's notification.
    ferry.cli(&["note", "send", "kde-desk", "hello from ferry"]);
    poll("the daemon to show Ferry's note", STEP, EVERY, || {
        kde.notifications().iter().any(|(s, b)| format!("{s} {b}").contains("hello from ferry")).then_some(())
    });
    let sent = ferry.json(&["notes"]);
    assert!(sent.as_array().unwrap().iter().any(|n| n["text"] == "hello from ferry" && n["state"] == "delivered"));

    // A ping with a message and a shared text from the daemon become unread notes.
    let o = kde.cli(&["--ping-msg", "ping from kde", "-d", &me]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = kde.cli(&["--share-text", "shared words", "-d", &me]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for text in ["ping from kde", "shared words"] {
        poll(&format!("the note {text:?} in Ferry"), STEP, EVERY, || {
            let notes = ferry.json(&["notes"]);
            notes
                .as_array()?
                .iter()
                .find(|n| n["text"] == text && n["state"] == "unread" && n["outgoing"] == false)
                .cloned()
        });
    }

    // A 50 MiB file from the daemon: offered, accepted, in the Inbox whole.
    let big = work.path().join("from-kde.bin");
    std::fs::write(&big, ferry_e2e::random_bytes(15, 50 << 20)).unwrap();
    let t0 = Instant::now();
    let o = kde.cli(&["--share", &big.display().to_string(), "-d", &me]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (pid, names) = poll("Ferry's send prompt", STEP, EVERY, || {
        let p = ferry.json(&["pending"]);
        p.as_array()?.iter().find(|p| p["kind"] == "send").map(|p| (p["id"].as_u64().unwrap(), p["names"].clone()))
    });
    assert_eq!(names, serde_json::json!(["from-kde.bin"]));
    ferry.cli(&["accept", &pid.to_string()]);
    let got = inbox.join("from-kde.bin");
    poll("the file in Ferry's Inbox", STEP, EVERY, || {
        let t = ferry.json(&["transfers"]);
        t.as_array()?.iter().any(|t| t["direction"] == "in" && t["state"] == "done").then_some(())
    });
    assert_eq!(sha_file(&got), sha_file(&big), "SHA-256 of the received file");
    eprintln!("50 MiB kdeconnectd -> Ferry in {:?}", t0.elapsed());

    // A file from Ferry lands in the daemon's download folder whole.
    let small = work.path().join("from-ferry.bin");
    std::fs::write(&small, ferry_e2e::random_bytes(16, 3 << 20)).unwrap();
    ferry.cli(&["send", "kde-desk", &small.display().to_string()]);
    let there = kde.downloads_dir().join("from-ferry.bin");
    poll("the file in kdeconnectd's downloads", STEP, EVERY, || {
        (there.metadata().ok()?.len() == 3 << 20).then_some(())
    });
    assert_eq!(sha_file(&there), sha_file(&small), "SHA-256 of the file kdeconnectd received");

    // Unpairing from Ferry: the daemon hears it.
    ferry.cli(&["devices", "remove", "kde-desk"]);
    kde.wait_device(&me, true, Some(false), STEP);
    assert_eq!(ferry_device(&ferry, "kde-desk").unwrap()["paired"], false);

    // Pairing asked by the daemon: Ferry's prompt shows the daemon's key; accepted.
    let o = kde.cli(&["--pair", "-d", &me]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (prompt, code) = poll("Ferry's pair prompt", STEP, EVERY, || pair_prompt(&ferry, "kde-desk"));
    assert_eq!(code, kde.verification_key(&me)[..8], "the key on both screens");
    ferry.cli(&["accept", &prompt.to_string()]);
    kde.wait_device(&me, true, Some(true), STEP);
    poll("Ferry to show it paired", STEP, EVERY, || {
        (ferry_device(&ferry, "kde-desk")?["paired"] == true).then_some(())
    });

    // Unpairing from the daemon: Ferry hears it.
    let o = kde.cli(&["--unpair", "-d", &me]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    poll("Ferry to show it unpaired", STEP, EVERY, || {
        (ferry_device(&ferry, "kde-desk")?["paired"] == false).then_some(())
    });

    // Pair again, then the daemon comes back with a new certificate under the same id: refused,
    // shown, and a note for it is not delivered to the impostor.
    let pair = ferry.cmd(&["pair", "kde-desk"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    poll("kdeconnectd to trust Ferry again", STEP, EVERY, || {
        kde.accept_pairing(&me);
        (kde.device_flag(&me, "isTrusted") == Some(true)).then_some(())
    });
    wait_output(pair, "ferry pair kde-desk (again)");
    kde.restart(true);
    let warned = poll("Ferry to refuse the new certificate", STEP, EVERY, || {
        let d = ferry_device(&ferry, "kde-desk")?;
        d["warning"].as_str().map(str::to_string)
    });
    assert!(warned.contains("different certificate"), "{warned}");
    let d = ferry_device(&ferry, "kde-desk").unwrap();
    assert_eq!(d["paired"], true, "the pairing with the real certificate stays");
    assert_eq!(d["connected"], false, "the impostor is not connected");
    ferry.cli(&["note", "send", "kde-desk", "not for an impostor"]);
    let notes = ferry.json(&["notes"]);
    let n = notes.as_array().unwrap().iter().find(|n| n["text"] == "not for an impostor").unwrap();
    assert_eq!(n["state"], "queued");
    eprintln!("kdeconnect_real: every step in {:?}", started.elapsed());
}

/// Coexistence: on a computer where kdeconnectd already runs (it holds UDP 1716), Ferry leaves
/// KDE Connect to it and `ferry doctor` says why; everything else of Ferry runs.
#[test]
fn ferry_leaves_kde_connect_to_a_running_kdeconnectd() {
    if let Some(why) = KdeDaemon::skip_reason() {
        return eprintln!("skipped: {why}");
    }
    let net = match Net::new(1) {
        Ok(n) => n,
        Err(e) => return eprintln!("skipped: {}", e.0),
    };
    let _kde = KdeDaemon::start(&net, 0, "kde-here");
    let ferry =
        NsDaemon::start(&net, 0, Path::new(FERRY), "ferry-here", &["--kdeconnect-bind", "0.0.0.0", "--no-mdns"]);
    let doctor = ferry.json(&["doctor"]);
    let k = &doctor["kdeconnect"];
    assert_eq!(k["enabled"], true);
    assert_eq!(k["state"], "failed", "{doctor}");
    assert!(k["reason"].as_str().unwrap().contains("another KDE Connect"), "{k}");
    let problems = doctor["problems"].as_array().unwrap();
    assert!(problems.iter().any(|p| p.as_str().unwrap().contains("KDE Connect is not running")), "{problems:?}");
    let text = ferry.cli(&["doctor"]);
    assert!(text.contains("KDE Connect:     failed: another KDE Connect"), "{text}");
}
