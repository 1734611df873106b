//! LocalSend's settings through the `ferry` binary, on loopback only (LocalSend bound to
//! 127.0.0.1 never multicasts): with its port taken by another program, the daemon runs with
//! LocalSend off and `ferry doctor` says why; with a free port it runs and doctor shows its port
//! and fingerprint; a PIN that is not one is refused at start with a clear message.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// `ferry daemon` with LocalSend on 127.0.0.1:`port` (and `extra`), logging to `home/log`.
fn daemon(home: &Path, port: u16, extra: &[&str]) -> Command {
    let mut c = ferry_cmd(home);
    c.env("FERRY_LOCALSEND", "1");
    c.args(["daemon", "--listen", &format!("127.0.0.1:{}", free_port()), "--name", "desk", "--owner", "tester"])
        .args(["--localsend-bind", "127.0.0.1", "--localsend-port", &port.to_string(), "--inbox"])
        .arg(home.join("Inbox"))
        .args(extra);
    c
}

fn doctor(home: &Path) -> Option<Value> {
    let out = ferry_cmd(home).args(["doctor", "--json"]).output().ok()?;
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    (v["daemon_running"] == true).then_some(v)
}

#[test]
fn localsend_port_taken_is_reported_and_a_free_one_runs() {
    // Another program (standing in for the LocalSend app) holds the port.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("a");
    let log = std::fs::File::create(dir.path().join("a.log")).unwrap();
    let mut cmd = daemon(&home, port, &[]);
    cmd.stdout(Stdio::from(log.try_clone().unwrap())).stderr(Stdio::from(log));
    let mut a = Proc::spawn(&mut cmd, "ferry daemon (port taken)");
    let d = wait_some("doctor of the daemon", || doctor(&home));
    let ls = &d["localsend"];
    assert_eq!(ls["state"], "failed", "{d}");
    let why = ls["reason"].as_str().unwrap();
    assert!(why.contains(&format!("TCP port {port}")) && why.contains("another"), "{why}");
    let problems: Vec<&str> = d["problems"].as_array().unwrap().iter().filter_map(|p| p.as_str()).collect();
    assert!(problems.iter().any(|p| p.starts_with("LocalSend is not running")), "{problems:?}");
    a.terminate(Duration::from_secs(10));

    // A free port: running, with its port and fingerprint; nothing nearby (no multicast here).
    drop(taken);
    let home = dir.path().join("b");
    let free = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = daemon(&home, free, &["--localsend-pin", "2468"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut b = Proc::spawn(&mut cmd, "ferry daemon (LocalSend on)");
    let d = wait_some("doctor of the second daemon", || doctor(&home).filter(|d| d["localsend"]["state"] == "running"));
    let ls = &d["localsend"];
    assert_eq!((ls["port"].as_u64(), ls["pin"].as_bool()), (Some(free as u64), Some(true)), "{d}");
    let fp = ls["fingerprint"].as_str().unwrap();
    assert!(fp.len() == 64 && fp.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()), "{fp}");
    b.terminate(Duration::from_secs(10));
}

#[test]
fn a_bad_localsend_pin_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let port = free_port();
    let out = run(daemon(&home, port, &["--localsend-pin", "12 34"]), "ferry daemon with a bad PIN");
    assert!(!out.status.success(), "a PIN with a space must not start the daemon");
    let err = text(&out.stderr);
    assert!(err.contains("localsend_pin") && err.contains("without spaces"), "{err}");
}
