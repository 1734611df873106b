//! `ferry devices remove`: the text and JSON answers, the exit codes, and what `ferry devices`
//! shows on both sides afterwards.

mod common;

use common::{Daemon, pair_through_cli, wait_for};

#[test]
fn devices_remove_prints_exits_and_shows_removed_by_on_the_other_side() {
    let a = Daemon::start("gamma");
    let b = Daemon::start("theta");
    pair_through_cli(&a, &b);
    let (a_id, b_id) = (a.id(), b.id());
    wait_for("gamma connected to theta", || a.connected_to(&b_id));

    // An unknown device: a clear error and exit 1, nothing changed.
    let o = a.try_cli(&["devices", "remove", "nosuchdevice"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = common::text(&o.stderr);
    assert!(err.contains("no known device matches \"nosuchdevice\""), "{err}");
    assert!(a.connected_to(&b_id), "a failed remove changes nothing");

    // Text output names the device and says nothing was deleted.
    let out = a.cli(&["devices", "remove", "theta"]);
    assert!(out.starts_with(&format!("removed theta ({b_id})")), "{out}");
    assert!(out.contains("No file was deleted") && out.contains("ferry pair"), "{out}");

    // --json: no longer paired, marked removed; a second removal is refused with exit 1.
    let d = a.device(&b_id).expect("theta is still known");
    assert_eq!(d["paired"], false, "{d}");
    assert_eq!(d["removed"], true, "{d}");
    let err = a.cli_fails(&["devices", "remove", &b_id]);
    assert!(err.contains("theta is already removed"), "{err}");
    let again = a.try_cli(&["devices", "remove", &b_id, "--json"]);
    assert_eq!(again.status.code(), Some(1));

    // theta is told at once (it was connected) and shows it, in JSON and in text.
    wait_for("theta shows it was removed by gamma", || {
        b.device(&a_id).is_some_and(|d| d["removed_by"] == "gamma" && d["paired"] == false)
    });
    let list = b.cli(&["devices"]);
    let line = list.lines().find(|l| l.contains(&a_id)).expect("gamma listed on theta");
    assert!(line.contains("removed by gamma"), "{list}");
    let list = a.cli(&["devices"]);
    let line = list.lines().find(|l| l.contains(&b_id)).expect("theta listed on gamma");
    assert!(line.contains("removed"), "{list}");
}
