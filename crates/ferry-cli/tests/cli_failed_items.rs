//! `ferry status` lists what cannot be synced in a share (text and `--json` `failed_items`),
//! and such a share is "not in sync" until the cause is fixed.

mod common;

use std::fs;

use common::{Daemon, path_str, wait_for, wait_some};
use ferry_e2e::unsyncable::{mkfifo, raw_name};

#[test]
fn status_lists_items_that_cannot_be_synced() {
    let d = Daemon::start("alpha");
    let dirs = tempfile::tempdir().unwrap();
    let dir = dirs.path().join("docs");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("plan.txt"), b"synced").unwrap();
    mkfifo(&dir.join("pipe"));
    fs::write(raw_name(&dir, b"caf\xe9.txt"), b"latin-1").unwrap();
    let added = d.json(&["share", "add", path_str(&dir), "--label", "docs"]);
    let share = added["id"].as_str().expect("the share's id").to_string();

    let st = wait_some("both items in status --json", || {
        d.share_status(&share).filter(|s| s["failed_items"].as_array().is_some_and(|a| a.len() == 2))
    });
    let items = st["failed_items"].as_array().unwrap();
    assert_eq!(items[0]["path"], "caf\u{fffd}.txt", "{items:?}");
    assert!(items[0]["reason"].as_str().unwrap().contains("not valid UTF-8"), "{items:?}");
    assert_eq!(items[1]["path"], "pipe");
    assert!(items[1]["reason"].as_str().unwrap().contains("a FIFO (named pipe)"), "{items:?}");
    assert_eq!(st["failed_more"], 0);
    assert_eq!(st["in_sync"], false, "a share with failed items is not in sync");
    assert_eq!(st["files"], 1, "the rest is indexed");

    let text = d.cli(&["status"]);
    assert!(text.contains("not in sync"), "{text}");
    assert!(text.contains("2 item(s) cannot be synced:"), "{text}");
    assert!(text.contains("      pipe: a FIFO (named pipe): Ferry does not sync special files"), "{text}");
    assert!(text.contains("      caf\u{fffd}.txt: the name is not valid UTF-8"), "{text}");

    // Fixed: the items go and the share is in sync again.
    fs::remove_file(dir.join("pipe")).unwrap();
    fs::rename(raw_name(&dir, b"caf\xe9.txt"), dir.join("cafe.txt")).unwrap();
    wait_for("no failed items, in sync", || {
        d.share_status(&share)
            .is_some_and(|s| s["failed_items"].as_array().is_some_and(|a| a.is_empty()) && s["in_sync"] == true)
    });
    let text = d.cli(&["status"]);
    assert!(!text.contains("cannot be synced"), "{text}");
}
