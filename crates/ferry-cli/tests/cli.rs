//! End-to-end tests of the `ferry` binary: two real `ferry daemon` processes on 127.0.0.1,
//! driven only through the CLI (pair, accept, share, invite, versions, status), plus the
//! errors the CLI gives for bad input.
//!
//! Rules these tests keep: daemons listen on 127.0.0.1 only; every wait is bounded and polls
//! its condition (at most every 200 ms) instead of sleeping; every child process is killed when
//! its guard drops, so a failing assertion never leaves a daemon behind.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tempfile::TempDir;

/// Bound for every wait on the daemons: long enough for a slow CI machine, short enough that
/// a hang fails fast.
const WAIT: Duration = Duration::from_secs(60);
/// How often a polled condition is re-checked.
const POLL: Duration = Duration::from_millis(200);
/// Bound for one client command (they answer at once, except `pair`).
const CMD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a daemon gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// A `ferry` command with a clean environment (no FERRY_* from the caller leaks in).
fn ferry_cmd(home: &Path) -> Command {
    let mut c = Command::new(FERRY);
    for var in ["FERRY_HOME", "FERRY_LISTEN", "FERRY_NAME", "FERRY_OWNER", "FERRY_LOG", "FERRY_LOG_FILE"] {
        c.env_remove(var);
    }
    c.env_remove("FERRY_RESCAN_SECS");
    c.env_remove("FERRY_MDNS_INTERFACE");
    // These daemons run in the root namespace: mDNS stays off (network safety rule); the
    // namespaced tests in netns.rs are where it runs.
    c.env("FERRY_MDNS", "0");
    c.env_remove("FERRY_INBOX");
    c.arg("--home").arg(home).stdin(Stdio::null());
    c
}

/// A child process that is always reaped: a thread waits for it (so no polling is needed to
/// notice its exit), and dropping the guard before it exited sends SIGTERM, then SIGKILL.
struct Proc {
    pid: u32,
    what: String,
    exited: Receiver<std::io::Result<Output>>,
    output: Option<Output>,
}

impl Proc {
    fn spawn(cmd: &mut Command, what: &str) -> Proc {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Self::from_child(child, what)
    }

    fn from_child(child: std::process::Child, what: &str) -> Proc {
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        Proc { pid, what: what.to_string(), exited: rx, output: None }
    }

    /// The process's output once it has exited, waiting at most `timeout`.
    fn wait(&mut self, timeout: Duration) -> Option<&Output> {
        if self.output.is_none() {
            match self.exited.recv_timeout(timeout) {
                Ok(r) => self.output = Some(r.unwrap_or_else(|e| panic!("waiting for {}: {e}", self.what))),
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => panic!("lost the waiter of {}", self.what),
            }
        }
        self.output.as_ref()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.wait(Duration::ZERO).map(|o| o.status)
    }

    /// Sends a signal by pid, unless the process has already been reaped.
    fn signal(&mut self, sig: &str) {
        if self.exited().is_none() {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(self.pid.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// SIGTERM, a bounded wait, then SIGKILL. Returns the exit status and whether the process
    /// stopped within the grace period on its own.
    fn terminate(&mut self, grace: Duration) -> (ExitStatus, bool) {
        self.signal("TERM");
        if let Some(o) = self.wait(grace) {
            return (o.status, true);
        }
        self.signal("KILL");
        let what = self.what.clone();
        let status = self.wait(STOP_GRACE).unwrap_or_else(|| panic!("{what} survives SIGKILL")).status;
        (status, false)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.output.is_none() {
            self.terminate(Duration::from_secs(10));
        }
    }
}

/// Runs a command to completion (bounded) and returns its output.
fn run(mut cmd: Command, what: &str) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut p = Proc::spawn(&mut cmd, what);
    match p.wait(CMD_TIMEOUT) {
        Some(o) => o.clone(),
        None => panic!("`{what}` did not finish within {CMD_TIMEOUT:?}"),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    s.local_addr().unwrap().port()
}

/// Polls `probe` (at most every [`POLL`]) until it yields `Some`; panics after [`WAIT`].
fn wait_some<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {WAIT:?} waiting for: {what}");
        }
        std::thread::sleep(POLL);
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    wait_some(what, || cond().then_some(()))
}

// ---------------------------------------------------------------------------------------------
// Daemon
// ---------------------------------------------------------------------------------------------

/// One `ferry daemon` process with its own home, on 127.0.0.1:`port`.
struct Daemon {
    name: String,
    home: PathBuf,
    port: u16,
    proc: Option<Proc>,
    _home_dir: TempDir,
}

impl Daemon {
    fn start(name: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let mut d =
            Daemon { name: name.into(), home: dir.path().to_path_buf(), port: free_port(), proc: None, _home_dir: dir };
        d.launch();
        d
    }

    fn log_path(&self) -> PathBuf {
        self.home.join("daemon.log")
    }

    /// Starts the daemon process on this home and port, and waits until it answers.
    fn launch(&mut self) {
        assert!(self.proc.is_none(), "{} is already running", self.name);
        let log = fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let mut cmd = ferry_cmd(&self.home);
        let inbox = self.home.join("Inbox");
        cmd.args(["daemon", "--listen", &format!("127.0.0.1:{}", self.port), "--name", &self.name])
            .args(["--owner", "tester", "--log", "info", "--no-mdns"])
            .arg("--inbox")
            .arg(&inbox)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        let started = Instant::now();
        self.proc = Some(Proc::spawn(&mut cmd, &format!("ferry daemon {}", self.name)));
        wait_for(&format!("{} to answer `ferry id`", self.name), || {
            if let Some(status) = self.proc.as_mut().unwrap().exited() {
                panic!("daemon {} exited early ({status}):\n{}", self.name, self.log_tail(40));
            }
            self.try_cli(&["id", "--json"]).status.success()
        });
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        assert!(
            log.contains(&format!("listening on 127.0.0.1:{} (udp)", self.port)),
            "daemon {} does not announce its address:\n{log}",
            self.name
        );
        eprintln!("[cli test] {} ready on 127.0.0.1:{} in {:?}", self.name, self.port, started.elapsed());
    }

    /// SIGTERM and wait for an orderly exit (status 0), killing it if it does not come.
    fn stop(&mut self) {
        let mut p = self.proc.take().expect("daemon running");
        let started = Instant::now();
        let (status, in_time) = p.terminate(STOP_GRACE);
        assert!(in_time, "{} did not stop within {STOP_GRACE:?} of SIGTERM:\n{}", self.name, self.log_tail(40));
        assert!(status.success(), "{} exited with {status} after SIGTERM:\n{}", self.name, self.log_tail(40));
        assert!(!self.home.join("ferry.sock").exists(), "control socket removed on shutdown");
        eprintln!("[cli test] {} stopped in {:?}", self.name, started.elapsed());
    }

    fn restart(&mut self) {
        self.launch();
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A `ferry --home <this home> ARGS...` command, not yet run.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = ferry_cmd(&self.home);
        c.args(args);
        c
    }

    fn try_cli(&self, args: &[&str]) -> Output {
        run(self.cmd(args), &format!("ferry {} ({})", args.join(" "), self.name))
    }

    /// Runs a command that must succeed; returns its stdout.
    fn cli(&self, args: &[&str]) -> String {
        let o = self.try_cli(args);
        assert!(
            o.status.success(),
            "`ferry {}` on {} failed ({}):\nstdout: {}\nstderr: {}",
            args.join(" "),
            self.name,
            o.status,
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stdout)
    }

    /// Runs a command with `--json` that must succeed; returns the parsed answer.
    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.cli(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("`ferry {}` printed no JSON ({e}): {out}", a.join(" ")))
    }

    /// Runs a command that must fail; returns its stderr.
    fn cli_fails(&self, args: &[&str]) -> String {
        let o = self.try_cli(args);
        assert!(
            !o.status.success(),
            "`ferry {}` on {} should fail but succeeded:\nstdout: {}",
            args.join(" "),
            self.name,
            text(&o.stdout)
        );
        text(&o.stderr)
    }

    fn id(&self) -> String {
        self.json(&["id"])["device_id"].as_str().unwrap().to_string()
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn pending(&self) -> Vec<Value> {
        self.json(&["pending"]).as_array().cloned().unwrap_or_default()
    }

    fn device(&self, id: &str) -> Option<Value> {
        self.json(&["devices"]).as_array()?.iter().find(|d| d["id"] == id).cloned()
    }

    fn connected_to(&self, id: &str) -> bool {
        self.device(id).is_some_and(|d| d["paired"] == true && d["connected"] == true)
    }

    fn share_status(&self, share: &str) -> Option<Value> {
        self.json(&["status"])["shares"].as_array()?.iter().find(|s| s["id"] == share).cloned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            if std::thread::panicking() {
                eprintln!("---- last log lines of {} ----\n{}\n----", self.name, self.log_tail(60));
            }
            p.terminate(Duration::from_secs(10));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Trees
// ---------------------------------------------------------------------------------------------

/// Kind and BLAKE3 of every entry under `root`, except Ferry's `.ferry` folder and temp files:
/// equal maps mean byte-identical trees. Entries vanishing during the walk are skipped.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if rel == ".ferry" || e.file_name().to_string_lossy().starts_with(".ferry-tmp-") {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(&p) else { continue };
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&p).map(|t| t.display().to_string()).unwrap_or_default();
            out.insert(rel, format!("link:{target}"));
        } else if meta.is_dir() {
            out.insert(rel, "dir".into());
            walk(root, &p, out);
        } else {
            let Ok(data) = fs::read(&p) else { continue };
            out.insert(rel, format!("file:{}:{}", data.len(), blake3::hash(&data).to_hex()));
        }
    }
}

/// Total size of the regular files in a tree map.
fn tree_bytes(t: &BTreeMap<String, String>) -> u64 {
    t.values().filter_map(|v| v.strip_prefix("file:")?.split(':').next()?.parse::<u64>().ok()).sum()
}

fn conflict_copies(t: &BTreeMap<String, String>) -> Vec<String> {
    t.keys().filter(|k| k.contains(".sync-conflict-")).cloned().collect()
}

/// Seeded random bytes (reproducible runs).
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

fn write_with_mtime(p: &Path, data: &[u8], mtime: SystemTime) {
    fs::write(p, data).unwrap();
    fs::File::options().write(true).open(p).unwrap().set_modified(mtime).unwrap();
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Pairs `a` with `b` through `ferry pair` / `ferry pending` / `ferry accept`, checking both
/// sides show the same code, and waits until each lists the other as paired and connected.
fn pair_through_cli(a: &Daemon, b: &Daemon) {
    let (a_id, b_id) = (a.id(), b.id());
    let mut cmd = a.cmd(&["pair", &b.addr()]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn ferry pair");
    let stdout = child.stdout.take().unwrap();
    let mut pair = Proc::from_child(child, "ferry pair");
    let (tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let code = loop {
        match lines.recv_timeout(WAIT) {
            Ok(l) => {
                if let Some(c) = l.strip_prefix("Code: ") {
                    break c.trim().to_string();
                }
                seen.push(l);
            }
            Err(e) => panic!("`ferry pair` printed no code ({e}); output so far: {seen:?}; {:?}", pair.exited()),
        }
    };
    assert!(code.len() == 6 && code.bytes().all(|c| c.is_ascii_digit()), "code {code:?}");
    assert!(seen.iter().any(|l| l.contains(&b.name) && l.contains(&b_id)), "pair names the other side: {seen:?}");

    let prompt = wait_some("pairing prompt on b", || b.pending().into_iter().find(|p| p["kind"] == "pair"));
    assert_eq!(prompt["code"], code.as_str(), "both screens show the same code");
    assert_eq!(prompt["device"], a_id.as_str());
    assert_eq!(prompt["device_name"], a.name.as_str());
    b.cli(&["accept", &prompt["id"].to_string()]);

    let out = pair.wait(WAIT).expect("`ferry pair` returns once accepted").clone();
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(out.status.success(), "`ferry pair` failed ({}): {rest:?} {}", out.status, text(&out.stderr));
    assert!(rest.iter().any(|l| l.starts_with("accepted")), "pair reports the outcome: {rest:?}");
    assert!(b.pending().is_empty(), "the prompt is answered");

    wait_for("both paired and connected", || a.connected_to(&b_id) && b.connected_to(&a_id));
    let (da, db) = (a.device(&b_id).unwrap(), b.device(&a_id).unwrap());
    assert_eq!(da["name"], b.name.as_str());
    assert_eq!(db["name"], a.name.as_str());
    assert_eq!(db["owner"], "tester");
    for d in [&da, &db] {
        for addr in d["addresses"].as_array().unwrap() {
            assert!(addr.as_str().unwrap().starts_with("127.0.0.1:"), "loopback only: {d}");
        }
    }
}

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

    // Quick notes both ways, one of them read from stdin, and the read receipt.
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
        a.json(&["notes"]).as_array().unwrap().iter().any(|n| {
            n["from"] == b_id.as_str() && n["text"].as_str().is_some_and(|t| t.trim_end() == "from beta's stdin")
        })
    });
    let err = a.cli_fails(&["note", "send", "nosuchdevice", "hi"]);
    assert!(err.contains("no known device"), "{err}");

    // Share a folder from A; B accepts the offer into a folder that does not exist yet.
    let dirs = tempfile::tempdir().unwrap();
    let dir_a = dirs.path().join("docs-a");
    let dir_b = dirs.path().join("docs-b");
    fs::create_dir(&dir_a).unwrap();
    fs::write(dir_a.join("notes.txt"), b"base").unwrap();
    let share = a.json(&["share", "add", path_str(&dir_a), "--label", "docs"]);
    let share_id = share["id"].as_str().unwrap().to_string();
    assert_eq!(share["label"], "docs");
    assert_eq!(share["mode"], "send-receive");
    assert_eq!(share["path"], path_str(&dir_a.canonicalize().unwrap()));
    let invited = a.json(&["share", "invite", "docs", "beta"]);
    assert_eq!(invited["id"], share_id.as_str());
    assert!(invited["devices"].as_array().unwrap().iter().any(|d| d == b_id.as_str()), "{invited}");

    let offer = wait_some("share offer on b", || b.pending().into_iter().find(|p| p["kind"] == "share"));
    assert_eq!(offer["share_id"], share_id.as_str());
    assert_eq!(offer["share_label"], "docs");
    assert_eq!(offer["device"], a_id.as_str());
    b.cli(&["accept", &offer["id"].to_string(), "--path", path_str(&dir_b)]);
    let listed = b.json(&["share", "list"]);
    assert!(
        listed.as_array().unwrap().iter().any(|s| s["id"] == share_id.as_str() && s["label"] == "docs"),
        "{listed}"
    );
    wait_for("notes.txt on b", || fs::read(dir_b.join("notes.txt")).ok().as_deref() == Some(b"base"));

    // A nested tree: 300 small files in three levels, an empty dir and a 5 MiB random file.
    let t_tree = Instant::now();
    for i in 0..300usize {
        let d = dir_a.join(format!("tree/l{}/m{}/n{}", i % 5, i % 4, i % 3));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("f{i}.txt")), format!("file {i}\n").repeat(i % 40 + 1)).unwrap();
    }
    fs::create_dir_all(dir_a.join("empty/inner")).unwrap();
    let big = random_bytes(7, 5 << 20);
    fs::write(dir_a.join("big.bin"), &big).unwrap();
    let expected = tree(&dir_a);
    assert!(expected.len() > 300);
    wait_for("the whole tree on b", || tree(&dir_b) == expected);
    eprintln!("[cli test] tree of {} entries synced in {:?}", expected.len(), t_tree.elapsed());
    assert!(dir_b.join("empty/inner").is_dir());
    assert_eq!(fs::read(dir_b.join("big.bin")).unwrap(), big);
    let fetched = b.share_status(&share_id).unwrap()["fetched_bytes"].as_u64().unwrap();
    assert!(fetched >= big.len() as u64, "b fetched the big file's content: {fetched}");

    // Modify on A, rename on B, delete on A: both trees converge.
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
        let ta = tree(&dir_a);
        ta == tree(&dir_b)
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

    // Conflict: B is stopped, both edit notes.txt; B's edit is later, so it wins everywhere and
    // A's survives beside it as the one conflict copy.
    b.stop();
    let now = SystemTime::now();
    let (edit_a, edit_b): (&[u8], &[u8]) = (b"edited on alpha, while beta was away", b"edited on beta, offline");
    write_with_mtime(&dir_a.join("notes.txt"), edit_a, now);
    write_with_mtime(&dir_b.join("notes.txt"), edit_b, now + Duration::from_secs(10));
    // Wait until A has indexed its edit (its indexed byte count matches its disk), so the two
    // edits really are concurrent versions.
    let a_bytes = tree_bytes(&tree(&dir_a));
    wait_for("a indexed its edit", || {
        a.share_status(&share_id).is_some_and(|s| s["state"] == "idle" && s["bytes"].as_u64() == Some(a_bytes))
    });
    let t_conflict = Instant::now();
    b.restart();
    assert_eq!(b.id(), b_id, "same identity after restart");
    wait_for("b reconnected", || a.connected_to(&b_id) && b.connected_to(&a_id));
    wait_for("conflict settled identically on both", || {
        let ta = tree(&dir_a);
        ta == tree(&dir_b) && conflict_copies(&ta).len() == 1
    });
    eprintln!("[cli test] conflict settled {:?} after restart", t_conflict.elapsed());
    let copies = conflict_copies(&tree(&dir_a));
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

#[test]
fn bad_input_is_refused_clearly() {
    let d = Daemon::start("beta");
    let dirs = tempfile::tempdir().unwrap();
    let root = dirs.path().canonicalize().unwrap();

    let missing = root.join("does-not-exist");
    let err = d.cli_fails(&["share", "add", path_str(&missing)]);
    assert!(err.contains(path_str(&missing)), "names the missing path: {err}");

    let file = root.join("plain.txt");
    fs::write(&file, b"not a folder").unwrap();
    let err = d.cli_fails(&["share", "add", path_str(&file)]);
    assert!(err.contains("not a directory"), "{err}");

    let dir = root.join("shared");
    fs::create_dir_all(dir.join("sub")).unwrap();
    d.json(&["share", "add", path_str(&dir), "--label", "shared"]);
    let err = d.cli_fails(&["share", "add", path_str(&dir.join("sub"))]);
    assert!(err.contains("overlap") || err.contains("nest"), "nested share refused: {err}");
    let err = d.cli_fails(&["share", "add", path_str(&root)]);
    assert!(err.contains("overlap") || err.contains("nest"), "enclosing share refused: {err}");
    let err = d.cli_fails(&["share", "add", path_str(&d.home)]);
    assert!(err.contains("home"), "Ferry's home refused: {err}");
    let other = root.join("other");
    fs::create_dir(&other).unwrap();
    let err = d.cli_fails(&["share", "add", path_str(&other), "--mode", "sideways"]);
    assert!(err.contains("sideways"), "bad mode named: {err}");
    assert_eq!(d.json(&["share", "list"]).as_array().unwrap().len(), 1, "nothing added by failed commands");

    let err = d.cli_fails(&["share", "invite", "nosuch", "beta"]);
    assert!(err.contains("nosuch"), "{err}");
    let err = d.cli_fails(&["share", "invite", "shared", "nosuchdevice"]);
    assert!(err.contains("no known device"), "{err}");
    let err = d.cli_fails(&["share", "remove", "nosuch"]);
    assert!(err.contains("nosuch"), "{err}");
    let err = d.cli_fails(&["ping", "nosuchdevice"]);
    assert!(err.contains("no known device"), "{err}");
    let err = d.cli_fails(&["accept", "999"]);
    assert!(err.contains("999"), "{err}");
    let err = d.cli_fails(&["reject", "999"]);
    assert!(err.contains("999"), "{err}");
    let err = d.cli_fails(&["accept", "notanumber"]);
    assert!(err.contains("notanumber"), "clap names the bad value: {err}");
    let err = d.cli_fails(&["versions", path_str(&other)]);
    assert!(err.contains("not inside any share"), "{err}");
    let err = d.cli_fails(&["frobnicate"]);
    assert!(err.contains("frobnicate"), "{err}");

    // A second daemon on a home already in use is refused and leaves the first one working.
    let mut second = d.cmd(&["daemon", "--listen", &format!("127.0.0.1:{}", free_port()), "--name", "twin"]);
    second.stdout(Stdio::piped()).stderr(Stdio::piped());
    let o = run(second, "second daemon on the same home");
    assert!(!o.status.success(), "second daemon on one home must fail: {}", text(&o.stdout));
    eprintln!("[cli test] second daemon on the same home: {}", text(&o.stderr).trim());
    assert_eq!(d.json(&["id"])["name"], "beta", "the first daemon still answers");

    // A rejected pairing: `ferry pair --json` exits non-zero and says so.
    let g = Daemon::start("gamma");
    let mut cmd = g.cmd(&["pair", &d.addr(), "--json"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut pair = Proc::spawn(&mut cmd, "ferry pair --json");
    let prompt = wait_some("pairing prompt from gamma", || d.pending().into_iter().find(|p| p["kind"] == "pair"));
    assert_eq!(prompt["device_name"], "gamma");
    d.cli(&["reject", &prompt["id"].to_string()]);
    let o = pair.wait(WAIT).expect("`ferry pair` returns once rejected").clone();
    assert!(!o.status.success(), "a rejected pairing exits non-zero");
    let answer: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("pair --json printed no JSON ({e}): {}", text(&o.stdout)));
    assert_eq!(answer["state"], "rejected", "{answer}");
    assert_eq!(answer["code"], prompt["code"], "{answer}");
    assert_eq!(answer["device"], d.id().as_str(), "{answer}");
    assert!(d.pending().is_empty(), "the prompt is gone");
    let gid = g.id();
    assert!(d.device(&gid).is_none_or(|x| x["paired"] == false), "gamma is not paired");
    assert!(g.device(&d.id()).is_none_or(|x| x["paired"] == false), "beta is not paired on gamma");
    let err = g.cli_fails(&["share", "invite", "nosuch", "beta"]);
    assert!(err.contains("nosuch"), "{err}");
    drop(g);

    // No daemon for this home.
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = ferry_cmd(empty.path());
    cmd.arg("status");
    let o = run(cmd, "status without a daemon");
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("no Ferry node is running"), "{}", text(&o.stderr));

    // A bad ferry.toml stops the daemon at once, naming the file.
    let bad = tempfile::tempdir().unwrap();
    fs::write(bad.path().join("ferry.toml"), "nmae = 1\n").unwrap();
    let mut cmd = ferry_cmd(bad.path());
    cmd.args(["daemon", "--listen", &format!("127.0.0.1:{}", free_port()), "--name", "bad"]);
    let started = Instant::now();
    let o = run(cmd, "daemon with a bad ferry.toml");
    assert!(!o.status.success());
    assert!(started.elapsed() < Duration::from_secs(10), "bad config fails fast: {:?}", started.elapsed());
    assert!(text(&o.stderr).contains("ferry.toml"), "{}", text(&o.stderr));
    assert!(!bad.path().join("ferry.sock").exists());

    // A nonsense listen address, likewise.
    let mut cmd = ferry_cmd(bad.path());
    fs::remove_file(bad.path().join("ferry.toml")).unwrap();
    cmd.args(["daemon", "--listen", "nonsense", "--name", "bad"]);
    let o = run(cmd, "daemon with a bad listen address");
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("nonsense"), "{}", text(&o.stderr));
}

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

/// `ferry send` with a prompt accepted, then rejected, then auto-accepted; `ferry transfers`
/// on both sides; clear failures for bad input.
#[test]
fn send_and_transfers_through_the_cli() {
    let a = Daemon::start("alpha");
    let b = Daemon::start("beta");
    pair_through_cli(&a, &b);
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("hello.txt");
    let data = random_bytes(42, 3 << 20);
    fs::write(&file, &data).unwrap();
    let inbox = b.home.join("Inbox");

    // Accepted: `ferry send` waits, then exits 0.
    let mut cmd = a.cmd(&["send", "beta", path_str(&file)]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut sending = Proc::spawn(&mut cmd, "ferry send");
    let prompt = wait_some("send prompt on b", || b.pending().into_iter().find(|p| p["kind"] == "send"));
    assert_eq!(prompt["names"][0], "hello.txt");
    assert_eq!(prompt["bytes"], 3 << 20);
    let listed = b.cli(&["pending"]);
    assert!(listed.contains("alpha sends 1 file(s), 3.0 MiB: hello.txt"), "{listed}");
    b.cli(&["accept", &prompt["id"].to_string()]);
    let out = sending.wait(WAIT).expect("`ferry send` returns once done").clone();
    assert!(out.status.success(), "ferry send failed: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("sent 1 file(s), 3.0 MiB to beta"), "{}", text(&out.stdout));
    assert_eq!(blake3::hash(&fs::read(inbox.join("hello.txt")).unwrap()), blake3::hash(&data));
    let ta = a.json(&["transfers"]);
    let ta = ta.as_array().unwrap();
    assert_eq!(ta.len(), 1);
    assert_eq!((ta[0]["direction"].as_str(), ta[0]["state"].as_str()), (Some("out"), Some("done")));
    assert_eq!(ta[0]["bytes_done"], 3 << 20);
    let tb = b.json(&["transfers"]);
    assert_eq!((tb[0]["direction"].as_str(), tb[0]["state"].as_str()), (Some("in"), Some("done")));
    assert!(b.cli(&["transfers"]).contains("<- alpha"), "text listing");

    // Rejected: `ferry send` exits non-zero and says so; nothing new in the inbox.
    let mut cmd = a.cmd(&["send", "beta", path_str(&file)]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut sending = Proc::spawn(&mut cmd, "ferry send (rejected)");
    let prompt = wait_some("second prompt", || b.pending().into_iter().find(|p| p["kind"] == "send"));
    b.cli(&["reject", &prompt["id"].to_string()]);
    let out = sending.wait(WAIT).expect("`ferry send` returns once rejected").clone();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("was rejected: beta declined the send"), "{}", text(&out.stderr));
    let names: Vec<_> = fs::read_dir(&inbox).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("hello.txt")], "no temp files either");

    // Auto-accept: no prompt; a second copy lands beside the first.
    b.cli(&["devices", "auto-accept", "alpha", "on"]);
    let out = a.cli(&["send", "beta", path_str(&file)]);
    assert!(out.contains("sent 1 file(s)"), "{out}");
    assert_eq!(fs::read(inbox.join("hello (1).txt")).unwrap(), data);

    // --no-wait returns at once; the send still completes.
    let q = a.json(&["send", "--no-wait", "beta", path_str(&file)]);
    let id = q["id"].as_str().unwrap().to_string();
    wait_for("queued send done", || {
        a.json(&["transfers"]).as_array().unwrap().iter().any(|t| t["id"] == id.as_str() && t["state"] == "done")
    });
    assert_eq!(fs::read(inbox.join("hello (2).txt")).unwrap(), data);

    // Bad input: clear messages, non-zero exits.
    let e = a.cli_fails(&["send", "nosuchdevice", path_str(&file)]);
    assert!(e.contains("no known device matches \"nosuchdevice\""), "{e}");
    let e = a.cli_fails(&["send", "beta", path_str(&src.path().join("missing.txt"))]);
    assert!(e.contains("missing.txt"), "{e}");
    let e = a.cli_fails(&["send", "beta"]);
    assert!(e.contains("required"), "{e}");
    let e = b.cli_fails(&["devices", "auto-accept", "alpha", "maybe"]);
    assert!(e.contains("invalid value"), "{e}");
}

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
