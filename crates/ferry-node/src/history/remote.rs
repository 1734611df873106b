//! History that spans the devices of a share: versions this device knows of but holds no copy
//! of ([`VersionRecord::NOT_KEPT_HERE`]: the file was rewritten in place, `echo more >> f`, so
//! the snapshot that would have kept the old bytes changed with the file) are fetched from a
//! connected device of the share that keeps them: the device that received the change archived
//! the old content when it applied it.
//!
//! Every byte from the other device is checked: the fetched file must have exactly the
//! version's size and whole-file hash before it enters this device's archive. Nothing is
//! written outside `.ferry/` of the share: the bytes go to a temp file there and are moved into
//! the archive, and the version's record then names that copy.

use std::path::PathBuf;
use std::sync::Arc;

use ferry_proto::wire::MAX_BLOCK;
use ferry_store::{ShareRecord, VersionRecord};
use time::OffsetDateTime;

use crate::context::Context;
use crate::error::ShareError;
use crate::link::PeerLink;

/// The connected members of `share` that say they keep `v`'s content, in a stable order.
/// One small round trip each (a request for no bytes).
pub(crate) async fn keepers(ctx: &Arc<Context>, share: &ShareRecord, v: &VersionRecord) -> Vec<Arc<PeerLink>> {
    let mut out = Vec::new();
    for d in &share.devices {
        let Some(peer) = ctx.peer(d) else { continue };
        if peer.fetch_version_block(share.id, &v.path, v.hash, 0, 0).await.is_ok() {
            out.push(peer);
        }
    }
    out
}

/// Fetches `v` from the first of `keepers` that serves it whole, into this device's archive,
/// and commits its record with the new archive path. Returns the updated record and the
/// device it came from.
pub(crate) async fn fetch(
    ctx: &Arc<Context>,
    share: &ShareRecord,
    v: &VersionRecord,
    keepers: &[Arc<PeerLink>],
) -> Result<VersionRecord, ShareError> {
    let mut last = None;
    for peer in keepers {
        match fetch_from(share, v, peer).await {
            Ok(archive_path) => {
                let mut kept = v.clone();
                kept.archive_path = archive_path;
                let (id, rec) = (share.id, kept.clone());
                ctx.db(move |s| s.commit_local(&id, &[], &[rec]).map(|_| ())).await?;
                tracing::info!(path = %v.path, version = v.id, from = %peer.id.short(), "fetched an old version");
                return Ok(kept);
            }
            Err(e) => {
                tracing::warn!(path = %v.path, from = %peer.id.short(), "could not fetch an old version: {e}");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| ShareError::VersionNotHere { path: v.path.clone(), version: v.id }))
}

/// Fetches the whole content of `v` from `peer` into a temp file in `.ferry/`, checks its size
/// and hash, and moves it into the archive. Returns the archive path.
async fn fetch_from(share: &ShareRecord, v: &VersionRecord, peer: &PeerLink) -> Result<String, ShareError> {
    let root = PathBuf::from(&share.path);
    let r = root.clone();
    let temp = tokio::task::spawn_blocking(move || ferry_fs::create_fetched_temp(&r)).await??;
    let temp = Arc::new(temp);
    let mut offset = 0u64;
    while offset < v.size {
        let len = (v.size - offset).min(MAX_BLOCK as u64) as u32;
        let data = peer
            .fetch_version_block(share.id, &v.path, v.hash, offset, len)
            .await
            .map_err(|reason| ShareError::VersionFetch { path: v.path.clone(), device: peer.id, reason })?;
        let t = temp.clone();
        tokio::task::spawn_blocking(move || std::os::unix::fs::FileExt::write_all_at(&t.file, &data, offset)).await??;
        offset += len as u64;
    }
    let (path, hash, size, device) = (v.path.clone(), v.hash, v.size, peer.id);
    tokio::task::spawn_blocking(move || {
        temp.file.sync_all()?;
        let got = ferry_fs::chunk_file(&temp.path)?;
        if got.hash != hash || got.size != size {
            let reason = "its bytes do not match the version's hash".to_string();
            return Err(ShareError::VersionFetch { path, device, reason });
        }
        // The temp file is renamed away; dropping it afterwards finds nothing to remove.
        Ok(ferry_fs::archive_from(&root, &temp.path, &path, OffsetDateTime::now_utc())?)
    })
    .await?
}
