//! The real KDE Connect daemon (Debian's `kdeconnect`, 22.12, protocol 7) as a test peer, run
//! headless in one host of a [`Net`]: its own session bus (dbus-daemon), HOME and offscreen Qt,
//! every process bounded by `timeout` and killed on drop. A `dbus-monitor` on its bus records
//! the Notify calls it makes (what a user would see as notifications).
//!
//! [`KdeDaemon::skip_reason`] says why it cannot run here (not root, daemon or tools missing):
//! tests print "skipped: ..." and pass, like the other namespace tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::netns::{Net, is_root, poll};

pub const KDECONNECTD: &str = "/usr/lib/x86_64-linux-gnu/libexec/kdeconnectd";
/// Longest a daemon may live: a test is < 60 s; the bound only matters if the test process
/// dies without dropping (then `timeout` ends them).
const LIFETIME_SECS: &str = "300";
/// A D-Bus call or a CLI command answers in milliseconds; 30 s means the daemon is stuck.
const CALL_TIMEOUT_SECS: &str = "30";

pub struct KdeDaemon {
    dir: tempfile::TempDir,
    bus: Option<Child>,
    daemon: Option<Child>,
    monitor: Option<Child>,
    id: String,
    /// The namespace of the daemon's host.
    ns: String,
}

impl KdeDaemon {
    /// Why the daemon cannot run here, if it cannot.
    pub fn skip_reason() -> Option<String> {
        if !is_root() {
            return Some("needs root".into());
        }
        if !Path::new(KDECONNECTD).exists() {
            return Some("needs kdeconnectd (apt-get install kdeconnect)".into());
        }
        for tool in ["dbus-daemon", "dbus-monitor", "gdbus", "kdeconnect-cli", "timeout", "ip", "openssl"] {
            if Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {tool}"))
                .output()
                .map(|o| !o.status.success())
                .unwrap_or(true)
            {
                return Some(format!("needs {tool}"));
            }
        }
        None
    }

    /// Starts a bus and the daemon in host `host`, announcing itself as `name`; waits
    /// (bounded) until it answers on D-Bus.
    pub fn start(net: &Net, host: usize, name: &str) -> KdeDaemon {
        let dir = tempfile::tempdir().unwrap();
        let d = &dir.path().to_path_buf();
        for sub in ["home/.config", "home/.local/share", "home/Downloads", "run"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("bus.conf"), bus_config(&d.join("bus"))).unwrap();
        // The name from the first announcement on (setAnnouncedName below renames a running
        // daemon, and a peer could meet it under the host name in between).
        std::fs::create_dir_all(d.join("home/.config/kdeconnect")).unwrap();
        std::fs::write(d.join("home/.config/kdeconnect/config"), format!("[General]\nname={name}\n")).unwrap();
        let ns = net.hosts[host].ns.clone();
        let mut k = KdeDaemon { dir, bus: None, daemon: None, monitor: None, id: String::new(), ns };
        let log = |file: &str| Stdio::from(std::fs::File::create(d.join(file)).unwrap());
        let mut bus = net.command(host, "timeout");
        bus.args([LIFETIME_SECS, "dbus-daemon", "--nofork", "--config-file"]).arg(d.join("bus.conf"));
        k.bus = Some(bus.stdout(log("bus.log")).stderr(log("bus.log")).spawn().expect("start dbus-daemon"));
        poll("the daemon's session bus", Duration::from_secs(10), Duration::from_millis(20), || {
            d.join("bus").exists().then_some(())
        });
        let mut mon = Command::new("timeout");
        mon.args([LIFETIME_SECS, "dbus-monitor", "--session", "interface='org.freedesktop.Notifications'"]);
        k.monitor =
            Some(k.env(&mut mon).stdout(log("notify.log")).stderr(Stdio::null()).spawn().expect("dbus-monitor"));
        k.spawn_daemon();
        let set = k.gdbus("/modules/kdeconnect", "org.kde.kdeconnect.daemon.setAnnouncedName", &[name]);
        assert!(set.status.success(), "setAnnouncedName: {}", String::from_utf8_lossy(&set.stderr));
        k
    }

    /// Starts kdeconnectd (log appended to daemon.log) and waits until it answers on its bus.
    fn spawn_daemon(&mut self) {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("daemon.log")).unwrap();
        let mut daemon = Command::new("ip");
        daemon.args(["netns", "exec", &self.ns, "timeout", LIFETIME_SECS, KDECONNECTD]);
        daemon.env("QT_LOGGING_RULES", "kdeconnect.*.debug=true");
        self.env(&mut daemon).stdout(Stdio::from(log.try_clone().unwrap())).stderr(Stdio::from(log));
        self.daemon = Some(daemon.spawn().expect("start kdeconnectd"));
        self.id = poll("kdeconnectd on its bus", Duration::from_secs(30), Duration::from_millis(100), || {
            let o = self.gdbus("/modules/kdeconnect", "org.kde.kdeconnect.daemon.selfId", &[]);
            o.status.success().then(|| gvariant_strings(&String::from_utf8_lossy(&o.stdout)).remove(0))
        });
    }

    /// Stops and starts the daemon (same HOME, same device id, same pairings). With `rekey`
    /// it comes back with a new key and certificate for the same device id: what a peer
    /// pinned before must then be refused.
    pub fn restart(&mut self, rekey: bool) {
        stop(self.daemon.take());
        if rekey {
            // 22.12 takes its device id from its certificate's CN and would make up a new id
            // along with a new certificate: so the new certificate is made here, same CN.
            let conf = self.dir.path().join("home/.config/kdeconnect");
            let (key, cert) = (conf.join("privateKey.pem"), conf.join("certificate.pem"));
            let o = Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .arg("-subj")
                .arg(format!("/O=KDE/OU=Kde connect/CN={}", self.id))
                .output()
                .expect("run openssl");
            assert!(o.status.success(), "openssl: {}", String::from_utf8_lossy(&o.stderr));
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let before = self.id.clone();
        self.spawn_daemon();
        assert_eq!(self.id, before, "the daemon keeps its device id across a restart");
    }

    fn env<'a>(&self, c: &'a mut Command) -> &'a mut Command {
        let d = self.dir.path();
        for v in ["DISPLAY", "WAYLAND_DISPLAY", "SESSION_MANAGER", "XDG_SESSION_TYPE"] {
            c.env_remove(v);
        }
        c.env("HOME", d.join("home"))
            .env("XDG_RUNTIME_DIR", d.join("run"))
            .env("XDG_CONFIG_HOME", d.join("home/.config"))
            .env("XDG_DATA_HOME", d.join("home/.local/share"))
            .env("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={}", d.join("bus").display()))
            .env("QT_QPA_PLATFORM", "offscreen")
            .stdin(Stdio::null())
    }

    pub fn device_id(&self) -> &str {
        &self.id
    }

    /// `kdeconnect-cli ARGS` on this daemon's bus (the bus is a socket file: no network).
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut c = Command::new("timeout");
        c.args([CALL_TIMEOUT_SECS, "kdeconnect-cli"]).args(args);
        self.env(&mut c).output().expect("run kdeconnect-cli")
    }

    /// A method call on the daemon's bus; `method` is `interface.member`.
    pub fn gdbus(&self, object: &str, method: &str, args: &[&str]) -> Output {
        let mut c = Command::new("timeout");
        c.args([
            CALL_TIMEOUT_SECS,
            "gdbus",
            "call",
            "--session",
            "-d",
            "org.kde.kdeconnect",
            "-o",
            object,
            "-m",
            method,
        ])
        .args(args);
        self.env(&mut c).output().expect("run gdbus")
    }

    fn device_object(id: &str) -> String {
        format!("/modules/kdeconnect/devices/{id}")
    }

    /// A boolean property of a device object (`isReachable`, `isTrusted`, ...); None if unknown.
    pub fn device_flag(&self, id: &str, property: &str) -> Option<bool> {
        let o = self.gdbus(
            &Self::device_object(id),
            "org.freedesktop.DBus.Properties.Get",
            &["org.kde.kdeconnect.device", property],
        );
        let out = String::from_utf8_lossy(&o.stdout);
        o.status.success().then(|| out.contains("true"))
    }

    /// Resolves a name to an id (ids pass through).
    pub fn resolve(&self, id_or_name: &str) -> Option<String> {
        let o = self.gdbus("/modules/kdeconnect", "org.kde.kdeconnect.daemon.deviceIdByName", &[id_or_name]);
        let by_name = gvariant_strings(&String::from_utf8_lossy(&o.stdout)).into_iter().find(|s| !s.is_empty());
        // 22.12's deviceIdByName finds paired devices only; the CLI's list has every one.
        let listed = || {
            let o = self.cli(&["-l", "--id-name-only"]);
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.split_once(' ').filter(|(_, n)| *n == id_or_name).map(|(id, _)| id.to_string()))
        };
        by_name.or_else(listed).or_else(|| self.device_flag(id_or_name, "isReachable").map(|_| id_or_name.to_string()))
    }

    /// Waits until the daemon knows the device, reachable as asked and (if given) paired as asked.
    pub fn wait_device(&self, id_or_name: &str, reachable: bool, paired: Option<bool>, timeout: Duration) -> String {
        poll(
            &format!("kdeconnectd to see {id_or_name} reachable={reachable} paired={paired:?}"),
            timeout,
            Duration::from_millis(100),
            || {
                let id = self.resolve(id_or_name)?;
                let ok = self.device_flag(&id, "isReachable")? == reachable
                    && paired.is_none_or(|p| self.device_flag(&id, "isTrusted") == Some(p));
                ok.then_some(id)
            },
        )
    }

    /// Accepts the device's pairing request (22.12's CLI has no accept: D-Bus).
    pub fn accept_pairing(&self, id: &str) {
        let o = self.gdbus(&Self::device_object(id), "org.kde.kdeconnect.device.acceptPairing", &[]);
        assert!(o.status.success(), "acceptPairing: {}", String::from_utf8_lossy(&o.stderr));
    }

    /// The verification key the daemon computes for the device: its D-Bus `verificationKey`
    /// (a byte array of 64 hex digits; its pairing notification shows the first 8: "Key: 1a2b3c4d...").
    pub fn verification_key(&self, id: &str) -> String {
        let o = self.gdbus(&Self::device_object(id), "org.kde.kdeconnect.device.verificationKey", &[]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "verificationKey: {}{out}", String::from_utf8_lossy(&o.stderr));
        // gdbus prints an `ay` as `([byte 0x63, 0x37, ...],)`.
        let bytes: Vec<u8> = out
            .split([' ', ',', '[', ']'])
            .filter_map(|t| t.strip_prefix("0x").and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect();
        String::from_utf8(bytes).expect("the key is hex text")
    }

    /// The Notify calls seen on the daemon's bus: (summary, body), oldest first.
    pub fn notifications(&self) -> Vec<(String, String)> {
        let log = std::fs::read_to_string(self.dir.path().join("notify.log")).unwrap_or_default();
        let mut out = vec![];
        for block in log.split("method call ").skip(1).filter(|b| b.contains("member=Notify")) {
            let strings = monitor_strings(block);
            if strings.len() >= 4 {
                out.push((strings[2].clone(), strings[3].clone()));
            }
        }
        out
    }

    /// Where the share plugin puts received files.
    pub fn downloads_dir(&self) -> PathBuf {
        self.dir.path().join("home/Downloads")
    }

    /// Announces again and looks for devices (`kdeconnect-cli --refresh`).
    pub fn refresh(&self) {
        let o = self.cli(&["--refresh"]);
        assert!(o.status.success(), "kdeconnect-cli --refresh: {}", String::from_utf8_lossy(&o.stderr));
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for KdeDaemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- last kdeconnectd log lines ----\n{}\n----", self.log_tail(80));
        }
        for child in [self.daemon.take(), self.monitor.take(), self.bus.take()] {
            stop(child);
        }
    }
}

/// `timeout` passes SIGTERM on to its command; SIGKILL after a bounded wait.
fn stop(child: Option<Child>) {
    let Some(mut c) = child else { return };
    let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

fn bus_config(socket: &Path) -> String {
    format!(
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
         \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig>\n  <type>session</type>\n  \
         <listen>unix:path={}</listen>\n  <auth>EXTERNAL</auth>\n  <policy context=\"default\">\n    \
         <allow send_destination=\"*\" eavesdrop=\"true\"/>\n    <allow eavesdrop=\"true\"/>\n    \
         <allow own=\"*\"/>\n  </policy>\n</busconfig>\n",
        socket.display()
    )
}

/// The string values in gdbus's printed GVariant, e.g. `('abc', 'de')` (no escapes handled
/// beyond \' and \\, enough for ids, names and keys).
pub fn gvariant_strings(s: &str) -> Vec<String> {
    let mut out = vec![];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\'' || c == '"' {
            let mut v = String::new();
            while let Some(d) = chars.next() {
                match d {
                    '\\' => v.extend(chars.next()),
                    d if d == c => break,
                    d => v.push(d),
                }
            }
            out.push(v);
        }
    }
    out
}

/// The `string "..."` values of one dbus-monitor message block (strings may span lines).
fn monitor_strings(block: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = block;
    while let Some(i) = rest.find("string \"") {
        rest = &rest[i + 8..];
        let end = rest.find("\"\n").unwrap_or(rest.len());
        out.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    out
}
