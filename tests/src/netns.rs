//! A multi-host test network made of Linux network namespaces: N hosts, each a namespace with
//! one interface `eth0` (10.77.0.(i+1)/24), joined by a bridge that itself lives in its own
//! namespace. Nothing is created in the root namespace: the veth pairs are made inside the
//! bridge namespace with their host ends moved straight into the host namespaces, so no test
//! traffic (mDNS included) can reach a real network.
//!
//! Faults: [`Net::cut`]/[`Net::restore`] take a host's bridge port down and up, [`Net::loss`]
//! drops a share of the frames crossing the bridge (nftables `numgen`, since this kernel has no
//! netem), [`Net::rate_limit`] caps the bandwidth towards a host (tbf).
//!
//! Safety: [`Net::new`] refuses to run unless the process is root and `ip` exists (callers
//! print "skipped: needs root" and pass). Names carry the pid and a counter, so parallel tests
//! never collide; dropping the [`Net`] (also during a panic) kills every process left in its
//! namespaces (processes the test started there) and deletes the namespaces.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Why the network cannot be built here.
#[derive(Debug)]
pub struct Unavailable(pub String);

pub struct Net {
    tag: String,
    bridge_ns: String,
    pub hosts: Vec<Host>,
}

pub struct Host {
    pub ns: String,
    pub ip: Ipv4Addr,
    /// The host's port on the bridge (in the bridge namespace).
    pub port: String,
}

/// Whether this process runs as root (namespaces, and the daemons run in them, need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// Runs a command that must succeed.
fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

impl Net {
    /// Builds `n` hosts on one bridge. `Err` when not root or `ip` is missing.
    pub fn new(n: usize) -> Result<Net, Unavailable> {
        if !is_root() {
            return Err(Unavailable("needs root".into()));
        }
        if Command::new("ip").arg("-V").output().is_err() {
            return Err(Unavailable("needs iproute2 (`ip`)".into()));
        }
        assert!((1..=200).contains(&n));
        let tag = format!("fy{}x{}", std::process::id() % 100_000, NEXT.fetch_add(1, Ordering::Relaxed));
        let bridge_ns = format!("{tag}-br");
        // The guard exists before anything is created, so a failure half-way still cleans up.
        let mut net = Net { tag: tag.clone(), bridge_ns: bridge_ns.clone(), hosts: vec![] };
        sh(&["ip", "netns", "add", &bridge_ns]);
        sh(&["ip", "-n", &bridge_ns, "link", "set", "lo", "up"]);
        // No multicast snooping: every mDNS packet floods to every port, like a plain switch.
        sh(&["ip", "-n", &bridge_ns, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"]);
        sh(&["ip", "-n", &bridge_ns, "link", "set", "br0", "up"]);
        for i in 0..n {
            let ns = format!("{tag}-h{}", i + 1);
            let port = format!("p{}", i + 1);
            let ip = Ipv4Addr::new(10, 77, 0, (i + 1) as u8);
            sh(&["ip", "netns", "add", &ns]);
            net.hosts.push(Host { ns: ns.clone(), ip, port: port.clone() });
            sh(&["ip", "-n", &bridge_ns, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
            sh(&["ip", "-n", &bridge_ns, "link", "set", &port, "master", "br0", "up"]);
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            sh(&["ip", "-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "multicast", "on", "up"]);
            sh(&["ip", "-n", &ns, "route", "add", "224.0.0.0/4", "dev", "eth0"]);
        }
        Ok(net)
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// A command run inside host `i`'s namespace (0-based).
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.hosts[i].ns]).arg(program).stdin(Stdio::null());
        c
    }

    /// Routes the limited broadcast address (255.255.255.255) out of `eth0` on every host:
    /// KDE Connect announces itself there, and a namespace has no default route to carry it.
    pub fn enable_broadcast(&self) {
        for h in &self.hosts {
            sh(&["ip", "-n", &h.ns, "route", "add", "255.255.255.255/32", "dev", "eth0"]);
        }
    }

    /// Moves the calling thread (only it) into host `i`'s network namespace: sockets it opens
    /// from then on live there. For a dedicated thread running library code as that host.
    pub fn enter(&self, i: usize) {
        let f = std::fs::File::open(format!("/var/run/netns/{}", self.hosts[i].ns)).expect("open the namespace");
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&f),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns into the host's namespace");
    }

    /// Takes host `i`'s bridge port down: its link is cut (it sees no carrier).
    pub fn cut(&self, i: usize) {
        sh(&["ip", "-n", &self.bridge_ns, "link", "set", &self.hosts[i].port, "down"]);
    }

    pub fn restore(&self, i: usize) {
        sh(&["ip", "-n", &self.bridge_ns, "link", "set", &self.hosts[i].port, "up"]);
    }

    /// Drops `percent`% of the frames the bridge forwards, at random.
    pub fn loss(&self, percent: u32) {
        assert!(percent <= 100);
        let rules = format!(
            "table bridge ferry_loss {{\n chain lossy {{\n  type filter hook forward priority 0; policy accept;\n  \
             numgen random mod 100 < {percent} drop\n }}\n}}\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.bridge_ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run nft (install the nftables package)");
        {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "nft failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Caps the traffic the bridge sends to host `i` at `mbit` megabits per second.
    pub fn rate_limit(&self, i: usize, mbit: u32) {
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.bridge_ns,
            "tc",
            "qdisc",
            "replace",
            "dev",
            &self.hosts[i].port,
            "root",
            "tbf",
            "rate",
            &format!("{mbit}mbit"),
            "burst",
            "256kb",
            "latency",
            "100ms",
        ]);
    }

    /// Kills every process still running in this network's namespaces.
    fn kill_all(&self) {
        for ns in self.hosts.iter().map(|h| h.ns.as_str()).chain([self.bridge_ns.as_str()]) {
            let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else { continue };
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).stderr(Stdio::null()).status();
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.kill_all();
        // Deleting the namespaces destroys the veths and the bridge with them.
        for ns in self.hosts.iter().map(|h| h.ns.clone()).chain([self.bridge_ns.clone()]) {
            let _ = Command::new("ip").args(["netns", "del", &ns]).stderr(Stdio::null()).status();
        }
    }
}

/// A `ferry daemon` running in one host of a [`Net`], with its own home. Dropping it kills the
/// process (SIGTERM, then SIGKILL after a bounded wait).
pub struct NsDaemon {
    pub name: String,
    pub home: PathBuf,
    pub host: usize,
    bin: PathBuf,
    child: Option<Child>,
    _home_dir: tempfile::TempDir,
}

/// QUIC port every daemon listens on (each host has its own address, so they can share it).
pub const PORT: u16 = 22010;

impl NsDaemon {
    /// Starts `bin daemon` in host `host` as `name`, listening on 0.0.0.0:[`PORT`], with mDNS
    /// on (the namespace is its whole world). Waits (bounded) until it answers.
    pub fn start(net: &Net, host: usize, bin: &Path, name: &str, extra: &[&str]) -> NsDaemon {
        Self::start_env(net, host, bin, name, extra, &[])
    }

    /// [`start`](Self::start) with extra environment (`FERRY_CRASH_AT`, say).
    pub fn start_env(net: &Net, host: usize, bin: &Path, name: &str, extra: &[&str], env: &[(&str, &str)]) -> NsDaemon {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_path_buf();
        let mut d = NsDaemon { name: name.into(), home, host, bin: bin.to_path_buf(), child: None, _home_dir: dir };
        d.launch(net, extra, env);
        d
    }

    /// Starts the daemon again on the same home (after [`kill`](Self::kill) or a crash the test
    /// waited for with [`wait_exit`](Self::wait_exit)), its log appended to.
    pub fn relaunch(&mut self, net: &Net, extra: &[&str], env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        self.launch(net, extra, env);
    }

    fn launch(&mut self, net: &Net, extra: &[&str], env: &[(&str, &str)]) {
        let (name, host) = (self.name.clone(), self.host);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.home.join("daemon.log")).unwrap();
        let mut cmd = net.command(host, &self.bin);
        for v in ["FERRY_HOME", "FERRY_LISTEN", "FERRY_NAME", "FERRY_OWNER", "FERRY_LOG_FILE", "FERRY_MDNS"] {
            cmd.env_remove(v);
        }
        cmd.env_remove("FERRY_MDNS_INTERFACE");
        // KDE Connect only for the tests that ask for it (by giving its address).
        let kde = extra.iter().any(|a| a.starts_with("--kdeconnect-bind"));
        cmd.env("FERRY_KDECONNECT", if kde { "1" } else { "0" }).env_remove("FERRY_KDECONNECT_BIND");
        // LocalSend likewise, for the tests that give one of its flags.
        let ls = extra.iter().any(|a| a.starts_with("--localsend"));
        cmd.env("FERRY_LOCALSEND", if ls { "1" } else { "0" });
        for v in ["FERRY_LOCALSEND_BIND", "FERRY_LOCALSEND_PORT", "FERRY_LOCALSEND_PIN", "FERRY_CRASH_AT"] {
            cmd.env_remove(v);
        }
        cmd.envs(env.iter().copied());
        cmd.arg("--home")
            .arg(&self.home)
            .args(["daemon", "--listen", &format!("0.0.0.0:{PORT}"), "--name", &name, "--owner", "tester"])
            .args(["--log", "info,ferry_net=debug"])
            .args(extra)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start ferry in {}: {e}", net.hosts[host].ns));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon {name} exited early ({status}):\n{}", self.log_tail(40));
            }
            if self.try_cli(&["id", "--json"]).status.success() {
                break;
            }
            assert!(Instant::now() < deadline, "daemon {name} did not answer within 60 s:\n{}", self.log_tail(40));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (at most `limit`) for the daemon to end by itself; its exit status, or None if it
    /// still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.child.as_mut()?.try_wait().unwrap();
            if let Some(status) = status {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL, no goodbye: what a crash or a pulled plug looks like to the others.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.home.join("daemon.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A client command on this daemon's home. The control socket is a file, so clients run
    /// from the test's own namespace and send nothing on any network.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--home").arg(&self.home).args(args).stdin(Stdio::null());
        c.env_remove("FERRY_HOME");
        c
    }

    pub fn try_cli(&self, args: &[&str]) -> Output {
        let mut child = self
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run ferry {args:?}: {e}"));
        // Client commands answer at once (except `pair`, which is spawned separately).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("ferry {args:?} on {} did not finish within 60 s", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let o = self.try_cli(args);
        assert!(
            o.status.success(),
            "ferry {args:?} on {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.cli(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ferry {a:?} printed no JSON ({e}): {out}"))
    }

    pub fn id(&self) -> String {
        self.json(&["id"])["device_id"].as_str().unwrap().to_string()
    }

    pub fn devices(&self) -> Vec<serde_json::Value> {
        self.json(&["devices"]).as_array().cloned().unwrap_or_default()
    }

    pub fn device(&self, id: &str) -> Option<serde_json::Value> {
        self.devices().into_iter().find(|d| d["id"] == id)
    }

    pub fn sees_nearby(&self, id: &str) -> bool {
        self.device(id).is_some_and(|d| d["nearby"] == true)
    }

    pub fn connected_to(&self, id: &str) -> bool {
        self.device(id).is_some_and(|d| d["paired"] == true && d["connected"] == true)
    }

    pub fn share_status(&self, share: &str) -> Option<serde_json::Value> {
        self.json(&["status"])["shares"].as_array()?.iter().find(|s| s["id"] == share).cloned()
    }
}

impl Drop for NsDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if std::thread::panicking() {
                eprintln!("---- last log lines of {} ----\n{}\n----", self.name, self.log_tail(60));
            }
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `probe` every `every` until it yields `Some`; panics after `limit`.
pub fn poll<T>(what: &str, limit: Duration, every: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        std::thread::sleep(every);
    }
}
