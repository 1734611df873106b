//! User settings the app edits: device name, owner and listen address, written to the home's
//! `ferry.toml` (other keys in the file are kept), plus first-run setup.
//!
//! Name and owner apply at once (new connections and pairing requests carry them; connected
//! peers see them on their next connection); the listen address applies at the next start.
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
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct SettingsUpdateDto {
    pub name: String,
    pub owner: String,
    /// IP:PORT; `None` keeps the current one.
    pub listen: Option<String>,
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
        })
    }

    /// Saves name, owner (live at once) and listen address (at the next start) to ferry.toml.
    pub async fn save_settings(&self, req: SettingsUpdateDto) -> ApiResult<SettingsDto> {
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
        let path = self.config_file();
        let (n, o) = (name.clone(), owner.clone());
        tokio::task::spawn_blocking(move || {
            let mut table = read_table(&path)?;
            table.insert("name".into(), n.into());
            table.insert("owner".into(), o.into());
            if let Some(l) = listen {
                table.insert("listen".into(), l.into());
            }
            write_table(&path, &table)
        })
        .await
        .map_err(ApiError::internal)??;
        *self.inner.profile.write().unwrap() = Profile { name, owner };
        self.settings().await
    }

    /// First-run setup: saves name and owner, creates the default folder and shares it (unless
    /// a share already covers it). Returns the default folder's share.
    pub async fn first_run(&self, req: FirstRunDto) -> ApiResult<ShareDto> {
        self.save_settings(SettingsUpdateDto { name: req.name, owner: req.owner, listen: None }).await?;
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
