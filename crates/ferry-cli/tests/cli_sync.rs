//! The whole life of a share between two `ferry daemon` processes on 127.0.0.1, driven only
//! through the CLI: pairing, notes, sharing and accepting, a large tree, modify/rename/delete,
//! versions, a conflict across a restart, and both sides in sync. One test, run in phases (each
//! phase a function below) because every phase builds on the state the previous one left.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use common::{
    Daemon, conflict_copies, pair_through_cli, path_str, random_bytes, tree, tree_bytes, wait_for, wait_some,
    write_with_mtime,
};

#[test]
fn two_daemons_through_the_cli() {
    let t0 = Instant::now();
    let mut a = Daemon::start("alpha");
    let mut b = Daemon::start("beta");
    let (a_id, b_id) = (a.id(), b.id());
    assert_ne!(a_id, b_id);
    let id = a.json(&["id"]);
    assert_eq!(id["name"], "alpha");
    assert_eq!(id["owner"], "tester");

    pair_through_cli(&a, &b);
    let ping = a.json(&["ping", "beta"]);
    assert_eq!(ping["device"], b_id.as_str());
    assert!(ping["rtt_ms"].as_f64().unwrap() >= 0.0);
    eprintln!("[cli test] paired after {:?}", t0.elapsed());

    notes_both_ways(&a, &b, &b_id);

    // Share a folder from A; B accepts the offer into a folder that does not exist yet.
    let dirs = tempfile::tempdir().unwrap();
    let dir_a = dirs.path().join("docs-a");
    let dir_b = dirs.path().join("docs-b");
    let share_id = share_and_accept(&a, &b, &dir_a, &dir_b, &a_id, &b_id);
    a_tree_syncs(&b, &dir_a, &dir_b, &share_id);
    modify_rename_delete_and_versions(&b, &dir_a, &dir_b);
    conflict_across_a_restart(&a, &mut b, &dir_a, &dir_b, &share_id, &a_id, &b_id);

    // Both report the share in sync.
    wait_for("in_sync on both", || {
        [&a, &b].iter().all(|d| d.share_status(&share_id).is_some_and(|s| s["in_sync"] == true && s["need"] == 0))
    });
    for d in [&a, &b] {
        let s = d.json(&["status"]);
        assert_eq!(s["listen"], d.addr().as_str());
        assert_eq!(s["name"], d.name.as_str());
    }
    assert_eq!(tree(&dir_a), tree(&dir_b));

    a.stop();
    b.stop();
    eprintln!("[cli test] two_daemons_through_the_cli took {:?}", t0.elapsed());
}

/// Quick notes both ways, one of them read from stdin, and the read receipt.
fn notes_both_ways(a: &Daemon, b: &Daemon, b_id: &str) {
    let sent = a.json(&["note", "send", "beta", "hello from alpha"]);
    let note_id = sent["id"].as_str().unwrap().to_string();
    wait_for("note on beta", || {
        b.json(&["notes"])
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == note_id.as_str() && n["text"] == "hello from alpha" && n["state"] == "unread")
    });
    b.cli(&["notes", "read", &note_id]);
    wait_for("read receipt on alpha", || {
        a.json(&["notes"]).as_array().unwrap().iter().any(|n| n["id"] == note_id.as_str() && n["state"] == "read")
    });
    let mut child = b
        .cmd(&["note", "send", "alpha", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all("from beta's stdin\n".as_bytes()).unwrap();
    }
    assert!(child.wait().unwrap().success(), "note send from stdin failed");
    wait_for("stdin note on alpha", || {
        a.json(&["notes"])
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["from"] == b_id && n["text"].as_str().is_some_and(|t| t.trim_end() == "from beta's stdin"))
    });
    let err = a.cli_fails(&["note", "send", "nosuchdevice", "hi"]);
    assert!(err.contains("no known device"), "{err}");
}

/// Shares a folder from A; B accepts the offer into a folder that does not exist yet. Returns
/// the share's id.
fn share_and_accept(a: &Daemon, b: &Daemon, dir_a: &Path, dir_b: &Path, a_id: &str, b_id: &str) -> String {
    fs::create_dir(dir_a).unwrap();
    fs::write(dir_a.join("notes.txt"), b"base").unwrap();
    let share = a.json(&["share", "add", path_str(dir_a), "--label", "docs"]);
    let share_id = share["id"].as_str().unwrap().to_string();
    assert_eq!(share["label"], "docs");
    assert_eq!(share["mode"], "send-receive");
    assert_eq!(share["path"], path_str(&dir_a.canonicalize().unwrap()));
    let invited = a.json(&["share", "invite", "docs", "beta"]);
    assert_eq!(invited["id"], share_id.as_str());
    assert!(invited["devices"].as_array().unwrap().iter().any(|d| d == b_id), "{invited}");

    let offer = wait_some("share offer on b", || b.pending().into_iter().find(|p| p["kind"] == "share"));
    assert_eq!(offer["share_id"], share_id.as_str());
    assert_eq!(offer["share_label"], "docs");
    assert_eq!(offer["device"], a_id);
    b.cli(&["accept", &offer["id"].to_string(), "--path", path_str(dir_b)]);
    let listed = b.json(&["share", "list"]);
    assert!(
        listed.as_array().unwrap().iter().any(|s| s["id"] == share_id.as_str() && s["label"] == "docs"),
        "{listed}"
    );
    wait_for("notes.txt on b", || fs::read(dir_b.join("notes.txt")).ok().as_deref() == Some(b"base"));
    share_id
}

/// A nested tree: 300 small files in three levels, an empty dir and a 5 MiB random file.
fn a_tree_syncs(b: &Daemon, dir_a: &Path, dir_b: &Path, share_id: &str) {
    let t_tree = Instant::now();
    for i in 0..300usize {
        let d = dir_a.join(format!("tree/l{}/m{}/n{}", i % 5, i % 4, i % 3));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("f{i}.txt")), format!("file {i}\n").repeat(i % 40 + 1)).unwrap();
    }
    fs::create_dir_all(dir_a.join("empty/inner")).unwrap();
    let big = random_bytes(7, 5 << 20);
    fs::write(dir_a.join("big.bin"), &big).unwrap();
    let expected = tree(dir_a);
    assert!(expected.len() > 300);
    wait_for("the whole tree on b", || tree(dir_b) == expected);
    eprintln!("[cli test] tree of {} entries synced in {:?}", expected.len(), t_tree.elapsed());
    assert!(dir_b.join("empty/inner").is_dir());
    assert_eq!(fs::read(dir_b.join("big.bin")).unwrap(), big);
    let fetched = b.share_status(share_id).unwrap()["fetched_bytes"].as_u64().unwrap();
    assert!(fetched >= big.len() as u64, "b fetched the big file's content: {fetched}");
}

/// Modify on A, rename on B, delete on A: both trees converge, and B archived the deleted file
/// (and the replaced one) with their old content.
fn modify_rename_delete_and_versions(b: &Daemon, dir_a: &Path, dir_b: &Path) {
    let t_changes = Instant::now();
    let edited = dir_a.join("tree/l2/m3/n1/f7.txt");
    let old_edited = fs::read(&edited).unwrap();
    let renamed_from = dir_b.join("tree/l3/m0/n2/f8.txt");
    let renamed_to = dir_b.join("tree/l3/m0/n2/renamed.txt");
    let deleted = "tree/l4/m1/n0/f9.txt";
    let old_deleted = fs::read(dir_a.join(deleted)).unwrap();
    assert_eq!(fs::read(dir_b.join(deleted)).unwrap(), old_deleted);
    fs::write(&edited, b"changed on alpha").unwrap();
    fs::rename(&renamed_from, &renamed_to).unwrap();
    fs::remove_file(dir_a.join(deleted)).unwrap();
    wait_for("modify, rename and delete on both", || {
        let ta = tree(dir_a);
        ta == tree(dir_b)
            && ta.contains_key("tree/l3/m0/n2/renamed.txt")
            && !ta.contains_key("tree/l3/m0/n2/f8.txt")
            && !ta.contains_key(deleted)
            && fs::read(dir_b.join("tree/l2/m3/n1/f7.txt")).ok().as_deref() == Some(b"changed on alpha")
    });
    eprintln!("[cli test] modify/rename/delete converged in {:?}", t_changes.elapsed());

    // B archived the deleted file (and the replaced one) with their old content.
    let deleted_on_b = dir_b.join(deleted);
    let version = wait_some("a deleted version on b", || {
        b.json(&["versions", path_str(&deleted_on_b)]).as_array()?.iter().find(|v| v["reason"] == "deleted").cloned()
    });
    assert_eq!(version["path"], deleted);
    let archived = PathBuf::from(version["file"].as_str().unwrap());
    assert!(archived.is_absolute() && archived.starts_with(dir_b.canonicalize().unwrap()), "{version}");
    assert_eq!(fs::read(&archived).unwrap(), old_deleted, "archived copy keeps the old content");
    let replaced = b.json(&["versions", path_str(&dir_b.join("tree/l2/m3/n1/f7.txt"))]);
    let replaced = replaced.as_array().unwrap();
    assert!(
        replaced.iter().any(|v| v["reason"] == "replaced"
            && fs::read(v["file"].as_str().unwrap()).ok().as_deref() == Some(&old_edited[..])),
        "replaced version of f7.txt on b: {replaced:?}"
    );
}

/// Conflict: B is stopped, both edit notes.txt; B's edit is later, so it wins everywhere and
/// A's survives beside it as the one conflict copy.
fn conflict_across_a_restart(
    a: &Daemon,
    b: &mut Daemon,
    dir_a: &Path,
    dir_b: &Path,
    share_id: &str,
    a_id: &str,
    b_id: &str,
) {
    b.stop();
    let now = SystemTime::now();
    let (edit_a, edit_b): (&[u8], &[u8]) = (b"edited on alpha, while beta was away", b"edited on beta, offline");
    write_with_mtime(&dir_a.join("notes.txt"), edit_a, now);
    write_with_mtime(&dir_b.join("notes.txt"), edit_b, now + Duration::from_secs(10));
    // Wait until A has indexed its edit (its indexed byte count matches its disk), so the two
    // edits really are concurrent versions.
    let a_bytes = tree_bytes(&tree(dir_a));
    wait_for("a indexed its edit", || {
        a.share_status(share_id).is_some_and(|s| s["state"] == "idle" && s["bytes"].as_u64() == Some(a_bytes))
    });
    let t_conflict = Instant::now();
    b.restart();
    assert_eq!(b.id(), b_id, "same identity after restart");
    wait_for("b reconnected", || a.connected_to(b_id) && b.connected_to(a_id));
    wait_for("conflict settled identically on both", || {
        let ta = tree(dir_a);
        ta == tree(dir_b) && conflict_copies(&ta).len() == 1
    });
    eprintln!("[cli test] conflict settled {:?} after restart", t_conflict.elapsed());
    let copies = conflict_copies(&tree(dir_a));
    let copy = &copies[0];
    assert!(copy.starts_with("notes.sync-conflict-") && copy.ends_with(".txt"), "copy beside notes.txt: {copy}");
    let winner = fs::read(dir_a.join("notes.txt")).unwrap();
    let loser = fs::read(dir_a.join(copy)).unwrap();
    let mut got = [winner.clone(), loser.clone()];
    got.sort();
    let mut want = [edit_a.to_vec(), edit_b.to_vec()];
    want.sort();
    assert_eq!(got, want, "winner and copy are exactly the two edits");
    assert_eq!(winner, edit_b, "the later edit wins");
    assert!(copy.ends_with(&format!("-{}.txt", &a_id[..7])), "the copy is named after alpha: {copy}");
    assert_eq!(fs::read(dir_b.join(copy)).unwrap(), loser);
}
