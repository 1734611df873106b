//! The power-cut campaign: two real `ferry daemon` processes on 127.0.0.1 (mDNS off), B's home
//! (redb, control socket, inbox) and B's share on [`PowerFs`] (`ferry_e2e::powercut`: a FUSE
//! file system that keeps only what was made durable, by its module doc's rules), A on a normal
//! folder. Each round: wait until A and B agree and record what B reports (its tree while in
//! sync, the notes it lists, the sends it lists as done); a seeded random burst (new small
//! files, big files of a few MiB, edits, renames, deletes, a restore on B, a conflict, a
//! one-shot send and a note from A to B); a cut at a random moment (freeze, SIGKILL B, the file
//! system put back to its durable state); then the checks:
//!
//! 1. right after the cut, every file at a user-visible path of B's share holds content the
//!    workload wrote (no empty, partial, zero-filled or mixed file);
//! 2. B restarts on what survived; A and B converge (same trees, both in sync);
//! 3. B's index agrees with its disk (status counts = the files on disk);
//! 4. nothing B reported before the cut is gone (files the burst did not touch still hold the
//!    content B had in sync; notes still listed; sends done still done, their files in the
//!    inbox with the content sent);
//! 5. no conflict copy beyond those the burst's deliberate conflicts can make, all with
//!    content the workload wrote.
//!
//! Its own test binary: it mounts a file system and kills processes. Knobs:
//! `FERRY_POWERCUT_CUTS` (default [`DEFAULT_CUTS`]) and `FERRY_POWERCUT_SEED` (printed). Needs
//! root and /dev/fuse (CI has both); elsewhere it says so and passes.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Daemon, conflict_copies, pair_through_cli, path_str, tree};
use ferry_e2e::powercut::{self, PowerFs};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// Cuts in a CI run: enough to land in scans, pulls, big files, sends and commits (about
/// 5 s each on the shared 2-core machine).
const DEFAULT_CUTS: usize = 20;
/// A fixed default so that CI runs the same workload each time (the timing still varies).
const DEFAULT_SEED: u64 = 1;
/// The cut falls at a random moment up to this long after a burst's last operation: long
/// enough to reach the middle of a big file's pull, short enough that most cuts find work.
const CUT_WINDOW_MS: u64 = 1500;
/// Bound for A and B to agree again after a restart (big files go through FUSE on B).
const CONVERGE: Duration = Duration::from_secs(120);
/// Files in the share above which the burst stops adding (keeps each round's scans short).
const MAX_FILES: usize = 400;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn hash_of(entry: &str) -> Option<&str> {
    entry.strip_prefix("file:")?.split(':').nth(1)
}

/// What B reported before a cut: what must survive it.
struct Reported {
    tree: BTreeMap<String, String>,
    notes: Vec<String>,
    /// Received sends B listed as done: (id, placed paths).
    sends: Vec<(String, Vec<String>)>,
}

struct Campaign {
    a: Daemon,
    b: Daemon,
    fs: PowerFs,
    dir_a: PathBuf,
    dir_b: PathBuf,
    /// Beside `dir_a` (same file system): where A's new contents are written before their rename.
    stage_a: PathBuf,
    /// On the mount, outside the share: the same for B.
    stage_b: PathBuf,
    inbox_b: PathBuf,
    share: String,
    rng: StdRng,
    /// BLAKE3 of every content the workload ever wrote (never empty).
    written: HashSet<String>,
    sent: HashSet<String>,
    conflicts_made: usize,
    counter: u64,
    seed: u64,
}

#[test]
fn power_cuts_lose_nothing() {
    if !powercut::available() {
        eprintln!("powercut: skipped (needs root and /dev/fuse)");
        return;
    }
    let cuts = knob("FERRY_POWERCUT_CUTS", DEFAULT_CUTS as u64) as usize;
    let seed = knob("FERRY_POWERCUT_SEED", DEFAULT_SEED);
    eprintln!("powercut: seed {seed}, {cuts} cuts (FERRY_POWERCUT_SEED={seed} FERRY_POWERCUT_CUTS={cuts} to rerun)");
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut c = Campaign::start(dir.path(), seed);
    for cut in 1..=cuts {
        c.round(cut);
    }
    let s = c.fs.stats();
    eprintln!(
        "powercut: {} cuts survived in {:?}; B made {} file and {} directory fsyncs; {} inodes rolled back by the cuts",
        s.cuts,
        t0.elapsed(),
        s.file_syncs,
        s.dir_syncs,
        s.inodes_rolled_back
    );
    c.a.stop();
    c.b.stop();
}

impl Campaign {
    fn start(root: &Path, seed: u64) -> Campaign {
        let mnt = root.join("mnt");
        fs::create_dir(&mnt).unwrap();
        let power = PowerFs::mount(&root.join("backing"), &mnt).expect("mount the power-cut file system");
        let (dir_a, stage_a, stage_b) = (root.join("share-a"), root.join("stage-a"), mnt.join("stage"));
        for d in [&dir_a, &stage_a, &stage_b] {
            fs::create_dir_all(d).unwrap();
        }
        // The test's own folder on the mount is durable before anything is put in it.
        fs::File::open(&mnt).and_then(|d| d.sync_all()).unwrap();
        let a = Daemon::start("alpha");
        let b = Daemon::start_at("beta", &mnt.join("home"), &root.join("beta.log"));
        pair_through_cli(&a, &b);
        b.cli(&["devices", "auto-accept", "alpha", "on"]);
        let mut c = Campaign {
            inbox_b: b.home.join("Inbox"),
            a,
            b,
            fs: power,
            dir_a,
            dir_b: mnt.join("share"),
            stage_a,
            stage_b,
            share: String::new(),
            rng: StdRng::seed_from_u64(seed),
            written: HashSet::new(),
            sent: HashSet::new(),
            conflicts_made: 0,
            counter: 0,
            seed,
        };
        for _ in 0..20 {
            c.new_file(false);
        }
        let share = c.a.json(&["share", "add", path_str(&c.dir_a), "--label", "docs"]);
        c.share = share["id"].as_str().unwrap().to_string();
        c.a.cli(&["share", "invite", "docs", "beta"]);
        let offer =
            common::wait_some("share offer on beta", || c.b.pending().into_iter().find(|p| p["kind"] == "share"));
        c.b.cli(&["accept", &offer["id"].to_string(), "--path", path_str(&c.dir_b)]);
        c
    }

    fn fail(&self, cut: usize, what: String) -> ! {
        panic!("powercut (seed {}, cut {cut}): {what}", self.seed)
    }

    /// One burst, one cut, one restart, every check.
    fn round(&mut self, cut: usize) {
        let started = Instant::now();
        let mut reported = self.converge(cut);
        let copies_before = conflict_copies(&reported.tree).len();
        let (touched, conflicts) = self.burst();
        // The random moment of the cut (not a synchronisation): squared, so that most cuts
        // fall early, while B is still scanning, fetching and committing the burst.
        let x: f64 = self.rng.r#gen();
        std::thread::sleep(Duration::from_millis((x * x * CUT_WINDOW_MS as f64) as u64));
        // What B says just before the power goes counts too.
        reported.notes = self.notes_b();
        reported.sends = self.sends_done_b();
        self.fs.freeze();
        self.b.kill();
        self.fs.cut().expect("cut and remount");
        self.check_contents(cut, "right after the cut");
        self.b.restart();
        let after = self.converge(cut);
        self.check_contents(cut, "after the restart");
        self.check_reported(cut, &reported, &after, &touched);
        let copies = conflict_copies(&after.tree);
        if copies.len() > copies_before + conflicts {
            self.fail(
                cut,
                format!("{copies_before} conflict copies before, {conflicts} conflicts made, now {copies:?}"),
            );
        }
        eprintln!(
            "powercut: cut {cut} survived ({} files on B, {} notes, {} sends; round {:?})",
            after.tree.values().filter(|v| v.starts_with("file:")).count(),
            after.notes.len(),
            after.sends.len(),
            started.elapsed()
        );
    }

    /// Waits (bounded) until A and B hold the same tree and both report the share in sync;
    /// checks B's index counts against its disk; returns what B reports then.
    fn converge(&mut self, cut: usize) -> Reported {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let (ta, tb) = (tree(&self.dir_a), tree(&self.dir_b));
            let sa = self.a.share_status(&self.share);
            let sb = self.b.share_status(&self.share);
            let synced = |s: &Option<Value>| s.as_ref().is_some_and(|s| s["in_sync"] == true && s["need"] == 0);
            if ta == tb && synced(&sa) && synced(&sb) {
                let sb = sb.clone().unwrap();
                let files: Vec<&String> = tb.values().filter(|v| v.starts_with("file:")).collect();
                let bytes: u64 = files.iter().filter_map(|v| v.split(':').nth(1)?.parse::<u64>().ok()).sum();
                if sb["files"] != files.len() as u64 || sb["bytes"] != bytes {
                    // The index may still be catching up with a scan; it must within the bound.
                    if Instant::now() > deadline {
                        self.fail(
                            cut,
                            format!(
                                "B's index counts {} files, {} bytes; its disk {} files, {bytes} bytes",
                                sb["files"],
                                sb["bytes"],
                                files.len()
                            ),
                        );
                    }
                } else {
                    return Reported { tree: tb, notes: self.notes_b(), sends: self.sends_done_b() };
                }
            }
            if Instant::now() > deadline {
                let diff: Vec<_> = ta.keys().chain(tb.keys()).filter(|k| ta.get(*k) != tb.get(*k)).collect();
                self.fail(
                    cut,
                    format!("A and B did not converge within {CONVERGE:?}: differ at {diff:?}; A {sa:?}; B {sb:?}"),
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every file at a user-visible path of B's share holds a content the workload wrote.
    fn check_contents(&self, cut: usize, when: &str) {
        for (path, entry) in tree(&self.dir_b) {
            let Some(h) = hash_of(&entry) else { continue };
            if !self.written.contains(h) {
                let len = fs::metadata(self.dir_b.join(&path)).map(|m| m.len()).unwrap_or(0);
                self.fail(cut, format!("{when}: B's {path} ({len} bytes) holds content the workload never wrote"));
            }
        }
    }

    fn check_reported(&self, cut: usize, before: &Reported, after: &Reported, touched: &HashSet<String>) {
        for (path, entry) in &before.tree {
            if entry.starts_with("file:") && !touched.contains(path) && after.tree.get(path) != Some(entry) {
                self.fail(
                    cut,
                    format!("{path} was in sync on B before the cut ({entry}), now {:?}", after.tree.get(path)),
                );
            }
        }
        for n in &before.notes {
            if !after.notes.contains(n) {
                self.fail(cut, format!("note {n} was listed on B before the cut, not after"));
            }
        }
        for (id, placed) in &before.sends {
            if !after.sends.iter().any(|(i, _)| i == id) {
                self.fail(cut, format!("send {id} was done on B before the cut, not after"));
            }
            for p in placed {
                let path = if Path::new(p).is_absolute() { PathBuf::from(p) } else { self.inbox_b.join(p) };
                let h = fs::read(&path).map(|d| blake3::hash(&d).to_hex().to_string());
                if !h.as_ref().is_ok_and(|h| self.sent.contains(h)) {
                    self.fail(cut, format!("send {id}: {} is not what was sent ({h:?})", path.display()));
                }
            }
        }
    }

    fn notes_b(&self) -> Vec<String> {
        let notes = self.b.json(&["notes"]);
        notes.as_array().unwrap().iter().filter(|n| n["outgoing"] == false).map(|n| n["id"].to_string()).collect()
    }

    fn sends_done_b(&self) -> Vec<(String, Vec<String>)> {
        let t = self.b.json(&["transfers"]);
        t.as_array()
            .unwrap()
            .iter()
            .filter(|t| t["direction"] == "in" && t["state"] == "done")
            .map(|t| {
                let placed =
                    t["placed"].as_array().map(|v| v.iter().filter_map(|p| p.as_str().map(String::from)).collect());
                (t["id"].to_string(), placed.unwrap_or_default())
            })
            .collect()
    }
}

// Beside this file, not in tests/ itself (where cargo would build it as a test binary).
#[path = "powercut/workload.rs"]
mod workload;
