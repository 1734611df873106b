//! One-shot sends through the CLI: `ferry send` accepted, rejected, auto-accepted and
//! `--no-wait`, `ferry transfers` on both sides, and the errors for bad input.

mod common;

use std::fs;
use std::process::Stdio;

use common::{Daemon, Proc, WAIT, pair_through_cli, path_str, random_bytes, text, wait_for, wait_some};

/// `ferry send` with a prompt accepted, then rejected, then auto-accepted; `ferry transfers`
/// on both sides; clear failures for bad input.
#[test]
fn send_and_transfers_through_the_cli() {
    let a = Daemon::start("alpha");
    let b = Daemon::start("beta");
    pair_through_cli(&a, &b);
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("hello.txt");
    let data = random_bytes(42, 3 << 20);
    fs::write(&file, &data).unwrap();
    let inbox = b.home.join("Inbox");

    // Accepted: `ferry send` waits, then exits 0.
    let mut cmd = a.cmd(&["send", "beta", path_str(&file)]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut sending = Proc::spawn(&mut cmd, "ferry send");
    let prompt = wait_some("send prompt on b", || b.pending().into_iter().find(|p| p["kind"] == "send"));
    assert_eq!(prompt["names"][0], "hello.txt");
    assert_eq!(prompt["bytes"], 3 << 20);
    let listed = b.cli(&["pending"]);
    assert!(listed.contains("alpha sends 1 file(s), 3.0 MiB: hello.txt"), "{listed}");
    b.cli(&["accept", &prompt["id"].to_string()]);
    let out = sending.wait(WAIT).expect("`ferry send` returns once done").clone();
    assert!(out.status.success(), "ferry send failed: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("sent 1 file(s), 3.0 MiB to beta"), "{}", text(&out.stdout));
    assert_eq!(blake3::hash(&fs::read(inbox.join("hello.txt")).unwrap()), blake3::hash(&data));
    let ta = a.json(&["transfers"]);
    let ta = ta.as_array().unwrap();
    assert_eq!(ta.len(), 1);
    assert_eq!((ta[0]["direction"].as_str(), ta[0]["state"].as_str()), (Some("out"), Some("done")));
    assert_eq!(ta[0]["bytes_done"], 3 << 20);
    let tb = b.json(&["transfers"]);
    assert_eq!((tb[0]["direction"].as_str(), tb[0]["state"].as_str()), (Some("in"), Some("done")));
    assert!(b.cli(&["transfers"]).contains("<- alpha"), "text listing");

    // Rejected: `ferry send` exits non-zero and says so; nothing new in the inbox.
    let mut cmd = a.cmd(&["send", "beta", path_str(&file)]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut sending = Proc::spawn(&mut cmd, "ferry send (rejected)");
    let prompt = wait_some("second prompt", || b.pending().into_iter().find(|p| p["kind"] == "send"));
    b.cli(&["reject", &prompt["id"].to_string()]);
    let out = sending.wait(WAIT).expect("`ferry send` returns once rejected").clone();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("was rejected: beta declined the send"), "{}", text(&out.stderr));
    let names: Vec<_> = fs::read_dir(&inbox).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("hello.txt")], "no temp files either");

    // Auto-accept: no prompt; a second copy lands beside the first.
    b.cli(&["devices", "auto-accept", "alpha", "on"]);
    let out = a.cli(&["send", "beta", path_str(&file)]);
    assert!(out.contains("sent 1 file(s)"), "{out}");
    assert_eq!(fs::read(inbox.join("hello (1).txt")).unwrap(), data);

    // --no-wait returns at once; the send still completes.
    let q = a.json(&["send", "--no-wait", "beta", path_str(&file)]);
    let id = q["id"].as_str().unwrap().to_string();
    wait_for("queued send done", || {
        a.json(&["transfers"]).as_array().unwrap().iter().any(|t| t["id"] == id.as_str() && t["state"] == "done")
    });
    assert_eq!(fs::read(inbox.join("hello (2).txt")).unwrap(), data);

    // Bad input: clear messages, non-zero exits.
    let e = a.cli_fails(&["send", "nosuchdevice", path_str(&file)]);
    assert!(e.contains("no known device matches \"nosuchdevice\""), "{e}");
    let e = a.cli_fails(&["send", "beta", path_str(&src.path().join("missing.txt"))]);
    assert!(e.contains("missing.txt"), "{e}");
    let e = a.cli_fails(&["send", "beta"]);
    assert!(e.contains("required"), "{e}");
    let e = b.cli_fails(&["devices", "auto-accept", "alpha", "maybe"]);
    assert!(e.contains("invalid value"), "{e}");
}
