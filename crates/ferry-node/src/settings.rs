//! User settings the app edits: device name, owner, listen address, mDNS discovery and the
//! inbox for received files, written to the home's `ferry.toml` (other keys in the file are
//! kept), plus first-run setup.
//!
//! Name and owner apply at once (new connections and pairing requests carry them; connected
//! peers see them on their next connection); the listen address, mDNS and the inbox apply at
//! the next start (the DTO carries both the saved and the running value).
//! `configured` is false until name and owner were saved once: the app shows its first-run
//! screen until then.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::api::{ApiError, ShareAddDto, ShareDto};
use crate::config::CONFIG_FILE;
use crate::node::{ApiResult, Node};

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

/// Name and owner as they are now (they can change while the node runs).
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    pub name: String,
    pub owner: String,
}

fn check_name(what: &str, v: &str) -> ApiResult<String> {
    let v = v.trim();
    if v.is_empty() || v.len() > ferry_proto::wire::MAX_NAME {
        return Err(ApiError::bad(format!("{what} must be 1 to {} bytes", ferry_proto::wire::MAX_NAME)));
    }
    Ok(v.to_string())
}

fn read_table(path: &Path) -> ApiResult<toml::Table> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.parse::<toml::Table>().map_err(|e| ApiError::bad(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(toml::Table::new()),
        Err(e) => Err(ApiError::internal(format!("{}: {e}", path.display()))),
    }
}

/// Writes the file atomically (temp, fsync, rename), so a crash leaves the old or the new file.
fn write_table(path: &Path, table: &toml::Table) -> ApiResult<()> {
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
struct Update {
    name: String,
    owner: String,
    listen: Option<String>,
    mdns: Option<bool>,
    inbox: Option<String>,
}

fn check_update(req: &SettingsUpdateDto) -> ApiResult<Update> {
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
    Ok(Update { name, owner, listen, mdns: req.mdns, inbox })
}

/// Writes a checked update into the file's table; keys not in the update are kept.
fn apply_update(table: &mut toml::Table, u: &Update) {
    table.insert("name".into(), u.name.clone().into());
    table.insert("owner".into(), u.owner.clone().into());
    if let Some(l) = &u.listen {
        table.insert("listen".into(), l.clone().into());
    }
    if let Some(m) = u.mdns {
        table.insert("mdns".into(), m.into());
    }
    if let Some(i) = &u.inbox {
        table.insert("inbox".into(), i.clone().into());
    }
}

impl Node {
    pub(crate) fn profile(&self) -> Profile {
        self.inner.profile.read().unwrap().clone()
    }

    fn config_file(&self) -> PathBuf {
        self.inner.cfg.home.join(CONFIG_FILE)
    }

    pub async fn settings(&self) -> ApiResult<SettingsDto> {
        let path = self.config_file();
        let p = path.clone();
        let table = tokio::task::spawn_blocking(move || read_table(&p)).await.map_err(ApiError::internal)??;
        let profile = self.profile();
        Ok(SettingsDto {
            name: profile.name,
            owner: profile.owner,
            listen: table
                .get("listen")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| self.inner.cfg.listen.to_string()),
            listening_on: self.inner.listen.to_string(),
            configured: table.contains_key("name") && table.contains_key("owner"),
            config_file: path.display().to_string(),
            mdns: table.get("mdns").and_then(|v| v.as_bool()).unwrap_or(self.inner.cfg.mdns),
            mdns_now: self.inner.cfg.mdns,
            inbox: table
                .get("inbox")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| self.inner.cfg.inbox.display().to_string()),
            inbox_now: self.inner.cfg.inbox.display().to_string(),
        })
    }

    /// Saves name, owner (live at once), listen address, mDNS and inbox (at the next start) to
    /// ferry.toml.
    pub async fn save_settings(&self, req: SettingsUpdateDto) -> ApiResult<SettingsDto> {
        let u = check_update(&req)?;
        let path = self.config_file();
        let w = u.clone();
        tokio::task::spawn_blocking(move || {
            let mut table = read_table(&path)?;
            apply_update(&mut table, &w);
            write_table(&path, &table)
        })
        .await
        .map_err(ApiError::internal)??;
        *self.inner.profile.write().unwrap() = Profile { name: u.name, owner: u.owner };
        self.settings().await
    }

    /// First-run setup: saves name and owner, creates the default folder and shares it (unless
    /// a share already covers it). Returns the default folder's share.
    pub async fn first_run(&self, req: FirstRunDto) -> ApiResult<ShareDto> {
        self.save_settings(SettingsUpdateDto {
            name: req.name,
            owner: req.owner,
            listen: None,
            mdns: None,
            inbox: None,
        })
        .await?;
        let folder = PathBuf::from(&req.folder);
        if !folder.is_absolute() {
            return Err(ApiError::bad(format!("{} must be an absolute path", folder.display())));
        }
        std::fs::create_dir_all(&folder).map_err(|e| ApiError::bad(format!("{}: {e}", folder.display())))?;
        let canon = folder.canonicalize().map_err(|e| ApiError::bad(format!("{}: {e}", folder.display())))?;
        if let Some(existing) = self.share_list().await?.into_iter().find(|s| Path::new(&s.path) == canon) {
            return Ok(existing);
        }
        self.share_add(ShareAddDto { path: canon.display().to_string(), label: None, mode: None }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(listen: Option<&str>, mdns: Option<bool>, inbox: Option<&str>) -> SettingsUpdateDto {
        SettingsUpdateDto {
            name: " Desk ".into(),
            owner: "ann".into(),
            listen: listen.map(Into::into),
            mdns,
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
