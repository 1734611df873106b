//! The harness the CLI tests share: real `ferry daemon` processes on 127.0.0.1, each with its
//! own home, driven only through the `ferry` binary; tree fingerprints to compare folders; and
//! pairing two daemons through `ferry pair` / `ferry pending` / `ferry accept`.
//!
//! Rules these helpers keep: daemons listen on 127.0.0.1 only; every wait is bounded and polls
//! its condition (at most every 200 ms) instead of sleeping; every child process is killed when
//! its guard drops, so a failing assertion never leaves a daemon behind.

// Each test file compiles this module into its own crate and uses only part of it.
#![allow(dead_code)]

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
pub const WAIT: Duration = Duration::from_secs(60);
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
pub fn ferry_cmd(home: &Path) -> Command {
    let mut c = Command::new(FERRY);
    for var in ["FERRY_HOME", "FERRY_LISTEN", "FERRY_NAME", "FERRY_OWNER", "FERRY_LOG", "FERRY_LOG_FILE"] {
        c.env_remove(var);
    }
    c.env_remove("FERRY_RESCAN_SECS");
    c.env_remove("FERRY_MDNS_INTERFACE");
    // These daemons run in the root namespace: mDNS stays off (network safety rule); the
    // namespaced tests in netns.rs are where it runs.
    c.env("FERRY_MDNS", "0");
    // KDE Connect's discovery is a broadcast: off outside a namespace (network safety).
    c.env("FERRY_KDECONNECT", "0");
    c.env_remove("FERRY_KDECONNECT_BIND");
    // LocalSend's discovery is a multicast: off likewise.
    c.env("FERRY_LOCALSEND", "0");
    for v in ["FERRY_LOCALSEND_BIND", "FERRY_LOCALSEND_PORT", "FERRY_LOCALSEND_PIN"] {
        c.env_remove(v);
    }
    c.env_remove("FERRY_INBOX");
    c.arg("--home").arg(home).stdin(Stdio::null());
    c
}

/// A child process that is always reaped: a thread waits for it (so no polling is needed to
/// notice its exit), and dropping the guard before it exited sends SIGTERM, then SIGKILL.
pub struct Proc {
    pid: u32,
    what: String,
    exited: Receiver<std::io::Result<Output>>,
    output: Option<Output>,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, what: &str) -> Proc {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Self::from_child(child, what)
    }

    pub fn from_child(child: std::process::Child, what: &str) -> Proc {
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        Proc { pid, what: what.to_string(), exited: rx, output: None }
    }

    /// The process's output once it has exited, waiting at most `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<&Output> {
        if self.output.is_none() {
            match self.exited.recv_timeout(timeout) {
                Ok(r) => self.output = Some(r.unwrap_or_else(|e| panic!("waiting for {}: {e}", self.what))),
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => panic!("lost the waiter of {}", self.what),
            }
        }
        self.output.as_ref()
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.wait(Duration::ZERO).map(|o| o.status)
    }

    /// Sends a signal by pid, unless the process has already been reaped.
    pub fn signal(&mut self, sig: &str) {
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
    pub fn terminate(&mut self, grace: Duration) -> (ExitStatus, bool) {
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
pub fn run(mut cmd: Command, what: &str) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut p = Proc::spawn(&mut cmd, what);
    match p.wait(CMD_TIMEOUT) {
        Some(o) => o.clone(),
        None => panic!("`{what}` did not finish within {CMD_TIMEOUT:?}"),
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    s.local_addr().unwrap().port()
}

/// Polls `probe` (at most every [`POLL`]) until it yields `Some`; panics after [`WAIT`].
pub fn wait_some<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
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

pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    wait_some(what, || cond().then_some(()))
}

// ---------------------------------------------------------------------------------------------
// Daemon
// ---------------------------------------------------------------------------------------------

/// One `ferry daemon` process with its own home, on 127.0.0.1:`port`.
pub struct Daemon {
    pub name: String,
    pub home: PathBuf,
    pub port: u16,
    /// Outside the home when the home may lose writes (the power-cut campaign).
    log: PathBuf,
    proc: Option<Proc>,
    _home_dir: Option<TempDir>,
}

impl Daemon {
    pub fn start(name: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Self::start_at(name, dir.path(), &dir.path().join("daemon.log"));
        d._home_dir = Some(dir);
        d
    }

    /// Starts a daemon on the home `home` (the daemon creates it if missing), logging to `log`.
    pub fn start_at(name: &str, home: &Path, log: &Path) -> Daemon {
        let mut d = Daemon {
            name: name.into(),
            home: home.into(),
            port: free_port(),
            log: log.into(),
            proc: None,
            _home_dir: None,
        };
        d.launch();
        d
    }

    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    /// Starts the daemon process on this home and port, and waits until it answers.
    pub fn launch(&mut self) {
        assert!(self.proc.is_none(), "{} is already running", self.name);
        let log = fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let mut cmd = ferry_cmd(&self.home);
        let inbox = self.home.join("Inbox");
        cmd.args(["daemon", "--listen", &format!("127.0.0.1:{}", self.port), "--name", &self.name])
            .args(["--owner", "tester", "--log", "info", "--no-mdns", "--no-kdeconnect", "--no-localsend"])
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
    pub fn stop(&mut self) {
        let mut p = self.proc.take().expect("daemon running");
        let started = Instant::now();
        let (status, in_time) = p.terminate(STOP_GRACE);
        assert!(in_time, "{} did not stop within {STOP_GRACE:?} of SIGTERM:\n{}", self.name, self.log_tail(40));
        assert!(status.success(), "{} exited with {status} after SIGTERM:\n{}", self.name, self.log_tail(40));
        assert!(!self.home.join("ferry.sock").exists(), "control socket removed on shutdown");
        eprintln!("[cli test] {} stopped in {:?}", self.name, started.elapsed());
    }

    /// SIGKILL, no shutdown: a crash or a pulled plug. Returns once the process is reaped.
    pub fn kill(&mut self) {
        let mut p = self.proc.take().expect("daemon running");
        p.signal("KILL");
        assert!(p.wait(STOP_GRACE).is_some(), "{} survives SIGKILL", self.name);
    }

    pub fn restart(&mut self) {
        self.launch();
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A `ferry --home <this home> ARGS...` command, not yet run.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = ferry_cmd(&self.home);
        c.args(args);
        c
    }

    pub fn try_cli(&self, args: &[&str]) -> Output {
        run(self.cmd(args), &format!("ferry {} ({})", args.join(" "), self.name))
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
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
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.cli(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("`ferry {}` printed no JSON ({e}): {out}", a.join(" ")))
    }

    /// Runs a command that must fail; returns its stderr.
    pub fn cli_fails(&self, args: &[&str]) -> String {
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

    pub fn id(&self) -> String {
        self.json(&["id"])["device_id"].as_str().unwrap().to_string()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pending(&self) -> Vec<Value> {
        self.json(&["pending"]).as_array().cloned().unwrap_or_default()
    }

    pub fn device(&self, id: &str) -> Option<Value> {
        self.json(&["devices"]).as_array()?.iter().find(|d| d["id"] == id).cloned()
    }

    pub fn connected_to(&self, id: &str) -> bool {
        self.device(id).is_some_and(|d| d["paired"] == true && d["connected"] == true)
    }

    pub fn share_status(&self, share: &str) -> Option<Value> {
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
pub fn tree(root: &Path) -> BTreeMap<String, String> {
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
pub fn tree_bytes(t: &BTreeMap<String, String>) -> u64 {
    t.values().filter_map(|v| v.strip_prefix("file:")?.split(':').next()?.parse::<u64>().ok()).sum()
}

pub fn conflict_copies(t: &BTreeMap<String, String>) -> Vec<String> {
    t.keys().filter(|k| k.contains(".sync-conflict-")).cloned().collect()
}

/// Seeded random bytes (reproducible runs).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

pub fn write_with_mtime(p: &Path, data: &[u8], mtime: SystemTime) {
    fs::write(p, data).unwrap();
    fs::File::options().write(true).open(p).unwrap().set_modified(mtime).unwrap();
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

// ---------------------------------------------------------------------------------------------
// Pairing
// ---------------------------------------------------------------------------------------------

/// Pairs `a` with `b` through `ferry pair` / `ferry pending` / `ferry accept`, checking both
/// sides show the same code, and waits until each lists the other as paired and connected.
pub fn pair_through_cli(a: &Daemon, b: &Daemon) {
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
    // The reader thread may not have passed on the last lines yet when the process has exited:
    // read until it closes the channel at end of output (bounded).
    let mut rest = Vec::new();
    while let Ok(l) = lines.recv_timeout(WAIT) {
        rest.push(l);
    }
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
