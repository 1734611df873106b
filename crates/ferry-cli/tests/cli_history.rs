//! A file's history through the CLI: versions, restore, a conflict settled with `ferry
//! resolve`, a rewind plan, and the sync summary table in `ferry status`.

mod common;

use std::fs;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use common::{Daemon, conflict_copies, pair_through_cli, path_str, tree, wait_for, wait_some, write_with_mtime};

/// Versions, restore, rewind, conflicts and resolve through the CLI, and the status summary.
#[test]
fn history_and_conflicts_through_the_cli() {
    let a = Daemon::start("alpha");
    let mut b = Daemon::start("beta");
    pair_through_cli(&a, &b);
    let dirs = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (dirs.path().join("h-a"), dirs.path().join("h-b"));
    fs::create_dir(&dir_a).unwrap();
    let share = a.json(&["share", "add", path_str(&dir_a), "--label", "hist", "--retention", "trash-can:7"]);
    let share_id = share["id"].as_str().unwrap().to_string();
    let err = a.cli_fails(&["share", "add", path_str(dirs.path()), "--conflict-policy", "coin-flip"]);
    assert!(err.contains("unknown conflict policy"), "{err}");
    a.cli(&["share", "invite", "hist", "beta"]);
    let offer = wait_some("share offer on b", || b.pending().into_iter().find(|p| p["kind"] == "share"));
    b.cli(&["accept", &offer["id"].to_string(), "--path", path_str(&dir_b)]);
    let policy = b.json(&["share", "policy", "hist", "keep-both"]);
    assert_eq!(policy["conflict_policy"], "keep-both");
    assert_eq!(a.share_status(&share_id).unwrap()["retention"], "trash-can:7");

    let (fa, fb) = (dir_a.join("report.txt"), dir_b.join("report.txt"));
    fs::write(&fa, b"draft").unwrap();
    wait_for("report on b", || fs::read(&fb).ok().as_deref() == Some(b"draft"));
    fs::remove_file(&fa).unwrap();
    wait_for("deleted on b", || !fb.exists());

    // The deleted file's history, as JSON and as text.
    let v = wait_some("version on b", || b.json(&["versions", path_str(&fb)]).as_array()?.first().cloned());
    assert_eq!(v["reason"], "deleted");
    assert_eq!(fs::read(v["file"].as_str().unwrap()).unwrap(), b"draft");
    let listing = b.cli(&["versions", path_str(&fb)]);
    assert!(listing.contains("deleted") && listing.contains("report.txt"), "{listing}");
    eprintln!("[cli test] ferry versions:\n{listing}");

    // Restore on B: back on both.
    let out = b.cli(&["restore", path_str(&fb), "--version", &v["id"].to_string()]);
    assert!(out.contains("restored report.txt"), "{out}");
    wait_for("restored on both", || {
        fs::read(&fa).ok().as_deref() == Some(b"draft") && fs::read(&fb).ok().as_deref() == Some(b"draft")
    });
    let err = b.cli_fails(&["restore", path_str(&fb), "--at", "soon"]);
    assert!(err.contains("not a time"), "{err}");

    // A conflict: B away, both edit, B back; B's later edit wins, A's is the copy.
    wait_for("in sync", || {
        a.share_status(&share_id).is_some_and(|s| s["in_sync"] == true)
            && b.share_status(&share_id).is_some_and(|s| s["in_sync"] == true)
    });
    b.stop();
    let t0 = SystemTime::now();
    write_with_mtime(&fa, b"alpha's take", t0);
    write_with_mtime(&fb, b"beta's take", t0 + Duration::from_secs(10));
    wait_for("a indexed its edit", || {
        a.share_status(&share_id)
            .is_some_and(|s| s["state"] == "idle" && s["summary"]["since_start"]["local_changes"].as_u64() >= Some(1))
    });
    b.restart();
    wait_for("copy on both", || {
        let ta = tree(&dir_a);
        conflict_copies(&ta).len() == 1 && ta == tree(&dir_b)
    });
    let conflicts = a.json(&["conflicts"]);
    let c = &conflicts.as_array().unwrap()[0];
    assert_eq!(c["path"], "report.txt");
    assert_eq!(c["copy_size"], 12);
    assert_eq!(c["current_size"], 11);
    assert_eq!(c["current_device_name"], "beta");
    let text_list = a.cli(&["conflicts", "hist"]);
    assert!(text_list.contains("report.txt") && text_list.contains("beta"), "{text_list}");
    let err = a.cli_fails(&["resolve", path_str(&fa), "--keep", "whichever"]);
    assert!(err.contains("--keep must be"), "{err}");
    // Keep the remote (beta's) content: the copy goes to the history, everywhere.
    a.cli(&["resolve", path_str(&fa), "--keep", "remote"]);
    wait_for("resolved on both", || {
        let ta = tree(&dir_a);
        conflict_copies(&ta).is_empty() && ta == tree(&dir_b) && fs::read(&fb).ok().as_deref() == Some(b"beta's take")
    });
    assert!(a.json(&["conflicts"]).as_array().unwrap().is_empty());
    let kept: Vec<Value> = a.json(&["versions", path_str(&fa)]).as_array().unwrap().clone();
    assert!(
        kept.iter()
            .any(|v| v["reason"] == "conflict" && fs::read(v["file"].as_str().unwrap()).unwrap() == b"alpha's take")
    );

    // Rewind plan, then the summary table.
    let plan = a.cli(&["rewind", "hist", "--to", "1h", "--dry-run"]);
    assert!(plan.contains("would change"), "{plan}");
    let err = a.cli_fails(&["rewind", "hist", "--to", "whenever"]);
    assert!(err.contains("not a time"), "{err}");
    let status = a.cli(&["status"]);
    assert!(status.contains("Local") && status.contains("Remote") && status.contains("hist (since start)"), "{status}");
    eprintln!("[cli test] ferry status:\n{status}");
}
