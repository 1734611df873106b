//! `ferry events --since N`: the node numbers its events and keeps what happened, so a client
//! that was not listening (a window opened later, a script that reconnects) catches up first
//! and then follows live, without a gap or a repeat.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::Value;

use common::{Daemon, Proc, text};

/// Bound for one line of the stream to show up.
const LINE_WAIT: Duration = Duration::from_secs(20);

/// `ferry events` with `args`, its stdout read line by line on a thread.
fn follow(d: &Daemon, args: &[&str]) -> (Proc, Receiver<String>) {
    let mut child = d.cmd(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("ferry events");
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Proc::from_child(child, "ferry events"), rx)
}

/// The next `sync_paused` event of the stream (others, e.g. scans, pass by).
fn next_paused(rx: &Receiver<String>) -> Value {
    loop {
        let line = rx.recv_timeout(LINE_WAIT).expect("an event line within the bound");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        if v["type"] == "sync_paused" {
            return v;
        }
    }
}

#[test]
fn events_since_replays_what_the_node_kept_then_follows() {
    let d = Daemon::start("kappa");
    d.cli(&["pause"]);
    d.cli(&["resume"]);

    // From 0: both changes, numbered in order, each with the time it happened.
    let (_all, rx) = follow(&d, &["--json", "events", "--since", "0"]);
    let (first, second) = (next_paused(&rx), next_paused(&rx));
    assert_eq!((first["paused"].as_bool(), second["paused"].as_bool()), (Some(true), Some(false)));
    let (s1, s2) = (first["seq"].as_u64().unwrap(), second["seq"].as_u64().unwrap());
    assert!(s1 < s2, "{first} {second}");
    assert!(first["at_ms"].as_u64().unwrap() > 0);

    // Then live: a change now comes next, numbered after the replay.
    d.cli(&["pause"]);
    let live = next_paused(&rx);
    assert_eq!(live["paused"], true);
    assert!(live["seq"].as_u64().unwrap() > s2);

    // From the first one's number: the ones after it only.
    let (_rest, rx) = follow(&d, &["--json", "events", "--since", &s1.to_string()]);
    assert_eq!(next_paused(&rx)["seq"], second["seq"]);
    assert_eq!(next_paused(&rx)["seq"], live["seq"]);

    // Human lines: the time of day, then what happened.
    let (_human, rx) = follow(&d, &["events", "--since", "0"]);
    let line = rx.recv_timeout(LINE_WAIT).expect("a line");
    let (clock, rest) = line.split_once("  ").unwrap_or_else(|| panic!("{line:?}"));
    assert!(clock.len() == 9 && clock.ends_with('Z') && clock.as_bytes()[2] == b':', "{line:?}");
    assert!(!rest.trim().is_empty(), "{line:?}");

    // A bad number is refused by the CLI with a clear message.
    let out = d.try_cli(&["events", "--since", "soon"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("invalid value 'soon'"), "{}", text(&out.stderr));
}
