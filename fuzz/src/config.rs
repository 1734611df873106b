//! Target `config`: `ferry.toml` as a person (or a broken editor) leaves it, loaded by
//! [`Config::load`] from a scratch home, exactly as the daemon loads it at start.
//!
//! Asserts: no panic; a file that does not parse is a `Parse` error naming the file; what is
//! accepted holds the limits `load` promises (names 1..=`MAX_NAME` bytes and not blank,
//! intervals of at least a second, a mass-delete percent in 1..=100, an absolute inbox, mDNS
//! interface names that can be interface names).

use std::path::PathBuf;
use std::sync::OnceLock;

use ferry_node::config::{CONFIG_FILE, ConfigError};
use ferry_node::{Config, Overrides};
use ferry_proto::wire::MAX_NAME;

/// One scratch home per process, under the temp dir (fuzzing runs one input at a time).
fn home() -> &'static PathBuf {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| std::env::temp_dir().join(format!("ferry-fuzz-config-{}", std::process::id())))
}

pub fn check(data: &[u8]) {
    let home = home();
    std::fs::create_dir_all(home).expect("scratch home");
    std::fs::write(home.join(CONFIG_FILE), data).expect("write ferry.toml");
    match Config::load(Overrides { home: Some(home.clone()), ..Default::default() }) {
        Ok(c) => {
            for v in [&c.name, &c.owner] {
                assert!(!v.trim().is_empty() && v.len() <= MAX_NAME, "{v:?}");
            }
            assert!(c.rescan_interval.as_secs() >= 1 && c.prune_interval.as_secs() >= 1);
            assert!((1..=100).contains(&c.mass_delete_percent));
            assert!(c.inbox.is_absolute(), "{}", c.inbox.display());
            assert!(c.mdns_interfaces.iter().all(|i| !i.is_empty() && i.len() <= 15 && !i.contains('/')));
        }
        Err(ConfigError::Parse { path, message }) => {
            assert!(path.ends_with(CONFIG_FILE) && !message.is_empty());
        }
        Err(_) => {}
    }
}
