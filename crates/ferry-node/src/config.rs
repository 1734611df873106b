//! Configuration, resolved once: flags win over environment variables (the CLI's clap layer
//! merges those two into [`Overrides`]), which win over `ferry.toml` in the home, which wins
//! over defaults. Deep code receives the typed [`Config`], never raw strings.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Default QUIC port (UDP). Any free port works; a fixed default makes addresses memorable.
pub const DEFAULT_PORT: u16 = 22010;
/// How often a full rescan runs as a safety net behind the watcher.
pub const DEFAULT_RESCAN: Duration = Duration::from_secs(3600);
/// Watcher debounce: short enough that a saved file starts syncing at once, long enough to
/// coalesce an editor's write-rename-chmod burst into one scan.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(50);
/// Most wanted paths a pull pass plans and applies at once (`share/pull.rs`): a wanted record
/// with its holders and place in the order costs about 1 KiB (measured at W8: 1,080 MiB of
/// peak RSS for 1M new files in one pass), so 32,768 bound a pass near 32 MiB. Each window adds one pass over the
/// local index for reusable chunks (about a second per million local files), so 1M new files
/// take 31 windows and a few seconds more than one pass, against some 200 s of transfer.
pub const DEFAULT_PULL_WINDOW: usize = 32_768;
pub const CONFIG_FILE: &str = "ferry.toml";
/// LocalSend's port: every LocalSend device listens on it unless its user changed it.
pub const LOCALSEND_PORT: u16 = 53317;
/// A LocalSend PIN is typed on a phone: short, printable, no spaces (what the app accepts).
const MAX_PIN: usize = 32;
/// How often old versions are pruned by each share's retention policy: hourly is fine-grained
/// enough for the hourly buckets of the staggered policy.
pub const DEFAULT_PRUNE: Duration = Duration::from_secs(3600);

/// Values given on the command line or in the environment (already merged by the CLI).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub home: Option<PathBuf>,
    pub listen: Option<String>,
    pub name: Option<String>,
    pub owner: Option<String>,
    pub log: Option<String>,
    pub log_file: Option<PathBuf>,
    pub rescan_secs: Option<u64>,
    /// `Some(false)` from `--no-mdns` or `FERRY_MDNS=0`.
    pub mdns: Option<bool>,
    /// `--mdns-interface` (repeatable); empty means not given.
    pub mdns_interfaces: Vec<String>,
    pub inbox: Option<PathBuf>,
    /// `Some(false)` from `--no-kdeconnect` or `FERRY_KDECONNECT=0`.
    pub kdeconnect: Option<bool>,
    /// `--kdeconnect-bind IP`: the address KDE Connect listens on.
    pub kdeconnect_bind: Option<IpAddr>,
    /// `Some(false)` from `--no-localsend` or `FERRY_LOCALSEND=0`.
    pub localsend: Option<bool>,
    /// `--localsend-bind IP`: the address LocalSend listens on.
    pub localsend_bind: Option<IpAddr>,
    /// `--localsend-port PORT`.
    pub localsend_port: Option<u16>,
    /// `--localsend-pin PIN` (or FERRY_LOCALSEND_PIN).
    pub localsend_pin: Option<String>,
}

/// `ferry.toml`: every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    name: Option<String>,
    owner: Option<String>,
    log: Option<String>,
    log_file: Option<PathBuf>,
    rescan_secs: Option<u64>,
    mdns: Option<bool>,
    mdns_interfaces: Option<Vec<String>>,
    kdeconnect: Option<bool>,
    kdeconnect_bind: Option<IpAddr>,
    localsend: Option<bool>,
    localsend_bind: Option<IpAddr>,
    localsend_port: Option<u16>,
    localsend_pin: Option<String>,
    /// Device id -> `HOST:PORT` addresses always tried for that device (where multicast is
    /// blocked).
    static_addresses: Option<BTreeMap<String, Vec<String>>>,
    inbox: Option<PathBuf>,
    /// Default percent of a share's files one peer update may delete before it is held.
    mass_delete_percent: Option<u8>,
    /// Seconds between version prunes.
    prune_secs: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub home: PathBuf,
    pub listen: SocketAddr,
    pub name: String,
    pub owner: String,
    pub log: String,
    pub log_file: Option<PathBuf>,
    pub rescan_interval: Duration,
    pub debounce: Duration,
    /// Announce and browse with mDNS. On by default for the daemon ([`Config::load`]); tests
    /// that build a `Config` themselves leave it off.
    pub mdns: bool,
    /// Interfaces for mDNS; empty: every non-loopback, up, multicast-capable interface.
    pub mdns_interfaces: Vec<String>,
    /// Talk to KDE Connect devices (phones): UDP discovery on 1716, TCP on 1716-1764. On by
    /// default for the daemon and the app ([`Config::load`]); tests that build a `Config`
    /// themselves leave it off, like mDNS (network safety: its discovery is a broadcast).
    pub kdeconnect: bool,
    /// Where KDE Connect listens. Unspecified (0.0.0.0, the default) listens everywhere and
    /// announces by broadcast; a specific address listens there only and never broadcasts
    /// (devices reach it by connecting or by a datagram to that address).
    pub kdeconnect_bind: IpAddr,
    /// Talk to LocalSend devices (phones of every kind): HTTPS and multicast discovery on
    /// [`Config::localsend_port`]. On by default for the daemon and the app; off in tests that
    /// build a `Config` themselves (network safety: its discovery is a multicast).
    pub localsend: bool,
    /// Where LocalSend listens. Unspecified (the default) listens everywhere and announces by
    /// multicast; a specific address listens there only and never multicasts (devices reach it
    /// by registering at that address).
    pub localsend_bind: IpAddr,
    /// LocalSend's TCP and UDP port (53317, what every LocalSend device uses by default).
    pub localsend_port: u16,
    /// A PIN LocalSend devices must give to send files or notes to this device.
    pub localsend_pin: Option<String>,
    /// Addresses from `ferry.toml` always tried for a device, besides those it remembers.
    pub static_addresses: HashMap<ferry_proto::DeviceId, Vec<SocketAddr>>,
    /// Where accepted one-shot sends land (created on the first accepted send).
    pub inbox: PathBuf,
    /// Default mass-delete threshold (percent of a share's files), per share overridable.
    pub mass_delete_percent: u8,
    pub prune_interval: Duration,
    /// Most wanted paths a pull pass plans at once ([`DEFAULT_PULL_WINDOW`]; not in
    /// ferry.toml: tests lower it to make small shares pull in windows).
    pub pull_window: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot create the home directory {path}: {source}")]
    Home { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid listen address {value:?}: expected IP:PORT, e.g. 0.0.0.0:{DEFAULT_PORT}")]
    Listen { value: String },
    #[error("invalid {what}: {message}")]
    Invalid { what: &'static str, message: String },
    /// A value of the file that parsed but is out of range or malformed: where it is.
    #[error("{} line {line}: {key}: {message}", .path.display())]
    InFile { path: PathBuf, line: usize, key: &'static str, message: String },
}

/// The home directory when none is given: `$XDG_DATA_HOME/ferry` (or the platform's equivalent).
pub fn default_home() -> PathBuf {
    directories::ProjectDirs::from("", "", "ferry")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".ferry-home"))
}

impl Config {
    /// Home only, for client commands that need the control socket and nothing else.
    pub fn home_from(overrides: &Overrides) -> PathBuf {
        overrides.home.clone().unwrap_or_else(default_home)
    }

    pub fn load(overrides: Overrides) -> Result<Config, ConfigError> {
        let home = Self::home_from(&overrides);
        ferry_fs::create_dirs_durable(&home).map_err(|source| ConfigError::Home { path: home.clone(), source })?;
        let path = home.join(CONFIG_FILE);
        let (file, text) = read_file_config(&path)?;
        // A value given on the command line or in the environment is not the file's fault.
        let overridden: Vec<&str> = [
            ("listen", overrides.listen.is_some()),
            ("name", overrides.name.is_some()),
            ("owner", overrides.owner.is_some()),
            ("rescan_secs", overrides.rescan_secs.is_some()),
            ("mdns_interfaces", !overrides.mdns_interfaces.is_empty()),
            ("inbox", overrides.inbox.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, o)| o.then_some(k))
        .collect();
        Self::resolve(home, overrides, file).map_err(|e| match file_key(&e) {
            Some(key) if !overridden.contains(&key) => match key_line(&text, key) {
                Some(line) => ConfigError::InFile { path, line, key, message: e.to_string() },
                None => e,
            },
            _ => e,
        })
    }

    /// The configuration from the flags and environment (`overrides`) over the file's values.
    fn resolve(home: PathBuf, overrides: Overrides, file: FileConfig) -> Result<Config, ConfigError> {
        let listen_raw = overrides.listen.or(file.listen).unwrap_or_else(|| format!("0.0.0.0:{DEFAULT_PORT}"));
        let listen = listen_raw.parse().map_err(|_| ConfigError::Listen { value: listen_raw.clone() })?;
        let name = overrides.name.or(file.name).unwrap_or_else(default_name);
        let owner = overrides.owner.or(file.owner).unwrap_or_else(default_owner);
        for (what, v) in [("device name", &name), ("owner", &owner)] {
            if v.trim().is_empty() || v.len() > ferry_proto::wire::MAX_NAME {
                return Err(ConfigError::Invalid {
                    what,
                    message: format!("must be 1 to {} bytes", ferry_proto::wire::MAX_NAME),
                });
            }
        }
        let rescan_secs = overrides.rescan_secs.or(file.rescan_secs).unwrap_or(DEFAULT_RESCAN.as_secs());
        if rescan_secs == 0 {
            return Err(ConfigError::Invalid { what: "rescan interval", message: "must be at least 1 second".into() });
        }
        let mass_delete_percent = file.mass_delete_percent.unwrap_or(ferry_engine::policy::MASS_DELETE_PERCENT);
        if !(1..=100).contains(&mass_delete_percent) {
            return Err(ConfigError::Invalid { what: "mass_delete_percent", message: "must be 1 to 100".into() });
        }
        let prune_secs = file.prune_secs.unwrap_or(DEFAULT_PRUNE.as_secs());
        if prune_secs == 0 {
            return Err(ConfigError::Invalid { what: "prune_secs", message: "must be at least 1 second".into() });
        }
        let mdns_interfaces = if overrides.mdns_interfaces.is_empty() {
            file.mdns_interfaces.unwrap_or_default()
        } else {
            overrides.mdns_interfaces
        };
        if let Some(bad) = mdns_interfaces.iter().find(|i| i.is_empty() || i.len() > 15 || i.contains('/')) {
            return Err(ConfigError::Invalid {
                what: "mDNS interface",
                message: format!("{bad:?} is not an interface name"),
            });
        }
        let mut static_addresses = HashMap::new();
        for (dev, addrs) in file.static_addresses.unwrap_or_default() {
            let id: ferry_proto::DeviceId = dev.parse().map_err(|e| ConfigError::Invalid {
                what: "static_addresses",
                message: format!("{dev:?} is not a device id: {e}"),
            })?;
            let mut list = Vec::new();
            for a in addrs {
                list.push(a.parse::<SocketAddr>().map_err(|_| ConfigError::Invalid {
                    what: "static_addresses",
                    message: format!("{a:?} is not IP:PORT"),
                })?);
            }
            static_addresses.insert(id, list);
        }
        Ok(Config {
            mdns: overrides.mdns.or(file.mdns).unwrap_or(true),
            kdeconnect: overrides.kdeconnect.or(file.kdeconnect).unwrap_or(true),
            kdeconnect_bind: overrides
                .kdeconnect_bind
                .or(file.kdeconnect_bind)
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            localsend: overrides.localsend.or(file.localsend).unwrap_or(true),
            localsend_bind: overrides
                .localsend_bind
                .or(file.localsend_bind)
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            localsend_port: overrides.localsend_port.or(file.localsend_port).unwrap_or(LOCALSEND_PORT),
            localsend_pin: check_pin(overrides.localsend_pin.or(file.localsend_pin))?,
            mdns_interfaces,
            static_addresses,
            mass_delete_percent,
            prune_interval: Duration::from_secs(prune_secs),
            pull_window: DEFAULT_PULL_WINDOW,
            home,
            listen,
            name,
            owner,
            log: overrides.log.or(file.log).unwrap_or_else(|| "info".into()),
            log_file: overrides.log_file.or(file.log_file),
            rescan_interval: Duration::from_secs(rescan_secs),
            debounce: DEFAULT_DEBOUNCE,
            inbox: match overrides.inbox.or(file.inbox) {
                Some(p) if p.is_absolute() => p,
                Some(p) => {
                    return Err(ConfigError::Invalid {
                        what: "inbox",
                        message: format!("{} is not an absolute path", p.display()),
                    });
                }
                None => default_inbox(),
            },
        })
    }

    pub fn socket_path(&self) -> PathBuf {
        socket_path(&self.home)
    }
}

pub fn socket_path(home: &Path) -> PathBuf {
    home.join("ferry.sock")
}

/// The file's values and its text (empty when there is no file).
fn read_file_config(path: &Path) -> Result<(FileConfig, String), ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map(|f| (f, text))
            .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((FileConfig::default(), String::new())),
        Err(source) => Err(ConfigError::Read { path: path.to_path_buf(), source }),
    }
}

/// The `ferry.toml` key a check of a value is about (`None` for errors that are not).
fn file_key(e: &ConfigError) -> Option<&'static str> {
    match e {
        ConfigError::Listen { .. } => Some("listen"),
        ConfigError::Invalid { what, .. } => Some(match *what {
            "device name" => "name",
            "rescan interval" => "rescan_secs",
            "mDNS interface" => "mdns_interfaces",
            other => other,
        }),
        _ => None,
    }
}

/// The line (from 1) where `key` is set in `text`: `key = ...` or a `[key]` table.
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
                || l.strip_prefix('[')
                    .and_then(|r| r.strip_prefix(key))
                    .is_some_and(|r| r.starts_with(']') || r.starts_with('.'))
        })
        .map(|i| i + 1)
}

/// `~/Downloads/Ferry` (the platform's download folder when it has one).
pub fn default_inbox() -> PathBuf {
    let dirs = directories::UserDirs::new();
    let downloads = dirs.as_ref().and_then(|d| d.download_dir().map(Path::to_path_buf));
    let home = dirs.as_ref().map(|d| d.home_dir().join("Downloads"));
    downloads.or(home).unwrap_or_else(|| PathBuf::from("Downloads")).join("Ferry")
}

fn default_name() -> String {
    let h = gethostname::gethostname().to_string_lossy().into_owned();
    if h.is_empty() { "ferry-device".into() } else { h }
}

fn default_owner() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "me".into())
}

/// Checks a LocalSend PIN from a flag, the environment or ferry.toml: empty means none.
fn check_pin(pin: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(pin) = pin.map(|p| p.trim().to_string()).filter(|p| !p.is_empty()) else { return Ok(None) };
    if pin.chars().count() > MAX_PIN || pin.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ConfigError::Invalid {
            what: "localsend_pin",
            message: format!("a PIN is 1 to {MAX_PIN} characters without spaces"),
        });
    }
    Ok(Some(pin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "name = \"from-file\"\nlisten = \"127.0.0.1:4000\"\n").unwrap();
        let c = Config::load(Overrides { home: Some(dir.path().into()), ..Default::default() }).unwrap();
        assert_eq!(c.name, "from-file");
        assert_eq!(c.listen, "127.0.0.1:4000".parse().unwrap());
        let c = Config::load(Overrides {
            home: Some(dir.path().into()),
            name: Some("from-flag".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.name, "from-flag");
        assert_eq!(c.rescan_interval, DEFAULT_RESCAN);
        assert!(c.mdns, "mDNS is on by default for the daemon");
    }

    #[test]
    fn mdns_flags_env_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let id = ferry_proto::DeviceId([1; 32]);
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            format!(
                "mdns = false\nmdns_interfaces = [\"eth0\"]\n[static_addresses]\n\"{id}\" = [\"10.1.2.3:22010\"]\n"
            ),
        )
        .unwrap();
        let c = Config::load(Overrides { home: Some(dir.path().into()), ..Default::default() }).unwrap();
        assert!(!c.mdns);
        assert_eq!(c.mdns_interfaces, vec!["eth0".to_string()]);
        assert_eq!(c.static_addresses[&id], vec!["10.1.2.3:22010".parse().unwrap()]);
        let c = Config::load(Overrides {
            home: Some(dir.path().into()),
            mdns: Some(true),
            mdns_interfaces: vec!["wlan0".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(c.mdns, "the flag wins over the file");
        assert_eq!(c.mdns_interfaces, vec!["wlan0".to_string()]);
        std::fs::write(dir.path().join(CONFIG_FILE), "[static_addresses]\nnope = [\"x\"]\n").unwrap();
        let e = Config::load(Overrides { home: Some(dir.path().into()), ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("static_addresses"), "{e}");
    }

    #[test]
    fn inbox_flag_file_and_default() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::load(Overrides { home: Some(dir.path().into()), ..Default::default() }).unwrap();
        assert!(c.inbox.ends_with("Ferry"), "{}", c.inbox.display());
        std::fs::write(dir.path().join(CONFIG_FILE), "inbox = \"/tmp/in-file\"\n").unwrap();
        let c = Config::load(Overrides { home: Some(dir.path().into()), ..Default::default() }).unwrap();
        assert_eq!(c.inbox, PathBuf::from("/tmp/in-file"));
        let c = Config::load(Overrides {
            home: Some(dir.path().into()),
            inbox: Some("/tmp/in-flag".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.inbox, PathBuf::from("/tmp/in-flag"));
        let e = Config::load(Overrides {
            home: Some(dir.path().into()),
            inbox: Some("relative".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("invalid inbox"), "{e}");
    }

    #[test]
    fn bad_config_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "nmae = 1\n").unwrap();
        let e = Config::load(Overrides { home: Some(dir.path().into()), ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("ferry.toml is not valid"), "{e}");
        let e = Config::load(Overrides {
            home: Some(tempfile::tempdir().unwrap().path().into()),
            listen: Some("nonsense".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(e, ConfigError::Listen { .. }));
    }

    #[test]
    fn a_value_out_of_range_names_the_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let home = || Overrides { home: Some(dir.path().into()), ..Default::default() };
        for (text, line, key) in [
            ("name = \"x\"\n\nmass_delete_percent = 0\n", 3, "mass_delete_percent"),
            ("# comment\n  rescan_secs = 0\n", 2, "rescan_secs"),
            ("listen = \"nowhere\"\n", 1, "listen"),
            ("mdns = true\n[static_addresses]\nnope = [\"x\"]\n", 2, "static_addresses"),
        ] {
            std::fs::write(dir.path().join(CONFIG_FILE), text).unwrap();
            let e = Config::load(home()).unwrap_err();
            let want = format!("{} line {line}: {key}: ", dir.path().join(CONFIG_FILE).display());
            assert!(e.to_string().starts_with(&want), "{e}");
        }
        // The same bad value from a flag is the flag's, not the file's.
        let e = Config::load(Overrides { rescan_secs: Some(0), ..home() }).unwrap_err();
        assert_eq!(e.to_string(), "invalid rescan interval: must be at least 1 second");
    }
}
