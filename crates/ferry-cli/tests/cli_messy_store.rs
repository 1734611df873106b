//! What a user sees from the real `ferry daemon` on a messy home: a damaged database (garbage,
//! cut to half, garbage after its header) and a bad `ferry.toml` (syntax, unknown key, wrong
//! type, out of range) each stop the daemon at once with a non-zero exit and a message that
//! says where and what to do, touching nothing; a share whose folder vanished shows as
//! `folder-missing` in `ferry status` and `--json`.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Names in `home` with their contents' hashes: equal before and after means nothing touched.
fn snapshot(home: &Path) -> Vec<(String, String)> {
    let mut v: Vec<_> = fs::read_dir(home)
        .unwrap()
        .flatten()
        .map(|e| {
            let data = fs::read(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), blake3::hash(&data).to_hex().to_string())
        })
        .collect();
    v.sort();
    v
}

/// Runs `ferry daemon` on `home`; it must exit non-zero within seconds. Returns its stderr.
fn refused(home: &Path, what: &str) -> String {
    let mut cmd = ferry_cmd(home);
    cmd.args([
        "daemon",
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--name",
        "messy",
        "--no-mdns",
        "--no-kdeconnect",
        "--no-localsend",
    ]);
    let started = Instant::now();
    let o = run(cmd, what);
    assert!(!o.status.success(), "{what}: the daemon started");
    assert!(started.elapsed() < Duration::from_secs(20), "{what}: not at once ({:?})", started.elapsed());
    text(&o.stderr)
}

#[test]
fn a_damaged_database_stops_the_daemon_with_the_steps_and_touches_nothing() {
    let mut d = Daemon::start("alpha");
    let folder = tempfile::tempdir().unwrap();
    fs::write(folder.path().join("keep.txt"), b"mine").unwrap();
    d.cli(&["share", "add", path_str(folder.path())]);
    wait_for("the file indexed", || d.json(&["status"])["shares"][0]["files"] == 1);
    d.stop();
    let redb = d.home.join("ferry.redb");
    let good = fs::read(&redb).unwrap();
    let files = tree(folder.path());
    let mut after_header = good.clone();
    after_header[4096..].copy_from_slice(&random_bytes(5, good.len() - 4096));
    for (what, bytes) in [
        ("garbage", random_bytes(9, good.len())),
        ("cut to half", good[..good.len() / 2].to_vec()),
        ("garbage after the header", after_header),
    ] {
        fs::write(&redb, &bytes).unwrap();
        let before = snapshot(&d.home);
        let err = refused(&d.home, what);
        let last = err.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>();
        let whole = last.join("\n");
        assert!(whole.contains(&format!("the database {} is damaged", redb.display())), "{what}: {err}");
        assert!(whole.contains(&format!("mv {} {}.damaged", redb.display(), redb.display())), "{what}: {err}");
        // Said plainly, not as a crash of one of the daemon's tasks.
        assert!(!last.last().is_some_and(|l| l.contains("panicked")), "{what}: {err}");
        assert_eq!(snapshot(&d.home), before, "{what}: the home was touched");
        assert_eq!(tree(folder.path()), files, "{what}: the shared folder was touched");
    }
    // The steps work: moved aside, the daemon starts (a new database), the folder as it was.
    fs::rename(&redb, d.home.join("ferry.redb.damaged")).unwrap();
    d.restart();
    assert_eq!(tree(folder.path()), files);
    d.stop();
}

#[test]
fn a_bad_ferry_toml_names_the_file_the_line_and_the_key() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("ferry.toml");
    for (text_, line, key) in [
        ("owner = \"me\"\nname = \"unfinished\n", 2, "string"),
        ("owner = \"me\"\n\nnmae = \"typo\"\n", 3, "nmae"),
        ("rescan_secs = \"ten\"\n", 1, "rescan_secs"),
        ("owner = \"me\"\nmass_delete_percent = 300\n", 2, "mass_delete_percent"),
        ("owner = \"me\"\nmass_delete_percent = 0\n", 2, "mass_delete_percent"),
        ("# prune hourly\nprune_secs = 0\n", 2, "prune_secs"),
    ] {
        fs::write(&file, text_).unwrap();
        let before = snapshot(home.path());
        let err = refused(home.path(), text_);
        assert!(err.contains(&file.display().to_string()), "{text_:?}: {err}");
        assert!(err.contains(&format!("line {line}")), "{text_:?}: {err}");
        assert!(err.contains(key), "{text_:?}: {err}");
        assert_eq!(snapshot(home.path()), before, "{text_:?}: the home was touched");
    }
}

#[test]
fn a_vanished_share_folder_shows_as_folder_missing() {
    let d = Daemon::start("alpha");
    let parent = tempfile::tempdir().unwrap();
    let folder = parent.path().join("Music");
    fs::create_dir(&folder).unwrap();
    fs::write(folder.join("song.ogg"), b"la la").unwrap();
    d.cli(&["share", "add", path_str(&folder)]);
    wait_for("indexed", || d.json(&["status"])["shares"][0]["files"] == 1);
    fs::rename(&folder, parent.path().join("Music-moved")).unwrap();
    d.cli(&["rescan"]);
    wait_for("folder-missing in --json", || d.json(&["status"])["shares"][0]["state"] == "folder-missing");
    let st = d.json(&["status"]);
    assert_eq!(st["shares"][0]["in_sync"], false);
    assert!(st["shares"][0]["last_error"].as_str().is_some_and(|e| e.contains("folder missing")), "{st}");
    assert_eq!(st["shares"][0]["files"], 1, "the index keeps the file (no delete)");
    let out = d.cli(&["status"]);
    assert!(out.contains("folder-missing") && out.contains("last error: folder missing"), "{out}");
    fs::rename(parent.path().join("Music-moved"), &folder).unwrap();
    wait_for("back to idle", || d.json(&["status"])["shares"][0]["state"] == "idle");
}
