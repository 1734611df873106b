//! The facade for shares: add, invite, list, remove, rescan, policies and mode actions.

use std::path::Path;

use ferry_proto::{ShareId, ShareMode};
use ferry_store::ShareRecord;

use crate::api::*;
use crate::context::{ApiResult, Context};

use crate::share_handle::ShareCommand;

use super::Node;

impl Node {
    pub async fn share_add(&self, req: ShareAddDto) -> ApiResult<ShareDto> {
        let inner = &self.inner;
        let mode: ShareMode = match &req.mode {
            Some(m) => m.parse().map_err(ApiError::bad)?,
            None => ShareMode::SendReceive,
        };
        let path = inner.validate_share_path(Path::new(&req.path), None).await?;
        let label = req
            .label
            .filter(|l| !l.trim().is_empty())
            .unwrap_or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or("share".into()));
        let rec = ShareRecord {
            id: ShareId::random(),
            label,
            path: path.display().to_string(),
            mode,
            devices: vec![],
            paused: false,
        };
        crate::share::create_share(inner, rec.clone()).await?;
        Ok(share_dto(&rec))
    }

    pub async fn share_invite(&self, req: InviteDto) -> ApiResult<ShareDto> {
        let inner = &self.inner;
        let mut share = inner.resolve_share(&req.share).await?;
        let dev = inner.resolve_device(&req.device).await?;
        let did = dev.id;
        if self.inner.db(move |s| s.kde_device(&did)).await?.is_some() {
            return Err(ApiError::bad(format!(
                "{} is a KDE Connect device: it can get notes and files (`ferry note send`, `ferry send`), \
                 never a share",
                dev.name
            )));
        }
        if !dev.paired {
            return Err(ApiError::bad(format!("{} is not paired; pair it first", dev.name)));
        }
        if !share.devices.contains(&dev.id) {
            share.devices.push(dev.id);
            let s = share.clone();
            inner.db(move |st| st.put_share(&s)).await?;
            inner.refresh_members(&share);
        }
        crate::peer::announce_to(inner, dev.id).await;
        Ok(share_dto(&share))
    }

    pub async fn share_list(&self) -> ApiResult<Vec<ShareDto>> {
        Ok(self.inner.db(|s| s.shares()).await?.iter().map(share_dto).collect())
    }

    /// Stops syncing a share and forgets it; the folder and its files stay as they are.
    pub async fn share_remove(&self, arg: &str) -> ApiResult<ShareDto> {
        let inner = &self.inner;
        let share = inner.resolve_share(arg).await?;
        let handle = inner.shares.lock().unwrap().remove(&share.id);
        if let Some(h) = handle {
            h.stop().await;
        }
        let id = share.id;
        inner.db(move |s| s.remove_share(&id)).await?;
        // Snapshot links only serve versioning of a synced share; left behind they would keep
        // old contents alive. The version archive itself stays (it is the user's data).
        let snapshots = Path::new(&share.path).join(ferry_proto::FERRY_DIR).join("snapshots");
        if let Err(e) = std::fs::remove_dir_all(&snapshots)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %snapshots.display(), "could not remove snapshot links: {e}");
        }
        for d in &share.devices {
            crate::peer::announce_to(inner, *d).await;
        }
        Ok(share_dto(&share))
    }

    /// Asks every share to rescan now (also what the periodic safety-net rescan does).
    pub fn rescan_all(&self) {
        for h in self.inner.shares.lock().unwrap().values() {
            h.request_full_scan();
        }
    }

    /// Rescans one share (or all); `full` re-hashes every file.
    pub async fn rescan(&self, req: RescanDto) -> ApiResult<()> {
        let ids: Vec<ShareId> = match &req.share {
            Some(s) => vec![self.inner.resolve_share(s).await?.id],
            None => self.inner.shares.lock().unwrap().keys().copied().collect(),
        };
        for id in ids {
            if let Some(h) = self.inner.shares.lock().unwrap().get(&id) {
                if req.full { h.request_rehash() } else { h.request_full_scan() }
            }
        }
        Ok(())
    }

    /// Changes a share's conflict policy, retention or mass-delete threshold (what is given).
    pub async fn share_policy(&self, req: SharePolicyDto) -> ApiResult<ShareSettingsDto> {
        let inner = &self.inner;
        let share = inner.resolve_share(&req.share).await?;
        let policy: Option<ferry_proto::ConflictPolicy> =
            req.conflict_policy.as_deref().map(str::parse).transpose().map_err(ApiError::bad)?;
        let retention =
            req.retention.as_deref().map(ferry_proto::Retention::parse).transpose().map_err(ApiError::bad)?;
        if let Some(p) = req.mass_delete_percent
            && !(1..=100).contains(&p)
        {
            return Err(ApiError::bad("the mass-delete threshold is a percent, 1 to 100"));
        }
        let id = share.id;
        let pct = req.mass_delete_percent;
        let st = inner
            .db(move |s| {
                s.update_share_settings(&id, |st| {
                    if let Some(p) = policy {
                        st.conflict_policy = p;
                    }
                    if let Some(r) = retention {
                        st.retention = r;
                    }
                    if pct.is_some() {
                        st.mass_delete_percent = pct;
                    }
                })
            })
            .await?;
        Ok(settings_dto(inner, &share, st))
    }

    /// Send-only shares: make every other device match this one.
    pub async fn share_override(&self, share: &str) -> ApiResult<ModeActionDto> {
        let share = self.inner.resolve_share(share).await?;
        self.inner.share_command(share.id, ShareCommand::Override).await
    }

    /// Receive-only shares: drop local changes (into the history) and match the others.
    pub async fn share_revert(&self, share: &str) -> ApiResult<ModeActionDto> {
        let share = self.inner.resolve_share(share).await?;
        self.inner.share_command(share.id, ShareCommand::Revert).await
    }

    /// Clears a share's "needs attention" flag.
    pub async fn share_ack(&self, share: &str) -> ApiResult<ShareSettingsDto> {
        let inner = &self.inner;
        let share = inner.resolve_share(share).await?;
        let id = share.id;
        let st = inner.db(move |s| s.update_share_settings(&id, |st| st.attention = None)).await?;
        Ok(settings_dto(inner, &share, st))
    }
}
fn settings_dto(inner: &Context, share: &ShareRecord, st: ferry_store::ShareSettings) -> ShareSettingsDto {
    ShareSettingsDto {
        share: share.id.to_string(),
        label: share.label.clone(),
        conflict_policy: st.conflict_policy.as_str().into(),
        retention: st.retention.to_string(),
        mass_delete_percent: st.mass_delete_percent.unwrap_or(inner.cfg.mass_delete_percent),
        attention: st.attention,
    }
}

pub(crate) fn share_dto(s: &ShareRecord) -> ShareDto {
    ShareDto {
        id: s.id.to_string(),
        label: s.label.clone(),
        path: s.path.clone(),
        mode: s.mode.as_str().into(),
        devices: s.devices.iter().map(|d| d.to_string()).collect(),
        paused: s.paused,
    }
}
