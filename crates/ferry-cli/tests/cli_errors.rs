//! The errors the CLI gives for bad input: unusable share folders, unknown names and ids, a
//! second daemon on one home, a rejected pairing, no daemon at all, a bad ferry.toml or listen
//! address.

mod common;

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{Daemon, Proc, WAIT, ferry_cmd, free_port, path_str, run, text, wait_some};

#[test]
fn bad_input_is_refused_clearly() {
    let d = Daemon::start("beta");
    let dirs = tempfile::tempdir().unwrap();
    let root = dirs.path().canonicalize().unwrap();

    let missing = root.join("does-not-exist");
    let err = d.cli_fails(&["share", "add", path_str(&missing)]);
    assert!(err.contains(path_str(&missing)), "names the missing path: {err}");

    let file = root.join("plain.txt");
    fs::write(&file, b"not a folder").unwrap();
    let err = d.cli_fails(&["share", "add", path_str(&file)]);
    assert!(err.contains("not a directory"), "{err}");

    let dir = root.join("shared");
    fs::create_dir_all(dir.join("sub")).unwrap();
    d.json(&["share", "add", path_str(&dir), "--label", "shared"]);
    let err = d.cli_fails(&["share", "add", path_str(&dir.join("sub"))]);
    assert!(err.contains("overlap") || err.contains("nest"), "nested share refused: {err}");
    let err = d.cli_fails(&["share", "add", path_str(&root)]);
    assert!(err.contains("overlap") || err.contains("nest"), "enclosing share refused: {err}");
    let err = d.cli_fails(&["share", "add", path_str(&d.home)]);
    assert!(err.contains("home"), "Ferry's home refused: {err}");
    let other = root.join("other");
    fs::create_dir(&other).unwrap();
    let err = d.cli_fails(&["share", "add", path_str(&other), "--mode", "sideways"]);
    assert!(err.contains("sideways"), "bad mode named: {err}");
    assert_eq!(d.json(&["share", "list"]).as_array().unwrap().len(), 1, "nothing added by failed commands");

    let err = d.cli_fails(&["share", "invite", "nosuch", "beta"]);
    assert!(err.contains("nosuch"), "{err}");
    let err = d.cli_fails(&["share", "invite", "shared", "nosuchdevice"]);
    assert!(err.contains("no known device"), "{err}");
    let err = d.cli_fails(&["share", "remove", "nosuch"]);
    assert!(err.contains("nosuch"), "{err}");
    let err = d.cli_fails(&["ping", "nosuchdevice"]);
    assert!(err.contains("no known device"), "{err}");
    let err = d.cli_fails(&["accept", "999"]);
    assert!(err.contains("999"), "{err}");
    let err = d.cli_fails(&["reject", "999"]);
    assert!(err.contains("999"), "{err}");
    let err = d.cli_fails(&["accept", "notanumber"]);
    assert!(err.contains("notanumber"), "clap names the bad value: {err}");
    let err = d.cli_fails(&["versions", path_str(&other)]);
    assert!(err.contains("not inside any share"), "{err}");
    let err = d.cli_fails(&["frobnicate"]);
    assert!(err.contains("frobnicate"), "{err}");

    // A second daemon on a home already in use is refused and leaves the first one working.
    let mut second = d.cmd(&["daemon", "--listen", &format!("127.0.0.1:{}", free_port()), "--name", "twin"]);
    second.stdout(Stdio::piped()).stderr(Stdio::piped());
    let o = run(second, "second daemon on the same home");
    assert!(!o.status.success(), "second daemon on one home must fail: {}", text(&o.stdout));
    eprintln!("[cli test] second daemon on the same home: {}", text(&o.stderr).trim());
    assert_eq!(d.json(&["id"])["name"], "beta", "the first daemon still answers");

    a_rejected_pairing_fails(&d);
    no_daemon_or_one_that_cannot_start();
}

/// A rejected pairing: `ferry pair --json` exits non-zero and says so.
fn a_rejected_pairing_fails(d: &Daemon) {
    let g = Daemon::start("gamma");
    let mut cmd = g.cmd(&["pair", &d.addr(), "--json"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut pair = Proc::spawn(&mut cmd, "ferry pair --json");
    let prompt = wait_some("pairing prompt from gamma", || d.pending().into_iter().find(|p| p["kind"] == "pair"));
    assert_eq!(prompt["device_name"], "gamma");
    d.cli(&["reject", &prompt["id"].to_string()]);
    let o = pair.wait(WAIT).expect("`ferry pair` returns once rejected").clone();
    assert!(!o.status.success(), "a rejected pairing exits non-zero");
    let answer: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("pair --json printed no JSON ({e}): {}", text(&o.stdout)));
    assert_eq!(answer["state"], "rejected", "{answer}");
    assert_eq!(answer["code"], prompt["code"], "{answer}");
    assert_eq!(answer["device"], d.id().as_str(), "{answer}");
    assert!(d.pending().is_empty(), "the prompt is gone");
    let gid = g.id();
    assert!(d.device(&gid).is_none_or(|x| x["paired"] == false), "gamma is not paired");
    assert!(g.device(&d.id()).is_none_or(|x| x["paired"] == false), "beta is not paired on gamma");
    let err = g.cli_fails(&["share", "invite", "nosuch", "beta"]);
    assert!(err.contains("nosuch"), "{err}");
    drop(g);
}

/// No daemon for this home; a daemon with a bad ferry.toml or listen address stops at once.
fn no_daemon_or_one_that_cannot_start() {
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = ferry_cmd(empty.path());
    cmd.arg("status");
    let o = run(cmd, "status without a daemon");
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("no Ferry node is running"), "{}", text(&o.stderr));

    // A bad ferry.toml stops the daemon at once, naming the file.
    let bad = tempfile::tempdir().unwrap();
    fs::write(bad.path().join("ferry.toml"), "nmae = 1\n").unwrap();
    let mut cmd = ferry_cmd(bad.path());
    cmd.args(["daemon", "--listen", &format!("127.0.0.1:{}", free_port()), "--name", "bad"]);
    let started = Instant::now();
    let o = run(cmd, "daemon with a bad ferry.toml");
    assert!(!o.status.success());
    assert!(started.elapsed() < Duration::from_secs(10), "bad config fails fast: {:?}", started.elapsed());
    assert!(text(&o.stderr).contains("ferry.toml"), "{}", text(&o.stderr));
    assert!(!bad.path().join("ferry.sock").exists());

    // A nonsense listen address, likewise.
    let mut cmd = ferry_cmd(bad.path());
    fs::remove_file(bad.path().join("ferry.toml")).unwrap();
    cmd.args(["daemon", "--listen", "nonsense", "--name", "bad"]);
    let o = run(cmd, "daemon with a bad listen address");
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("nonsense"), "{}", text(&o.stderr));
}
