//! The facade for history: versions, restore, rewind, pruning, conflicts and their resolution.

use crate::api::*;
use crate::context::ApiResult;

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
        crate::history::restore(&self.inner, req).await
    }

    /// Puts a share (or a folder in it) back as it was at a moment; `dry_run` only plans.
    pub async fn rewind(&self, req: RewindReqDto) -> ApiResult<RewindDto> {
        crate::history::rewind(&self.inner, req).await
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
        crate::conflicts::resolve(&self.inner, req).await
    }
}
