//! A real `ferry daemon` against the real `localsendd` (PyPI 0.1.1, LocalSend protocol 2.2, an
//! implementation Ferry shares no code with), in network namespaces: discovery by multicast
//! both ways, a 50 MiB file both ways (SHA-256 equal), a note from Ferry (a LocalSend text
//! message: localsendd saves it as a text file), a declined offer both ways, a PIN both ways
//! (refused without, refused when wrong, taken when right).
//!
//! Needs root, the `ferry` binary and localsendd (`.ci/netns-setup` installs it); otherwise it
//! prints "skipped" and passes. Traffic stays in the namespaces.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use ferry_e2e::kdepeer::ctl::{ferry_bin, listing, notes, sha256_file};
use ferry_e2e::localsendd::{LocalSendd, Options};
use ferry_e2e::netns::{Net, NsDaemon, poll};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
const MIB: usize = 1 << 20;

fn ls_device(d: &NsDaemon, alias: &str) -> Option<Value> {
    d.devices().into_iter().find(|v| v["kind"] == "localsend" && v["name"] == alias)
}

/// `ferry send` to `to`; its exit code and stderr.
fn ferry_send(ferry: &NsDaemon, to: &str, file: &Path, pin: Option<&str>) -> (Option<i32>, String) {
    let mut args = vec!["send", to, file.to_str().unwrap()];
    if let Some(p) = pin {
        args.extend(["--pin", p]);
    }
    let out = ferry.cmd(&args).stdout(Stdio::null()).stderr(Stdio::piped()).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn ferry_and_localsendd_exchange_files_notes_and_refusals() {
    if let Some(why) = LocalSendd::skip_reason() {
        return eprintln!("skipped: {why}");
    }
    let net = match Net::new(3) {
        Ok(n) => n,
        Err(e) => return eprintln!("skipped: {}", e.0),
    };
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("inbox");
    let args =
        ["--localsend-bind", "0.0.0.0", "--localsend-pin", "9753", "--inbox", inbox.to_str().unwrap(), "--no-mdns"];
    let ferry = NsDaemon::start(&net, 0, &ferry_bin(), "desk", &args);
    // One that takes whatever comes (no one attached), one that asks a PIN and declines.
    let open = LocalSendd::start(&net, 1, &Options { alias: "laptop".into(), pin: None, unattended: true });
    let strict =
        LocalSendd::start(&net, 2, &Options { alias: "guarded".into(), pin: Some("2468".into()), unattended: false });

    // Discovery, both ways: Ferry lists both daemons by their certificates' fingerprints, and
    // each daemon lists Ferry.
    for d in [&open, &strict] {
        let dev = poll(&format!("Ferry lists {}", d.alias), WAIT, POLL, || ls_device(&ferry, &d.alias));
        assert_eq!(dev["fingerprint"].as_str().unwrap(), d.fingerprint().to_uppercase());
        poll(&format!("{} lists Ferry", d.alias), WAIT, POLL, || {
            d.devices().into_iter().find(|v| v["alias"] == "desk").map(|_| ())
        });
    }

    // 50 MiB from Ferry to localsendd: saved whole.
    let big = work.path().join("film.bin");
    std::fs::write(&big, ferry_e2e::random_bytes(11, 50 * MIB)).unwrap();
    let (code, err) = ferry_send(&ferry, "laptop", &big, None);
    assert_eq!(code, Some(0), "ferry send: {err}");
    assert_eq!(sha256_file(&open.download_dir().join("film.bin")), sha256_file(&big));

    // A note from Ferry is a text message; localsendd, which shows none, saves it as a file.
    ferry.cli(&["note", "send", "laptop", "dinner at 8"]);
    poll("the note delivered", WAIT, POLL, || {
        notes(&ferry).into_iter().find(|n| n["text"] == "dinner at 8" && n["state"] == "delivered")
    });
    let saved = listing(&open.download_dir()).into_iter().find(|n| n.ends_with(".txt")).expect("the message saved");
    assert_eq!(std::fs::read_to_string(open.download_dir().join(saved)).unwrap(), "dinner at 8");

    // Ferry asks a PIN of senders: localsendd without it, or with a wrong one, is refused.
    let theirs = work.path().join("photos.tar");
    std::fs::write(&theirs, ferry_e2e::random_bytes(12, 50 * MIB)).unwrap();
    for pin in [None, Some("1111")] {
        let out = open.send(&theirs, "desk", pin);
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success() && said.contains("PIN"), "localsendctl send with PIN {pin:?}: {said}");
    }
    assert!(ferry.json(&["pending"]).as_array().unwrap().is_empty(), "no prompt without the PIN");

    // 50 MiB from localsendd to Ferry with the PIN: the prompt, accepted; in the Inbox whole.
    let sender = std::thread::spawn({
        let theirs = theirs.clone();
        move || open.send(&theirs, "desk", Some("9753"))
    });
    let prompt = poll("the send prompt", WAIT, POLL, || {
        ferry.json(&["pending"]).as_array()?.iter().find(|p| p["kind"] == "send").cloned()
    });
    assert_eq!(prompt["device_name"], "laptop");
    assert_eq!(prompt["device_kind"], "localsend");
    ferry.cli(&["accept", &prompt["id"].to_string()]);
    let out = sender.join().unwrap();
    assert!(out.status.success(), "localsendctl send: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sha256_file(&inbox.join("photos.tar")), sha256_file(&theirs));

    // A PIN asked by localsendd: without it, or wrong, exit 1 saying so; with it, the offer
    // reaches localsendd, which (no one attached to answer) declines: exit 1, "declined".
    let small = work.path().join("note.pdf");
    std::fs::write(&small, ferry_e2e::random_bytes(13, 64 << 10)).unwrap();
    let (code, err) = ferry_send(&ferry, "guarded", &small, None);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("asks for a PIN"), "{err}");
    let (code, err) = ferry_send(&ferry, "guarded", &small, Some("1357"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("refused the PIN"), "{err}");
    let (code, err) = ferry_send(&ferry, "guarded", &small, Some("2468"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("guarded declined"), "{err}");

    // Declined by Ferry's user: localsendd's send ends declined, nothing in the Inbox.
    let sender = std::thread::spawn({
        let small = small.clone();
        move || strict.send(&small, "desk", Some("9753"))
    });
    let prompt = poll("the second prompt", WAIT, POLL, || {
        ferry.json(&["pending"]).as_array()?.iter().find(|p| p["kind"] == "send").cloned()
    });
    assert_eq!(prompt["device_name"], "guarded");
    ferry.cli(&["reject", &prompt["id"].to_string()]);
    let out = sender.join().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && said.to_lowercase().contains("declined"), "localsendctl: {said}");
    assert_eq!(listing(&inbox), vec!["photos.tar".to_string()], "nothing more in the Inbox");
}
