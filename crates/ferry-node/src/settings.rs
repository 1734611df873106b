//! User settings the app edits: device name, owner, listen address, mDNS discovery and the
//! inbox for received files, written to the home's `ferry.toml` (other keys in the file are
//! kept), plus first-run setup.
//!
//! Name and owner apply at once (new connections and pairing requests carry them; connected
//! peers see them on their next connection); the listen address, mDNS and the inbox apply at
//! the next start (the DTO carries both the saved and the running value).
//! `configured` is false until name and owner were saved once: the app shows its first-run
//! screen until then.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::api::ApiError;
use crate::context::ApiResult;

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct SettingsDto {
    pub name: String,
    pub owner: String,
    /// The configured listen address (IP:PORT) and the one bound now (they differ for port 0).
    pub listen: String,
    pub listening_on: String,
    /// False until name and owner were saved once (first run).
    pub configured: bool,
    pub config_file: String,
    /// mDNS discovery as saved (used from the next start) and as running now (an environment
    /// override such as `FERRY_MDNS=0` wins over the file).
    #[serde(default)]
    pub mdns: bool,
    #[serde(default)]
    pub mdns_now: bool,
    /// KDE Connect (phones) as saved (next start) and as running now.
    #[serde(default)]
    pub kdeconnect: bool,
    #[serde(default)]
    pub kdeconnect_now: bool,
    /// LocalSend as saved (next start) and as running now, and whether a PIN is asked of
    /// LocalSend senders (saved).
    #[serde(default)]
    pub localsend: bool,
    #[serde(default)]
    pub localsend_now: bool,
    #[serde(default)]
    pub localsend_pin: bool,
    /// Where received files land, as saved (absolute path) and as used now.
    #[serde(default)]
    pub inbox: String,
    #[serde(default)]
    pub inbox_now: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct SettingsUpdateDto {
    pub name: String,
    pub owner: String,
    /// IP:PORT; `None` keeps the current one.
    pub listen: Option<String>,
    /// mDNS discovery on or off (next start); `None` keeps it.
    #[serde(default)]
    pub mdns: Option<bool>,
    /// KDE Connect on or off (next start); `None` keeps it.
    #[serde(default)]
    pub kdeconnect: Option<bool>,
    /// LocalSend on or off (next start); `None` keeps it.
    #[serde(default)]
    pub localsend: Option<bool>,
    /// The PIN LocalSend senders must give (next start): `Some("")` removes it; `None` keeps it.
    #[serde(default)]
    pub localsend_pin: Option<String>,
    /// The inbox for received files, an absolute path (next start); `None` keeps it.
    #[serde(default)]
    pub inbox: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct FirstRunDto {
    pub name: String,
    pub owner: String,
    /// The default shared folder, created if missing and shared unless a share already uses it.
    pub folder: String,
}

fn check_name(what: &str, v: &str) -> ApiResult<String> {
    let v = v.trim();
    if v.is_empty() || v.len() > ferry_proto::wire::MAX_NAME {
        return Err(ApiError::bad(format!("{what} must be 1 to {} bytes", ferry_proto::wire::MAX_NAME)));
    }
    Ok(v.to_string())
}

pub(crate) fn read_table(path: &Path) -> ApiResult<toml::Table> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.parse::<toml::Table>().map_err(|e| ApiError::bad(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(toml::Table::new()),
        Err(e) => Err(ApiError::internal(format!("{}: {e}", path.display()))),
    }
}

/// Writes the file atomically (temp, fsync, rename), so a crash leaves the old or the new file.
pub(crate) fn write_table(path: &Path, table: &toml::Table) -> ApiResult<()> {
    use std::io::Write;
    let text = toml::to_string(table).map_err(ApiError::internal)?;
    let tmp = path.with_extension("toml.tmp");
    let io = |e: std::io::Error| ApiError::internal(format!("{}: {e}", path.display()));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A checked update, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Update {
    pub name: String,
    pub owner: String,
    pub listen: Option<String>,
    pub mdns: Option<bool>,
    pub kdeconnect: Option<bool>,
    pub localsend: Option<bool>,
    pub localsend_pin: Option<String>,
    pub inbox: Option<String>,
}

pub(crate) fn check_update(req: &SettingsUpdateDto) -> ApiResult<Update> {
    let name = check_name("device name", &req.name)?;
    let owner = check_name("owner", &req.owner)?;
    let listen = match req.listen.as_deref().map(str::trim) {
        Some(l) => Some(
            l.parse::<std::net::SocketAddr>()
                .map_err(|_| ApiError::bad(format!("listen address {l:?} must be IP:PORT, e.g. 0.0.0.0:22010")))?
                .to_string(),
        ),
        None => None,
    };
    let inbox = match req.inbox.as_deref().map(str::trim) {
        Some(i) => {
            let p = Path::new(i);
            if !p.is_absolute() {
                return Err(ApiError::bad(format!("the inbox {i:?} must be an absolute path")));
            }
            Some(p.display().to_string())
        }
        None => None,
    };
    let localsend_pin = match req.localsend_pin.as_deref().map(str::trim) {
        Some(p) if p.chars().count() > 32 || p.chars().any(|c| c.is_control() || c.is_whitespace()) => {
            return Err(ApiError::bad("a LocalSend PIN is 1 to 32 characters without spaces (empty removes it)"));
        }
        p => p.map(str::to_string),
    };
    Ok(Update {
        name,
        owner,
        listen,
        mdns: req.mdns,
        kdeconnect: req.kdeconnect,
        localsend: req.localsend,
        localsend_pin,
        inbox,
    })
}

/// Writes a checked update into the file's table; keys not in the update are kept.
pub(crate) fn apply_update(table: &mut toml::Table, u: &Update) {
    table.insert("name".into(), u.name.clone().into());
    table.insert("owner".into(), u.owner.clone().into());
    if let Some(l) = &u.listen {
        table.insert("listen".into(), l.clone().into());
    }
    if let Some(m) = u.mdns {
        table.insert("mdns".into(), m.into());
    }
    if let Some(k) = u.kdeconnect {
        table.insert("kdeconnect".into(), k.into());
    }
    if let Some(l) = u.localsend {
        table.insert("localsend".into(), l.into());
    }
    match u.localsend_pin.as_deref() {
        Some("") => {
            table.remove("localsend_pin");
        }
        Some(p) => {
            table.insert("localsend_pin".into(), p.into());
        }
        None => {}
    }
    if let Some(i) = &u.inbox {
        table.insert("inbox".into(), i.clone().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CONFIG_FILE;
    use std::path::PathBuf;

    fn req(listen: Option<&str>, mdns: Option<bool>, inbox: Option<&str>) -> SettingsUpdateDto {
        SettingsUpdateDto {
            name: " Desk ".into(),
            owner: "ann".into(),
            listen: listen.map(Into::into),
            mdns,
            kdeconnect: None,
            localsend: None,
            localsend_pin: None,
            inbox: inbox.map(Into::into),
        }
    }

    #[test]
    fn mdns_and_inbox_are_written_and_other_keys_kept() {
        let mut t: toml::Table = "log = \"debug\"\nmdns = true\n".parse().unwrap();
        let u = check_update(&req(None, Some(false), Some("/srv/in"))).unwrap();
        apply_update(&mut t, &u);
        assert_eq!(t["name"].as_str(), Some("Desk"), "names are trimmed");
        assert_eq!(t["mdns"].as_bool(), Some(false));
        assert_eq!(t["inbox"].as_str(), Some("/srv/in"));
        assert_eq!(t["log"].as_str(), Some("debug"), "unrelated keys stay");
        assert!(!t.contains_key("listen"));
        // The written file loads as the node's configuration.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), toml::to_string(&t).unwrap()).unwrap();
        let c = crate::Config::load(crate::Overrides { home: Some(dir.path().into()), ..Default::default() }).unwrap();
        assert!(!c.mdns);
        assert_eq!(c.inbox, PathBuf::from("/srv/in"));
    }

    #[test]
    fn none_keeps_mdns_and_inbox() {
        let mut t: toml::Table = "mdns = false\ninbox = \"/a\"\n".parse().unwrap();
        apply_update(&mut t, &check_update(&req(Some("127.0.0.1:4000"), None, None)).unwrap());
        assert_eq!(t["mdns"].as_bool(), Some(false));
        assert_eq!(t["inbox"].as_str(), Some("/a"));
        assert_eq!(t["listen"].as_str(), Some("127.0.0.1:4000"));
    }

    #[test]
    fn a_relative_inbox_and_bad_listen_are_refused() {
        let e = check_update(&req(None, None, Some("Downloads"))).unwrap_err();
        assert!(e.message.contains("absolute"), "{}", e.message);
        let e = check_update(&req(Some("nope"), None, None)).unwrap_err();
        assert!(e.message.contains("IP:PORT"), "{}", e.message);
    }
}
