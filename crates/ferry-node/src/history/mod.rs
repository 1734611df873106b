//! File history on this device: versions of local edits and deletes (through snapshot links,
//! see [`ferry_fs::take_snapshot`] for what that can and cannot keep), restore, rewind, pruning
//! by each share's retention policy, and the override / revert / full-rescan modes.
//!
//! Every operation here that touches a share's files runs as a command on the share's actor
//! (`share_handle::ShareCommand`), the task that also scans and pulls, so they never race and
//! nothing else writes the index between their read and their commit. They write like a user
//! would (temp file, rename, fsync) and then ask the worker to rescan the paths, so a restore is
//! an ordinary local change that propagates to every device. The content they replace or remove
//! is archived first, and its snapshot link dropped so it is not archived twice.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ferry_engine::Entry;
use ferry_engine::history::{AtTime, Current, VersionInfo, content_at, parse_time, prune};
use ferry_engine::plans::plan_revert;
use ferry_engine::scan::{self, Counted, Snapshot};
use ferry_fs::{
    ArchiveMode, SnapshotOf, Taken, archive, chunk_file, drop_snapshot, link_snapshot, link_snapshots, take_snapshot,
};
use ferry_proto::{ChunkHash, DeviceId, FileKind, FileRecord, RelPath, ShareId, ShareMode};
use ferry_store::{LocalEntry, LocalMeta, LocalUpdate, ShareRecord, VersionReason, VersionRecord};
use time::OffsetDateTime;

use crate::api::*;
use crate::clock::now_ms;
use crate::context::{ApiResult, Context};
use crate::error::ShareError;
use crate::records;
use crate::share_handle::ShareCommand;
use crate::summary::LocalCounts;

mod remote;
mod rewind;

pub(crate) use rewind::{rewind, rewind_target};

/// A version id: the archive time in ns, made strictly increasing within this process so two
/// versions archived in the same nanosecond never share a key.
pub(crate) fn next_version_id() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = OffsetDateTime::now_utc().unix_timestamp_nanos().max(0) as u64;
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let id = now.max(last + 1);
        match LAST.compare_exchange(last, id, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return id,
            Err(cur) => last = cur,
        }
    }
}

fn version_record(
    share: ShareId,
    path: &RelPath,
    content: (u64, ChunkHash, i64, DeviceId),
    replaced_by: DeviceId,
    archive_path: String,
    reason: VersionReason,
) -> VersionRecord {
    let id = next_version_id();
    let (size, hash, mtime_ns, modified_by) = content;
    VersionRecord {
        share,
        path: path.clone(),
        id,
        archived_at_ms: (id / 1_000_000) as i64,
        size,
        hash,
        mtime_ns,
        modified_by,
        replaced_by,
        archive_path,
        reason,
    }
}

/// Scan hook (blocking, before the index commit): carries out the engine's consequences of
/// each scan update ([`scan::effect`]): versions of the local content it replaced or deleted,
/// taken from snapshot links; new snapshot links for new content; the summary's counts. `old`
/// reads our entry at a path as it was before the scan.
pub(crate) fn on_scan(
    root: &Path,
    share: ShareId,
    me: DeviceId,
    updates: &[scan::Update],
    old: &dyn Fn(&RelPath) -> Option<Entry>,
) -> (Vec<VersionRecord>, LocalCounts) {
    let mut versions = Vec::new();
    let mut counts = LocalCounts::default();
    let now = OffsetDateTime::now_utc();
    // New snapshot links are made together at the end (one check of the snapshot folder, no
    // removal where there was no link): each path appears once, after its own version was
    // taken above.
    let mut link = Vec::new();
    for u in updates {
        let path = &u.entry.record.path;
        let effect = scan::effect(u, old(path).as_ref(), me);
        match effect.counted {
            Some(Counted::Add) => counts.adds += 1,
            Some(Counted::Change) => counts.changes += 1,
            Some(Counted::Delete) => counts.deletes += 1,
            None => {}
        }
        if let Some(k) = effect.keep {
            let of = SnapshotOf { inode: k.inode, size: k.size, mtime_ns: k.mtime_ns };
            let archive_path = match take_snapshot(root, path, of, now) {
                Ok(Taken::Archived(ap)) => Some(ap),
                // Archived already by whoever replaced it (a restore, a rewind), or never linked.
                Ok(Taken::NoSnapshot) => None,
                // Empty content needs no copy (and is mostly a file caught between its
                // creation and its first write): no record.
                Ok(Taken::RewrittenInPlace) if k.size == 0 => None,
                // No copy here, but the version is known, and the devices that received the
                // change archived its content; a restore fetches it from them (`remote`).
                // Without this record a rewind would think the file did not exist before the
                // change, and move it away.
                Ok(Taken::RewrittenInPlace) => Some(VersionRecord::NOT_KEPT_HERE.to_string()),
                Err(e) => {
                    tracing::warn!(%path, "could not keep the previous content: {e}");
                    None
                }
            };
            if let Some(ap) = archive_path {
                let content = (k.size, k.hash, k.mtime_ns, k.modified_by);
                let reason = records::version_reason(k.reason);
                versions.push(version_record(share, path, content, k.replaced_by, ap, reason));
            }
        }
        match effect.snapshot {
            Snapshot::Keep => {}
            Snapshot::Link => link.push(path),
            Snapshot::Drop => {
                let _ = drop_snapshot(root, path);
            }
        }
    }
    if !link.is_empty()
        && let Err(e) = link_snapshots(root, link)
    {
        tracing::debug!("no snapshots: {e}");
    }
    (versions, counts)
}

/// Apply hook (blocking, after a peer's change is on disk): the snapshot now follows the new
/// content (the old one was archived by the apply itself).
pub(crate) fn after_apply(root: &Path, target: &FileRecord) {
    let res = if target.is_file() {
        link_snapshot(root, &target.path).map(|_| ())
    } else {
        drop_snapshot(root, &target.path)
    };
    if let Err(e) = res {
        tracing::debug!(path = %target.path, "snapshot: {e}");
    }
}

/// The archived copy of a version, checked to be a plain file inside the share's archive.
pub(crate) fn version_file(root: &Path, archive_path: &str) -> Result<PathBuf, ShareError> {
    let ok = archive_path.starts_with(ferry_fs::VERSIONS_DIR)
        && archive_path.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if !ok {
        return Err(ShareError::OutsideArchive(archive_path.to_string()));
    }
    let p = root.join(archive_path);
    match std::fs::symlink_metadata(&p) {
        Ok(m) if m.file_type().is_file() => Ok(p),
        Ok(_) => Err(ShareError::ArchivedNotAFile(p)),
        Err(source) => Err(ShareError::ArchivedGone { path: p, source }),
    }
}

/// Archives whatever file is at `rel` now (a version of `record_as`), returning its record.
#[allow(clippy::too_many_arguments)]
pub(crate) fn archive_as(
    root: &Path,
    share: ShareId,
    rel: &RelPath,
    record_as: &RelPath,
    entry: Option<&LocalEntry>,
    me: DeviceId,
    mode: ArchiveMode,
    reason: VersionReason,
) -> Result<Option<VersionRecord>, ShareError> {
    let Some(k) = ferry_fs::stat_known(root, rel)? else { return Ok(None) };
    if k.kind != FileKind::File {
        return Err(ShareError::NotAFileHere(rel.clone()));
    }
    let abs = ferry_fs::checked_path(root, rel)?;
    let c = chunk_file(&abs)?;
    let by = entry.filter(|e| e.record.hash == c.hash).map(|e| e.record.modified_by).unwrap_or(me);
    let _ = drop_snapshot(root, rel);
    let ap = archive(root, rel, OffsetDateTime::now_utc(), mode)?;
    Ok(Some(version_record(share, record_as, (c.size, c.hash, k.mtime_ns, by), me, ap, reason)))
}

/// Writes version `v`'s content at `rel` as a new change (mtime now), archiving what is there.
fn restore_blocking(
    root: &Path,
    share: ShareId,
    rel: &RelPath,
    v: &VersionRecord,
    entry: Option<&LocalEntry>,
    me: DeviceId,
) -> Result<Vec<VersionRecord>, ShareError> {
    let src = version_file(root, &v.archive_path)?;
    let mut out = Vec::new();
    let temp = ferry_fs::create_temp(root, rel)?;
    {
        let mut input =
            std::fs::File::open(&src).map_err(|source| ShareError::OpenArchived { path: src.clone(), source })?;
        let mut f = &temp.file;
        std::io::copy(&mut input, &mut f).map_err(|source| ShareError::CopyArchived { path: src.clone(), source })?;
    }
    let got = chunk_file(&temp.path)?;
    if got.hash != v.hash {
        return Err(ShareError::ArchivedChanged(src));
    }
    if let Some(rec) = archive_as(root, share, rel, rel, entry, me, ArchiveMode::Link, VersionReason::Replaced)? {
        out.push(rec);
    }
    let executable = entry.is_some_and(|e| e.record.executable && !e.record.deleted);
    let now_ns = OffsetDateTime::now_utc().unix_timestamp_nanos() as i64;
    ferry_fs::commit_temp(temp, root, rel, now_ns, executable)?;
    Ok(out)
}

/// Commits version records, then asks the worker to rescan `paths` (which makes them changes
/// that propagate).
async fn finish(
    inner: &Arc<Context>,
    share: ShareId,
    versions: Vec<VersionRecord>,
    paths: Vec<RelPath>,
) -> ApiResult<()> {
    if !versions.is_empty() {
        inner.db(move |s| s.commit_local(&share, &[], &versions).map(|_| ())).await?;
    }
    if let Some(h) = inner.shares.lock().unwrap().get(&share) {
        h.request_paths(paths);
    }
    Ok(())
}

fn info(v: &VersionRecord) -> VersionInfo {
    VersionInfo {
        path: v.path.clone(),
        id: v.id,
        archived_at_ms: v.archived_at_ms,
        // What the version costs on this device (retention's size cap): nothing if no copy.
        size: if v.kept_here() { v.size } else { 0 },
        mtime_ns: v.mtime_ns,
        hash: v.hash,
    }
}

pub(crate) fn version_dto(share: &ShareRecord, v: VersionRecord) -> VersionDto {
    VersionDto {
        id: v.id,
        id_text: v.id.to_string(),
        share: v.share.to_string(),
        path: v.path.to_string(),
        archived_at_ms: v.archived_at_ms,
        size: v.size,
        hash: v.hash.to_hex(),
        modified_by: v.modified_by.to_string(),
        replaced_by: v.replaced_by.to_string(),
        reason: format!("{:?}", v.reason).to_lowercase(),
        file: if v.kept_here() {
            Path::new(&share.path).join(&v.archive_path).display().to_string()
        } else {
            String::new()
        },
        kept_here: v.kept_here(),
    }
}

/// `ferry restore PATH [--version ID | --at TIME]`.
pub(crate) async fn restore(inner: &Arc<Context>, req: RestoreDto) -> ApiResult<RestoredDto> {
    let (share, rel) = inner.locate(&req.path).await?;
    let rel =
        rel.ok_or_else(|| ApiError::bad("give a file inside the share, not the share itself (see `ferry rewind`)"))?;
    let (id, r) = (share.id, rel.clone());
    let (versions, entry) = inner.db(move |s| Ok((s.versions(&id, &r)?, s.local_file(&id, &r)?))).await?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("no versions of {rel} are kept")));
    }
    let chosen = match (req.version, &req.at) {
        (Some(_), Some(_)) => return Err(ApiError::bad("give --version or --at, not both")),
        (Some(vid), None) => versions
            .iter()
            .find(|v| v.id == vid)
            .ok_or_else(|| ApiError::not_found(format!("{rel} has no version {vid} (see `ferry versions`)")))?,
        (None, Some(at)) => {
            let t = parse_time(at, now_ms()).map_err(ApiError::bad)?;
            let cur = entry
                .as_ref()
                .filter(|e| e.record.is_file())
                .map(|e| Current { mtime_ns: e.record.mtime_ns, hash: e.record.hash });
            let infos: Vec<VersionInfo> = versions.iter().map(info).collect();
            match content_at(cur.as_ref(), &infos, t) {
                AtTime::Version(vid) => versions.iter().find(|v| v.id == vid).expect("chosen from the list"),
                AtTime::Current => {
                    return Err(ApiError::new(ErrorCode::Conflict, format!("{rel} has not changed since then")));
                }
                AtTime::Absent => {
                    return Err(ApiError::not_found(format!("{rel} did not exist then (or no version of it is kept)")));
                }
            }
        }
        (None, None) => &versions[0],
    };
    let mut v = chosen.clone();
    if !v.kept_here() {
        let keepers = remote::keepers(inner, &share, &v).await;
        if keepers.is_empty() {
            return Err(ShareError::VersionNotHere { path: rel.clone(), version: v.id }.into());
        }
        v = remote::fetch(inner, &share, &v, &keepers).await?;
    }
    let (root, id, me, r, vv, e) =
        (PathBuf::from(&share.path), share.id, inner.id, rel.clone(), v.clone(), entry.clone());
    let archived = tokio::task::spawn_blocking(move || restore_blocking(&root, id, &r, &vv, e.as_ref(), me))
        .await
        .map_err(ShareError::from)
        .and_then(|r| r)?;
    crate::crash::point("restore.written");
    let current = archived.first().map(|a| Path::new(&share.path).join(&a.archive_path).display().to_string());
    finish(inner, share.id, archived, vec![rel.clone()]).await?;
    Ok(RestoredDto { share: share.id.to_string(), path: rel.to_string(), version: v.id, current_archived_as: current })
}

/// Prunes every share's versions by its retention policy, as of `now_ms`.
/// Each share is pruned by its actor (`ShareCommand::Prune`), so a version is never removed
/// while a restore or rewind of the same share is reading it. Shares not running are skipped.
pub(crate) async fn prune_all(inner: &Arc<Context>, now_ms: i64) -> ApiResult<Vec<PruneDto>> {
    let mut out = Vec::new();
    for share in inner.db(|s| s.shares()).await? {
        match inner.share_command(share.id, |r| ShareCommand::Prune(now_ms, r)).await {
            Err(e) if e.code == ErrorCode::Conflict => continue,
            res => out.push(res?),
        }
    }
    Ok(out)
}

/// Removes the versions of one share that its retention policy no longer keeps. Runs on the
/// share's actor.
pub(crate) async fn prune_share(inner: &Arc<Context>, id: ShareId, now_ms: i64) -> ApiResult<PruneDto> {
    let share = inner.db(move |s| s.share(&id)).await?.ok_or_else(|| ApiError::not_found("the share is gone"))?;
    let (settings, versions) = inner.db(move |s| Ok((s.share_settings(&id)?, s.share_versions(&id)?))).await?;
    let infos: Vec<VersionInfo> = versions.iter().map(info).collect();
    let drop = prune(&infos, settings.retention, now_ms);
    if drop.is_empty() {
        return Ok(PruneDto { share: id.to_string(), removed: 0, freed_bytes: 0 });
    }
    let by_key: HashMap<(RelPath, u64), VersionRecord> =
        versions.into_iter().map(|v| ((v.path.clone(), v.id), v)).collect();
    let doomed: Vec<VersionRecord> = drop.iter().filter_map(|k| by_key.get(k).cloned()).collect();
    let root = PathBuf::from(&share.path);
    // Records go first: a record whose file is gone would promise a restore that cannot happen;
    // a file without a record is only wasted space (and is removed right after).
    let keys = drop.clone();
    inner.db(move |s| s.remove_versions(&id, &keys)).await?;
    let freed = tokio::task::spawn_blocking(move || {
        let mut freed = 0;
        for v in &doomed {
            if let Ok(p) = version_file(&root, &v.archive_path) {
                match std::fs::remove_file(&p) {
                    Ok(()) => freed += v.size,
                    Err(e) => tracing::warn!(path = %p.display(), "could not prune: {e}"),
                }
            }
        }
        freed
    })
    .await
    .map_err(ShareError::from)?;
    tracing::info!(share = %id, removed = drop.len(), freed, "pruned versions");
    Ok(PruneDto { share: id.to_string(), removed: drop.len() as u64, freed_bytes: freed })
}

/// The background pruner: every `prune_interval`, until the node stops.
pub(crate) async fn prune_loop(inner: Arc<Context>) {
    let mut stop = inner.stop.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(inner.cfg.prune_interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = prune_all(&inner, now_ms()).await {
            tracing::warn!("pruning versions failed: {e}");
        }
    }
}

/// `ferry share override SHARE`: a send-only share makes every peer match this device.
pub(crate) async fn override_share(inner: &Arc<Context>, arg: &str) -> ApiResult<ModeActionDto> {
    let share = inner.resolve_share(arg).await?;
    if share.mode != ShareMode::SendOnly {
        return Err(ApiError::bad(format!(
            "{:?} is {}: override is for send-only shares (make the others match this device)",
            share.label,
            share.mode.as_str()
        )));
    }
    let (id, members, me) = (share.id, share.devices.clone(), inner.id);
    let now = OffsetDateTime::now_utc().unix_timestamp_nanos() as i64;
    let n = inner
        .db(move |s| {
            let local = s.local_files(&id)?;
            let meta: HashMap<RelPath, LocalMeta> = local.iter().map(|e| (e.record.path.clone(), e.meta)).collect();
            let local: HashMap<RelPath, FileRecord> =
                local.into_iter().map(|e| (e.record.path.clone(), e.record)).collect();
            let mut remotes = Vec::new();
            for d in &members {
                remotes
                    .push(s.remote_files(&id, d)?.into_iter().map(|r| (r.path.clone(), r)).collect::<HashMap<_, _>>());
            }
            let refs: Vec<&HashMap<RelPath, FileRecord>> = remotes.iter().collect();
            let plan = ferry_engine::plan_override(&local, &refs, me, now);
            let updates: Vec<LocalUpdate> = plan
                .into_iter()
                .map(|r| {
                    let meta = meta.get(&r.path).copied().unwrap_or_default();
                    LocalUpdate { entry: LocalEntry { record: r, meta }, new_seq: true }
                })
                .collect();
            let n = updates.len();
            if n > 0 {
                // The share actor publishes the new sequence after this command.
                s.commit_local(&id, &updates, &[])?;
            }
            Ok(n)
        })
        .await?;
    Ok(ModeActionDto { share: id.to_string(), mode: share.mode.as_str().into(), changed: n as u64 })
}

/// `ferry share revert SHARE`: a receive-only share drops its local changes and matches the
/// others. Changed and deleted files are marked as older than any peer's, so the worker's next
/// pull applies the peers' versions (archiving the local content first, like any apply); files
/// only this device has go to the history.
pub(crate) async fn revert_share(inner: &Arc<Context>, arg: &str) -> ApiResult<ModeActionDto> {
    let share = inner.resolve_share(arg).await?;
    if share.mode != ShareMode::ReceiveOnly {
        return Err(ApiError::bad(format!(
            "{:?} is {}: revert is for receive-only shares (drop local changes, match the others)",
            share.label,
            share.mode.as_str()
        )));
    }
    let (id, members) = (share.id, share.devices.clone());
    let (plan, local) = inner
        .db(move |s| {
            let mut remote_live = HashSet::new();
            for d in &members {
                remote_live.extend(s.remote_files(&id, d)?.into_iter().filter(|r| !r.deleted).map(|r| r.path));
            }
            let local: Vec<Entry> = s.local_files(&id)?.into_iter().map(records::into_entry).collect();
            let plan = plan_revert(&local, &remote_live);
            // Only the entries of the files to archive are needed from here on.
            let archive: HashSet<&RelPath> = plan.archive.iter().collect();
            let local: Vec<LocalEntry> =
                local.into_iter().filter(|e| archive.contains(&e.record.path)).map(records::local_entry).collect();
            Ok((plan, local))
        })
        .await?;
    let (root, me) = (PathBuf::from(&share.path), inner.id);
    let archived = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for e in &local {
            let path = &e.record.path;
            match archive_as(&root, id, path, path, Some(e), me, ArchiveMode::Move, VersionReason::Deleted) {
                Ok(v) => out.extend(v),
                Err(err) => tracing::warn!(%path, "revert: {err}"),
            }
        }
        out
    })
    .await
    .map_err(ShareError::from)?;
    let updates: Vec<LocalUpdate> = plan.updates.into_iter().map(records::local_update).collect();
    let n = updates.len() as u64;
    inner.db(move |s| s.commit_local(&id, &updates, &archived).map(|_| ())).await?;
    if let Some(h) = inner.shares.lock().unwrap().get(&id) {
        h.request_pull();
    }
    Ok(ModeActionDto { share: id.to_string(), mode: share.mode.as_str().into(), changed: n })
}
