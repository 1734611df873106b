//! The real `localsendd` (PyPI 0.1.1, LocalSend protocol 2.2, Python stdlib only) as a test
//! peer, run in one host of a [`Net`] with its own HOME and XDG dirs, a config.toml (alias,
//! download dir, PIN, unattended), driven by `localsendctl` over its control socket (a unix
//! socket in the daemon's own runtime dir: no network). Every process is bounded by `timeout`
//! and stopped on drop.
//!
//! `.ci/netns-setup` installs it into a venv ([`venv`]); `openssl` must be on PATH (it makes
//! its certificate with it). [`LocalSendd::skip_reason`] says why it cannot run here: tests
//! print "skipped: ..." and pass, like the other namespace tests.
//!
//! Unattended mode accepts an offer only while no control client is attached: a test must not
//! run `localsendctl` at the moment it offers files (a `status` call is short; `send --wait`
//! and `watch` stay attached).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::netns::{Net, is_root, poll};

/// Longest the daemon may live: a test takes < 2 min; the bound only matters if the test
/// process dies without dropping (then `timeout` ends it).
const LIFETIME_SECS: &str = "300";
/// A control call answers in milliseconds; `send --wait` of 50 MiB in a namespace takes
/// seconds. 120 s means stuck.
const CALL_TIMEOUT_SECS: &str = "120";

/// The venv `.ci/netns-setup` installs localsendd into (FERRY_LOCALSENDD_VENV overrides).
pub fn venv() -> PathBuf {
    match std::env::var_os("FERRY_LOCALSENDD_VENV") {
        Some(v) => PathBuf::from(v),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/ferry-localsendd-venv"),
    }
}

/// How the daemon is configured.
#[derive(Debug, Clone)]
pub struct Options {
    pub alias: String,
    pub pin: Option<String>,
    /// Accept every offer when no control client is attached (otherwise it declines: 403).
    pub unattended: bool,
}

pub struct LocalSendd {
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    pub alias: String,
    fingerprint: String,
}

impl LocalSendd {
    /// Why the daemon cannot run here, if it cannot.
    pub fn skip_reason() -> Option<String> {
        if !is_root() {
            return Some("needs root".into());
        }
        if !venv().join("bin/localsendd").exists() || !venv().join("bin/localsendctl").exists() {
            return Some(format!("needs localsendd in {} (run .ci/netns-setup)", venv().display()));
        }
        for tool in ["openssl", "timeout", "ip"] {
            let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output();
            if !found.map(|o| o.status.success()).unwrap_or(false) {
                return Some(format!("needs {tool}"));
            }
        }
        None
    }

    /// Starts the daemon in host `host`; waits (bounded) until it answers on its socket.
    pub fn start(net: &Net, host: usize, opts: &Options) -> LocalSendd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["home", "config/localsendd", "state", "run", "downloads"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("config/localsendd/config.toml"), config_toml(opts, &d.join("downloads"))).unwrap();
        let mut me = LocalSendd { dir, daemon: None, alias: opts.alias.clone(), fingerprint: String::new() };
        let log = std::fs::File::create(me.dir.path().join("daemon.log")).unwrap();
        let mut c = net.command(host, "timeout");
        c.args([LIFETIME_SECS]).arg(venv().join("bin/localsendd")).args(["--log-level", "debug"]);
        me.env(&mut c).stdout(Stdio::from(log.try_clone().unwrap())).stderr(Stdio::from(log));
        me.daemon = Some(c.spawn().expect("start localsendd"));
        me.fingerprint =
            poll("localsendd on its control socket", Duration::from_secs(30), Duration::from_millis(100), || {
                let st = me.try_status()?;
                st["self"]["fingerprint"].as_str().map(str::to_string)
            });
        me
    }

    fn env<'a>(&self, c: &'a mut Command) -> &'a mut Command {
        let d = self.dir.path();
        for v in ["LOCALSEND_ALIAS", "LOCALSEND_PIN", "LOCALSENDD_SOCKET"] {
            c.env_remove(v);
        }
        c.env("HOME", d.join("home"))
            .env("XDG_CONFIG_HOME", d.join("config"))
            .env("XDG_STATE_HOME", d.join("state"))
            .env("XDG_RUNTIME_DIR", d.join("run"))
            .stdin(Stdio::null())
    }

    /// `localsendctl ARGS` against this daemon (bounded by `timeout`).
    pub fn ctl(&self, args: &[&str]) -> Output {
        let mut c = Command::new("timeout");
        c.arg(CALL_TIMEOUT_SECS).arg(venv().join("bin/localsendctl")).args(args);
        self.env(&mut c).output().expect("run localsendctl")
    }

    fn try_status(&self) -> Option<serde_json::Value> {
        let o = self.ctl(&["status", "--json"]);
        o.status.success().then(|| serde_json::from_slice(&o.stdout).ok()).flatten()
    }

    /// `localsendctl status --json`.
    pub fn status(&self) -> serde_json::Value {
        self.try_status().unwrap_or_else(|| panic!("localsendctl status failed; log:\n{}", self.log_tail(40)))
    }

    /// Its certificate's fingerprint as it announces it (SHA-256, upper-case hex).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// `localsendctl devices --json`: the peers it knows.
    pub fn devices(&self) -> Vec<serde_json::Value> {
        let o = self.ctl(&["devices", "--json"]);
        assert!(o.status.success(), "localsendctl devices: {}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).expect("devices --json is JSON")
    }

    /// `localsendctl send FILE --to TO --wait [--pin PIN]`: blocks until the transfer ends.
    pub fn send(&self, file: &Path, to: &str, pin: Option<&str>) -> Output {
        let file = file.to_str().expect("a UTF-8 path");
        let mut args = vec!["send", file, "--to", to, "--wait", "--quiet"];
        if let Some(p) = pin {
            args.extend(["--pin", p]);
        }
        self.ctl(&args)
    }

    /// Where received files land (the config's download_dir).
    pub fn download_dir(&self) -> PathBuf {
        self.dir.path().join("downloads")
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

fn config_toml(opts: &Options, downloads: &Path) -> String {
    // TOML basic strings: the values here are test constants without quotes or backslashes.
    let mut t = format!(
        "alias = \"{}\"\ndownload_dir = \"{}\"\nunattended = {}\n",
        opts.alias,
        downloads.display(),
        opts.unattended
    );
    if let Some(pin) = &opts.pin {
        t.push_str(&format!("pin = \"{pin}\"\n"));
    }
    t
}

impl Drop for LocalSendd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- last localsendd log lines ----\n{}\n----", self.log_tail(60));
        }
        let Some(mut c) = self.daemon.take() else { return };
        // `ip netns exec` became `timeout`, which passes SIGTERM on; SIGKILL after a bounded wait.
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}
