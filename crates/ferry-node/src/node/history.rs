//! The facade for history: versions, restore, rewind, pruning, conflicts and their resolution.
//! Everything that changes a share is a command to its actor (the only writer of its index).

use crate::api::*;
use crate::context::ApiResult;
use crate::share_handle::ShareCommand;

use super::Node;

impl Node {
    pub async fn versions(&self, path: &str) -> ApiResult<Vec<VersionDto>> {
        let inner = &self.inner;
        let (share, rel) = inner.locate(path).await?;
        let id = share.id;
        let list = match rel.clone() {
            Some(rel) => inner.db(move |s| s.versions(&id, &rel)).await?,
            None => inner.db(move |s| s.share_versions(&id)).await?,
        };
        Ok(list.into_iter().map(|v| crate::history::version_dto(&share, v)).collect())
    }

    /// Brings a version of a file back as a new local change.
    pub async fn restore(&self, req: RestoreDto) -> ApiResult<RestoredDto> {
        let (share, _) = self.inner.locate(&req.path).await?;
        self.inner.share_command(share.id, |r| ShareCommand::Restore(req, r)).await
    }

    /// Puts a share (or a folder in it) back as it was at a moment; `dry_run` only plans.
    pub async fn rewind(&self, req: RewindReqDto) -> ApiResult<RewindDto> {
        let (share, _) = crate::history::rewind_target(&self.inner, &req).await?;
        self.inner.share_command(share.id, |r| ShareCommand::Rewind(req, r)).await
    }

    /// Prunes every share's versions by its retention policy as of `now_ms` (default: now).
    /// Tests pass a future `now_ms` instead of waiting for time to pass.
    pub async fn prune_versions(&self, now_ms: Option<i64>) -> ApiResult<Vec<PruneDto>> {
        crate::history::prune_all(&self.inner, now_ms.unwrap_or_else(crate::clock::now_ms)).await
    }

    pub async fn conflicts(&self, q: ConflictsQuery) -> ApiResult<Vec<ConflictDto>> {
        crate::conflicts::list(&self.inner, q.share.as_deref()).await
    }

    pub async fn resolve(&self, req: ResolveDto) -> ApiResult<ResolvedDto> {
        let (share, _) = self.inner.locate(&req.path).await?;
        self.inner.share_command(share.id, |r| ShareCommand::Resolve(req, r)).await
    }
}
