//! Crash points: the receiving daemon is aborted (SIGABRT, no clean shutdown) at each named step
//! of the durability path in turn (`ferry_node::crash::POINTS`: a pull's fetched temp, archived
//! old content, rename, index commit; a scan's commit; a send placed in the inbox; a note
//! stored; a restore written), restarted on what the crash left, and checked:
//! - every file in both folders holds one of the contents the test ever wrote (nothing partial,
//!   zero-filled or mixed), and no conflict copy appears (a crash is not a conflict);
//! - the two devices converge and both say in sync (the restarted index agrees with its disk);
//! - what was under way completes once: the sent file is in the inbox exactly once, whole; the
//!   note is there exactly once.
//!
//! Real `ferry daemon` processes on 127.0.0.1 (the crash must take the whole process).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;

use common::*;
use ferry_node::crash::POINTS;

/// The armed daemon: `b`'s home and port, started with `FERRY_CRASH_AT=point`.
fn launch_armed(b: &Daemon, point: &str) -> Proc {
    let log = fs::OpenOptions::new().create(true).append(true).open(b.log_path()).unwrap();
    let mut cmd = ferry_cmd(&b.home);
    cmd.args(["daemon", "--listen", &format!("127.0.0.1:{}", b.port), "--name", &b.name])
        .args(["--owner", "tester", "--log", "info", "--no-mdns", "--no-kdeconnect", "--no-localsend", "--inbox"])
        .arg(b.home.join("Inbox"))
        .env("FERRY_CRASH_AT", point)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    let mut p = Proc::spawn(&mut cmd, &format!("ferry daemon {} armed at {point}", b.name));
    wait_for(&format!("{} armed at {point} to answer", b.name), || {
        assert!(p.exited().is_none(), "armed daemon exited before the trigger:\n{}", b.log_tail(30));
        b.try_cli(&["id", "--json"]).status.success()
    });
    p
}

/// Every content the test wrote, by BLAKE3.
struct Known(BTreeSet<String>);

impl Known {
    fn write(&mut self, p: &Path, data: &[u8]) {
        self.0.insert(blake3::hash(data).to_hex().to_string());
        fs::write(p, data).unwrap();
    }

    /// Every file in `root` holds a content the test wrote; no conflict copy.
    fn check(&self, root: &Path, point: &str) {
        let t = tree(root);
        assert!(conflict_copies(&t).is_empty(), "{point}: a crash made conflict copies: {t:?}");
        for (path, v) in &t {
            if let Some(rest) = v.strip_prefix("file:") {
                let hash = rest.split(':').nth(1).unwrap();
                assert!(self.0.contains(hash), "{point}: {path} holds content nobody wrote ({v})");
            }
        }
    }
}

fn in_sync(d: &Daemon, share: &str) -> bool {
    d.share_status(share).is_some_and(|s| s["in_sync"] == true)
}

#[test]
fn the_receiver_recovers_from_a_crash_at_every_durability_step() {
    let (mut a, mut b) = (Daemon::start("alpha"), Daemon::start("beta"));
    pair_through_cli(&a, &b);
    let dirs = tempfile::tempdir().unwrap();
    let (da, db) = (dirs.path().join("a"), dirs.path().join("b"));
    fs::create_dir(&da).unwrap();
    let mut known = Known(BTreeSet::new());
    known.write(&da.join("doc.txt"), b"doc v0");
    let share = a.json(&["share", "add", da.to_str().unwrap(), "--label", "docs"])["id"].as_str().unwrap().to_string();
    a.cli(&["share", "invite", "docs", "beta"]);
    let offer = wait_some("share offer on beta", || b.pending().into_iter().find(|p| p["kind"] == "share"));
    b.cli(&["accept", &offer["id"].to_string(), "--path", db.to_str().unwrap()]);
    b.cli(&["devices", "auto-accept", "alpha", "on"]);
    wait_for("doc.txt on beta", || tree(&db) == tree(&da));
    let outbox = tempfile::tempdir().unwrap();

    for (i, &point) in POINTS.iter().enumerate() {
        b.stop();
        let mut armed = launch_armed(&b, point);
        wait_for(&format!("{point}: connected again"), || a.connected_to(&b.id()) && b.connected_to(&a.id()));
        // What makes the receiver reach the point. Commands run in the background: the crash
        // may cut them off.
        let mut bg: Vec<Proc> = Vec::new();
        let (sent_name, note) = (format!("sent-{i}.bin"), format!("note {i} for beta"));
        let sent = random_bytes(900 + i as u64, 300_000);
        match point {
            "apply.fetched" | "apply.archived" | "apply.renamed" | "pull.committed" => {
                known.write(&da.join("doc.txt"), format!("doc v{} from alpha", i + 1).as_bytes());
            }
            "scan.committed" => known.write(&db.join(format!("local-{i}.txt")), format!("beta's {i}").as_bytes()),
            "send.placed" => {
                let f = outbox.path().join(&sent_name);
                fs::write(&f, &sent).unwrap();
                bg.push(Proc::spawn(
                    a.cmd(&["send", "beta", f.to_str().unwrap(), "--no-wait"]).stdout(Stdio::null()),
                    "send",
                ));
            }
            "note.stored" => {
                bg.push(Proc::spawn(a.cmd(&["note", "send", "beta", &note]).stdout(Stdio::null()), "note"))
            }
            "restore.written" => bg.push(Proc::spawn(
                b.cmd(&["restore", db.join("doc.txt").to_str().unwrap()]).stdout(Stdio::null()),
                "restore",
            )),
            other => panic!("no trigger for crash point {other}: add one"),
        }
        let out = armed.wait(WAIT).unwrap_or_else(|| panic!("{point}: beta did not crash:\n{}", b.log_tail(30)));
        assert_eq!(out.status.signal(), Some(libc_sigabrt()), "{point}: beta ended with {:?}", out.status);
        assert!(b.log_tail(200).contains(&format!("crash point {point} reached")), "{point}: not reached");
        drop(bg);

        b.launch();
        wait_for(&format!("{point}: both in sync after the restart"), || {
            tree(&da) == tree(&db) && in_sync(&a, &share) && in_sync(&b, &share)
        });
        known.check(&da, point);
        known.check(&db, point);
        if point == "send.placed" {
            let inbox = b.home.join("Inbox");
            let copies =
                || tree(&inbox).values().filter(|v| v.ends_with(blake3::hash(&sent).to_hex().as_str())).count();
            let done = || b.json(&["transfers"]).as_array().unwrap().iter().any(|t| t["state"] == "done");
            let deadline = std::time::Instant::now() + WAIT;
            while !(copies() >= 1 && done()) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            assert_eq!(
                copies(),
                1,
                "{point}: the sent file is not in the inbox exactly once: {:?}\ntransfers: {}\n{}",
                tree(&inbox),
                b.json(&["transfers"]),
                b.log_tail(40)
            );
        }
        if point == "note.stored" {
            wait_for(&format!("{point}: the note on beta"), || {
                b.json(&["notes"]).as_array().unwrap().iter().filter(|n| n["text"] == note.as_str()).count() == 1
            });
        }
        eprintln!("[crash points] {point}: recovered");
    }
    a.stop();
    b.stop();
}

/// A received folder is moved into the inbox whole, so nothing of it stays in staging to be
/// recognised by: a crash after the move and before its record (`send.placed`) used to leave
/// the restarted receiver fetching the folder again and placing it a second time as
/// `album (1)`. Now the claim noted before the move says where it went: placed once, whole.
#[test]
fn a_folder_moved_into_the_inbox_before_a_crash_is_placed_once() {
    let (mut a, mut b) = (Daemon::start("alpha"), Daemon::start("beta"));
    pair_through_cli(&a, &b);
    b.cli(&["devices", "auto-accept", "alpha", "on"]);
    let outbox = tempfile::tempdir().unwrap();
    let album = outbox.path().join("album");
    fs::create_dir_all(album.join("2026")).unwrap();
    fs::write(album.join("cover.jpg"), random_bytes(1, 200_000)).unwrap();
    fs::write(album.join("2026/june.jpg"), random_bytes(2, 300_000)).unwrap();
    b.stop();
    let mut armed = launch_armed(&b, "send.placed");
    wait_for("connected to the armed beta", || a.connected_to(&b.id()) && b.connected_to(&a.id()));
    let _send =
        Proc::spawn(a.cmd(&["send", "beta", album.to_str().unwrap(), "--no-wait"]).stdout(Stdio::null()), "send");
    let out = armed.wait(WAIT).unwrap_or_else(|| panic!("beta did not crash:\n{}", b.log_tail(30)));
    assert_eq!(out.status.signal(), Some(libc_sigabrt()), "beta ended with {:?}", out.status);

    b.launch();
    let done = || b.json(&["transfers"]).as_array().unwrap().iter().any(|t| t["state"] == "done");
    wait_for("the send done on beta after the restart", done);
    let inbox = b.home.join("Inbox");
    let tops: Vec<String> =
        fs::read_dir(&inbox).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(tops, ["album"], "the folder is in the inbox once, and nothing else is\n{}", b.log_tail(40));
    assert_eq!(tree(&inbox.join("album")), tree(&album), "the placed folder holds what was sent");
    a.stop();
    b.stop();
}

/// SIGABRT's number (6 on Linux), without a libc dependency for one constant.
fn libc_sigabrt() -> i32 {
    6
}
