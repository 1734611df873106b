//! Finding devices without mDNS (the root namespace keeps it off): static addresses with
//! `ferry devices add-address`, `ferry pair NAME` with nothing nearby, and `ferry doctor` with
//! and without a running node.

mod common;

use serde_json::Value;

use common::{Daemon, ferry_cmd, free_port, pair_through_cli, run, text, wait_for};

/// A paired device that moved to another port is found again through an address added with
/// `ferry devices add-address`; `ferry pair NAME` with nothing nearby and `ferry doctor` with
/// and without a node give clear answers (mDNS stays off here: root namespace).
#[test]
fn static_addresses_doctor_and_pairing_by_name_without_mdns() {
    let a = Daemon::start("delta");
    let mut b = Daemon::start("epsilon");
    pair_through_cli(&a, &b);
    let b_id = b.id();
    wait_for("delta connected to epsilon", || a.connected_to(&b_id));

    // Nothing is nearby without mDNS: a name is refused with a pointer to HOST:PORT.
    let err = a.cli_fails(&["pair", "zeta"]);
    assert!(err.contains("no nearby device matches") && err.contains("HOST:PORT"), "{err}");
    let err = a.cli_fails(&["devices", "add-address", "epsilon", "not an address"]);
    assert!(err.contains("not an address"), "{err}");
    let err = a.cli_fails(&["devices", "add-address", "nosuchdevice", "127.0.0.1:1"]);
    assert!(err.contains("no known device"), "{err}");
    let err = a.cli_fails(&["devices", "add-address", "epsilon", "0.0.0.0:5"]);
    assert!(err.contains("cannot be dialed"), "{err}");

    // epsilon comes back on another port; its remembered address is now wrong.
    b.stop();
    wait_for("delta sees epsilon gone", || !a.connected_to(&b_id));
    b.port = free_port();
    b.restart();
    let d = a.json(&["devices", "add-address", "epsilon", &b.addr()]);
    assert_eq!(d["id"], b_id.as_str());
    assert!(d["addresses"].as_array().unwrap().iter().any(|x| *x == b.addr().as_str()), "{d}");
    assert_eq!(d["nearby"], false);
    wait_for("delta reconnects to epsilon at its new address", || a.connected_to(&b_id));

    // doctor, running: mDNS off, listen address, control socket answering, inotify budget.
    let doc = a.json(&["doctor"]);
    assert_eq!(doc["daemon_running"], true, "{doc}");
    assert_eq!(doc["control_socket_state"], "answering", "{doc}");
    assert_eq!(doc["listen"], a.addr().as_str(), "{doc}");
    assert_eq!(doc["mdns"]["state"], "off", "{doc}");
    assert!(doc["inotify"]["max_user_watches"].as_u64().unwrap() > 0, "{doc}");
    let text_report = a.cli(&["doctor"]);
    assert!(text_report.contains("mDNS:") && text_report.contains("inotify watches:"), "{text_report}");

    // doctor without a node: still answers, and says how to start one.
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = ferry_cmd(empty.path());
    cmd.args(["doctor", "--json"]);
    let o = run(cmd, "ferry doctor without a node");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["daemon_running"], false);
    assert_eq!(doc["control_socket_state"], "missing");
    assert!(doc["problems"].as_array().unwrap().iter().any(|p| p.as_str().unwrap().contains("ferry daemon")), "{doc}");
}
