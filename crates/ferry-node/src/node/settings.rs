//! The facade for settings and first-run setup.

use std::path::{Path, PathBuf};

use crate::api::*;
use crate::context::ApiResult;

use crate::config::CONFIG_FILE;
use crate::context::Profile;
use crate::settings::{
    FirstRunDto, SettingsDto, SettingsUpdateDto, apply_update, check_update, read_table, write_table,
};

use super::Node;

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
            kdeconnect: table.get("kdeconnect").and_then(|v| v.as_bool()).unwrap_or(self.inner.cfg.kdeconnect),
            kdeconnect_now: self.inner.kde.running(),
            localsend: table.get("localsend").and_then(|v| v.as_bool()).unwrap_or(self.inner.cfg.localsend),
            localsend_now: self.inner.ls.running(),
            localsend_pin: table.get("localsend_pin").and_then(|v| v.as_str()).is_some_and(|p| !p.is_empty()),
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
        self.inner.endpoint.set_refusal_notice(&u.name);
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
            kdeconnect: None,
            localsend: None,
            localsend_pin: None,
            inbox: None,
        })
        .await?;
        let folder = PathBuf::from(&req.folder);
        if !folder.is_absolute() {
            return Err(ApiError::bad(format!("{} must be an absolute path", folder.display())));
        }
        ferry_fs::create_dirs_durable(&folder).map_err(|e| ApiError::bad(format!("{}: {e}", folder.display())))?;
        let canon = folder.canonicalize().map_err(|e| ApiError::bad(format!("{}: {e}", folder.display())))?;
        if let Some(existing) = self.share_list().await?.into_iter().find(|s| Path::new(&s.path) == canon) {
            return Ok(existing);
        }
        self.share_add(ShareAddDto { path: canon.display().to_string(), label: None, mode: None }).await
    }
}
