//! Driving a test peer from a test: the `kde-peer` binary in a namespace (`ip netns exec`), or
//! the peer in this process on a thread moved into a namespace. Either way: commands in,
//! events out, and every wait bounded ([`PeerCtl::wait`] panics with what it saw).

use std::future::Future;
use std::io::{BufRead, Write};
use std::os::fd::AsFd;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use super::Opts;

/// Runs `f` on a new thread inside network namespace `ns` (a name under /var/run/netns), on a
/// runtime of its own: every socket it opens is in that namespace.
pub fn in_netns<T, F, Fut>(ns: &str, f: F) -> std::thread::JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        rustix::thread::move_into_link_name_space(fd.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
            .unwrap_or_else(|e| panic!("setns {path}: {e}"));
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f())
    })
}

enum Input {
    Stdin(ChildStdin),
    Chan(UnboundedSender<Value>),
}

pub struct PeerCtl {
    input: Input,
    events: Receiver<Value>,
    /// Every event received so far, in order.
    pub seen: Vec<Value>,
    child: Option<Child>,
}

impl PeerCtl {
    /// The `kde-peer` binary: `cmd` is its command line (stdin and stdout are taken here).
    pub fn process(mut cmd: Command) -> PeerCtl {
        let mut child =
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("start kde-peer");
        let out = child.stdout.take().unwrap();
        let (tx, events) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                let v = serde_json::from_str(&line).unwrap_or_else(|_| json!({ "event": "garbage", "line": line }));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let input = Input::Stdin(child.stdin.take().unwrap());
        PeerCtl { input, events, seen: vec![], child: Some(child) }
    }

    /// The peer in this process, in namespace `ns`.
    pub fn in_process(ns: &str, opts: Opts) -> PeerCtl {
        let (tx, events) = std::sync::mpsc::channel();
        let (cmds, rx) = tokio::sync::mpsc::unbounded_channel();
        let errors = tx.clone();
        in_netns(ns, move || async move {
            if let Err(e) = super::run(opts, rx, tx).await {
                let _ = errors.send(json!({ "event": "error", "message": format!("peer stopped: {e:#}") }));
            }
        });
        PeerCtl { input: Input::Chan(cmds), events, seen: vec![], child: None }
    }

    /// Any peer of the same shape (commands in, events out) in this process: `run` on a thread
    /// of its own, inside namespace `ns` when given (else in this one: loopback tests).
    pub fn in_process_with<F, Fut>(ns: Option<&str>, run: F) -> PeerCtl
    where
        F: FnOnce(tokio::sync::mpsc::UnboundedReceiver<Value>, std::sync::mpsc::Sender<Value>) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let (tx, events) = std::sync::mpsc::channel();
        let (cmds, rx) = tokio::sync::mpsc::unbounded_channel();
        let errors = tx.clone();
        let body = move || async move {
            if let Err(e) = run(rx, tx).await {
                let _ = errors.send(json!({ "event": "error", "message": format!("peer stopped: {e:#}") }));
            }
        };
        match ns {
            Some(ns) => drop(in_netns(ns, body)),
            None => drop(std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(body())
            })),
        }
        PeerCtl { input: Input::Chan(cmds), events, seen: vec![], child: None }
    }

    pub fn send(&mut self, cmd: Value) {
        match &mut self.input {
            Input::Stdin(s) => {
                let _ = writeln!(s, "{cmd}");
                let _ = s.flush();
            }
            Input::Chan(c) => {
                let _ = c.send(cmd);
            }
        }
    }

    /// The next event (after those already seen) for which `pred` holds; panics after `limit`
    /// with every event seen, so a failure says what the peer did instead.
    pub fn wait(&mut self, what: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        match self.try_wait(limit, pred) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => panic!("peer: no {what} within {limit:?}; saw {:#?}", self.seen),
            Err(RecvTimeoutError::Disconnected) => panic!("peer: ended before {what}; saw {:#?}", self.seen),
        }
    }

    /// [`PeerCtl::wait`] without the panic.
    pub fn try_wait(&mut self, limit: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value, RecvTimeoutError> {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.events.recv_timeout(deadline.saturating_duration_since(Instant::now()))?;
            self.seen.push(v.clone());
            if pred(&v) {
                return Ok(v);
            }
        }
    }

    /// [`PeerCtl::wait`] for an event named `name`.
    pub fn wait_event(&mut self, name: &str, limit: Duration) -> Value {
        self.wait(name, limit, |v| v["event"] == name)
    }

    /// Events received so far that were not waited for, without blocking.
    pub fn drain(&mut self) -> Vec<Value> {
        let mut out = vec![];
        while let Ok(v) = self.events.try_recv() {
            self.seen.push(v.clone());
            out.push(v);
        }
        out
    }
}

impl Drop for PeerCtl {
    fn drop(&mut self) {
        self.send(json!({ "cmd": "quit" }));
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The set-up the KDE Connect namespace tests share: a Ferry daemon on host 0 with KDE Connect
// on, a peer on host 1, and ways to read what the daemon recorded.

/// The `ferry` binary: `FERRY_BIN`, else `target/debug/ferry` beside this test's binary
/// (`cargo build -p ferry-cli` first; `.ci/test` builds the workspace before testing).
pub fn ferry_bin() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("FERRY_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|deps| deps.parent()).unwrap().join("ferry");
    assert!(bin.exists(), "{} is missing: run `cargo build -p ferry-cli` first (or set FERRY_BIN)", bin.display());
    bin
}

/// A Ferry daemon on host 0 of `net` with KDE Connect on every address of its namespace,
/// accepted sends landing in `inbox`.
pub fn start_ferry(net: &crate::netns::Net, name: &str, inbox: &std::path::Path) -> crate::netns::NsDaemon {
    // The daemon announces itself to 255.255.255.255, which needs a route; the namespace's
    // only link is the test bridge, so this keeps the broadcast there.
    let ns = &net.hosts[0].ns;
    let out = Command::new("ip").args(["-n", ns, "route", "add", "default", "dev", "eth0"]).output().unwrap();
    assert!(out.status.success(), "ip route: {}", String::from_utf8_lossy(&out.stderr));
    let inbox = inbox.to_str().unwrap();
    crate::netns::NsDaemon::start(net, 0, &ferry_bin(), name, &["--kdeconnect-bind", "0.0.0.0", "--inbox", inbox])
}

/// The `kde-peer` binary `bin` on host `host` of `net`, with its state in `state`.
pub fn peer_process(
    net: &crate::netns::Net,
    host: usize,
    bin: &str,
    name: &str,
    id: &str,
    state: &std::path::Path,
    extra: &[&str],
) -> PeerCtl {
    let mut cmd = net.command(host, bin);
    cmd.args(["--name", name, "--id", id, "--state", state.to_str().unwrap(), "--timeout", "300"]).args(extra);
    let mut p = PeerCtl::process(cmd);
    p.wait_event("ready", Duration::from_secs(30));
    p
}

/// The KDE Connect device named `name` in `ferry devices --json`.
pub fn kde_device(d: &crate::netns::NsDaemon, name: &str) -> Option<Value> {
    d.devices().into_iter().find(|v| v["kind"] == "kdeconnect" && v["name"] == name)
}

/// Every note the daemon recorded (`ferry notes --json`).
pub fn notes(d: &crate::netns::NsDaemon) -> Vec<Value> {
    d.json(&["notes"]).as_array().cloned().unwrap_or_default()
}

/// Every transfer the daemon recorded (`ferry transfers --json`).
pub fn transfers(d: &crate::netns::NsDaemon) -> Vec<Value> {
    d.json(&["transfers"]).as_array().cloned().unwrap_or_default()
}

/// Names in `dir` (hidden ones too), sorted; empty when it does not exist.
pub fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &std::path::Path) -> String {
    use sha2::Digest;
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    super::proto::hex(&h.finalize())
}
