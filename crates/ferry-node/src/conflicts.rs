//! Conflict copies: listing them with both sides' device, time and size, and settling one.
//!
//! A conflict copy is an ordinary synced file named `NAME.sync-conflict-YYYYMMDD-HHMMSS-<device
//! short id>.EXT` (see [`ferry_fs::conflict_name`]); the device in the name wrote the content in
//! the copy. Settling one is a local change like any other, so the choice propagates: the loser
//! is archived as a version of NAME (never destroyed), the copy disappears everywhere, and NAME
//! holds the winner.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_fs::{ArchiveMode, rename_within};
use ferry_proto::{DeviceId, RelPath};
use ferry_store::{LocalEntry, ShareRecord, VersionReason};

use crate::api::*;
use crate::context::{ApiResult, Context};
use crate::error::ShareError;

const MARK: &str = ".sync-conflict-";

/// A parsed conflict copy name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyName {
    pub original: RelPath,
    /// `YYYYMMDD-HHMMSS`, UTC.
    pub stamp: String,
    /// The short id of the device whose content the copy holds.
    pub device: String,
}

/// Recognises `STEM.sync-conflict-YYYYMMDD-HHMMSS-DEVICE[.EXT]`.
pub(crate) fn parse_copy(rel: &RelPath) -> Option<CopyName> {
    let name = rel.file_name();
    let at = name.find(MARK)?;
    let stem = &name[..at];
    let rest = &name[at + MARK.len()..];
    let (stamp, rest) = (rest.get(..15)?, rest.get(15..)?);
    let ok_stamp = stamp.len() == 15
        && stamp.as_bytes()[8] == b'-'
        && stamp.bytes().enumerate().all(|(i, b)| i == 8 || b.is_ascii_digit());
    let rest = rest.strip_prefix('-')?;
    let (device, ext) = match rest.split_once('.') {
        Some((d, e)) => (d, Some(e)),
        None => (rest, None),
    };
    if !ok_stamp || stem.is_empty() || device.is_empty() || !device.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let orig_name = match ext {
        Some(e) => format!("{stem}.{e}"),
        None => stem.to_string(),
    };
    Some(CopyName {
        original: rel.with_file_name(&orig_name).ok()?,
        stamp: stamp.to_string(),
        device: device.to_string(),
    })
}

/// `YYYYMMDD-HHMMSS` as ms since the epoch.
fn stamp_ms(stamp: &str) -> Option<i64> {
    let fmt = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    time::PrimitiveDateTime::parse(stamp, &fmt).ok().map(|t| (t.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64)
}

async fn device_name(inner: &Arc<Context>, short: &str) -> (String, String) {
    if inner.id.short() == short {
        return (inner.id.to_string(), format!("{} (this device)", inner.cfg.name));
    }
    let devices = inner.db(|s| s.devices()).await.unwrap_or_default();
    match devices.into_iter().find(|d| d.id.short() == short) {
        Some(d) => (d.id.to_string(), d.name),
        None => (short.to_string(), short.to_string()),
    }
}

async fn describe_device(inner: &Arc<Context>, id: &DeviceId) -> String {
    if *id == inner.id {
        return format!("{} (this device)", inner.cfg.name);
    }
    let id = *id;
    inner.db(move |s| s.device(&id)).await.ok().flatten().map(|d| d.name).unwrap_or_else(|| id.short())
}

/// `ferry conflicts [SHARE]`.
pub(crate) async fn list(inner: &Arc<Context>, share: Option<&str>) -> ApiResult<Vec<ConflictDto>> {
    let shares = match share {
        Some(s) => vec![inner.resolve_share(s).await?],
        None => inner.db(|s| s.shares()).await?,
    };
    let mut out = Vec::new();
    for sh in shares {
        let id = sh.id;
        let entries = inner.db(move |s| s.local_files(&id)).await?;
        let by_path: std::collections::HashMap<&RelPath, &LocalEntry> =
            entries.iter().map(|e| (&e.record.path, e)).collect();
        for e in entries.iter().filter(|e| e.record.is_file()) {
            let Some(c) = parse_copy(&e.record.path) else { continue };
            let (copy_device, copy_device_name) = device_name(inner, &c.device).await;
            let current = by_path.get(&c.original).filter(|o| o.record.is_file());
            let (cur_dev, cur_name) = match current {
                Some(o) => {
                    (Some(o.record.modified_by.to_string()), Some(describe_device(inner, &o.record.modified_by).await))
                }
                None => (None, None),
            };
            out.push(ConflictDto {
                share: sh.id.to_string(),
                share_label: sh.label.clone(),
                path: c.original.to_string(),
                copy: e.record.path.to_string(),
                copy_device,
                copy_device_name,
                copy_time_ms: stamp_ms(&c.stamp).unwrap_or(e.record.mtime_ns / 1_000_000),
                copy_size: e.record.size,
                current_device: cur_dev,
                current_device_name: cur_name,
                current_time_ms: current.map(|o| o.record.mtime_ns / 1_000_000),
                current_size: current.map(|o| o.record.size),
            });
        }
    }
    Ok(out)
}

/// Which copy's content wins a resolve (`None`: the current file wins), by `--keep`:
/// `both` (none loses), `local`/`remote` (which device's content; one copy only), or a copy named
/// by name or path.
fn pick_winner(
    keep: &str,
    copies: &[ConflictDto],
    me: &str,
    share_path: &str,
    original: &RelPath,
) -> ApiResult<Option<ConflictDto>> {
    match keep {
        "both" => Ok(None),
        "local" | "remote" => {
            if copies.len() > 1 {
                return Err(ApiError::new(
                    ErrorCode::Ambiguous,
                    format!("{original} has {} conflict copies: name the one to keep (--keep COPY)", copies.len()),
                ));
            }
            let c = &copies[0];
            let copy_is_local = c.copy_device == me;
            Ok(if (keep == "local") == copy_is_local { Some(c.clone()) } else { None })
        }
        other => {
            let want = Path::new(other);
            let name = want.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let found = copies.iter().find(|c| {
                c.copy == other
                    || Path::new(&c.copy).file_name().is_some_and(|n| n.to_string_lossy() == name)
                    || Path::new(share_path).join(&c.copy) == want
            });
            Ok(Some(found.cloned().ok_or_else(|| {
                ApiError::bad(format!("--keep must be local, remote, both or one of the copies of {original}"))
            })?))
        }
    }
}

/// `ferry resolve PATH --keep local|remote|both|COPY`.
pub(crate) async fn resolve(inner: &Arc<Context>, req: ResolveDto) -> ApiResult<ResolvedDto> {
    let (share, rel) = inner.locate(&req.path).await?;
    let rel = rel.ok_or_else(|| ApiError::bad("give the conflicted file (or one of its copies)"))?;
    let original = parse_copy(&rel).map(|c| c.original).unwrap_or(rel.clone());
    let all = list(inner, Some(&share.id.to_string())).await?;
    let copies: Vec<ConflictDto> = all.into_iter().filter(|c| c.path == original.as_str()).collect();
    if copies.is_empty() {
        return Err(ApiError::not_found(format!("{original} has no conflict copies (see `ferry conflicts`)")));
    }
    let keep = req.keep.as_str();
    let winner = pick_winner(keep, &copies, &inner.id.to_string(), &share.path, &original)?;
    let id = share.id;
    let entries: Vec<LocalEntry> = inner.db(move |s| s.local_files(&id)).await?;
    let root = PathBuf::from(&share.path);
    let me_id = inner.id;
    let orig = original.clone();
    let both = keep == "both";
    let sh: ShareRecord = share.clone();
    let copies2 = copies.clone();
    let winner2 = winner.clone();
    let (versions, touched, renamed) = tokio::task::spawn_blocking(move || -> Result<_, ShareError> {
        let entry = |p: &RelPath| entries.iter().find(|e| &e.record.path == p);
        let mut versions = Vec::new();
        let mut touched = vec![orig.clone()];
        let mut renamed = Vec::new();
        for c in &copies2 {
            let cp = RelPath::new(&c.copy)?;
            touched.push(cp.clone());
            if both {
                let (stem, ext) = split(orig.file_name());
                let stamp = parse_copy(&cp).map(|p| p.stamp).unwrap_or_default();
                let dev = c.copy_device_name.replace(" (this device)", "").replace('/', "_");
                let name = match ext {
                    Some(e) => format!("{stem} (from {dev} {stamp}).{e}"),
                    None => format!("{stem} (from {dev} {stamp})"),
                };
                let to = cp.with_file_name(&name)?;
                let _ = ferry_fs::drop_snapshot(&root, &cp);
                rename_within(&root, &cp, &to)?;
                touched.push(to.clone());
                renamed.push(to.to_string());
                continue;
            }
            let wins = winner2.as_ref().is_some_and(|w| w.copy == c.copy);
            if wins {
                // The current file loses: archive it, then the copy takes its name.
                if let Some(v) = crate::history::archive_as(
                    &root,
                    sh.id,
                    &orig,
                    &orig,
                    entry(&orig),
                    me_id,
                    ArchiveMode::Move,
                    VersionReason::Conflict,
                )? {
                    versions.push(v);
                }
                let _ = ferry_fs::drop_snapshot(&root, &cp);
                rename_within(&root, &cp, &orig)?;
            } else if let Some(v) = crate::history::archive_as(
                &root,
                sh.id,
                &cp,
                &orig,
                entry(&cp),
                me_id,
                ArchiveMode::Move,
                VersionReason::Conflict,
            )? {
                versions.push(v);
            }
        }
        Ok((versions, touched, renamed))
    })
    .await
    .map_err(ShareError::from)
    .and_then(|r| r)?;
    let archived = versions.len() as u64;
    if !versions.is_empty() {
        inner.db(move |s| s.commit_local(&id, &[], &versions).map(|_| ())).await?;
    }
    if let Some(h) = inner.shares.lock().unwrap().get(&id) {
        h.request_paths(touched);
    }
    let kept = match (&winner, keep) {
        (_, "both") => "both".to_string(),
        (Some(w), _) => w.copy.clone(),
        (None, _) => original.to_string(),
    };
    Ok(ResolvedDto { share: id.to_string(), path: original.to_string(), kept, archived, renamed })
}

fn split(name: &str) -> (&str, Option<&str>) {
    match name.rfind('.') {
        Some(i) if i > 0 && i + 1 < name.len() => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_names() {
        let r = |s: &str| RelPath::new(s).unwrap();
        let c = parse_copy(&r("a/b.sync-conflict-20260102-030405-ABCDEFG.txt")).unwrap();
        assert_eq!(c.original, r("a/b.txt"));
        assert_eq!(c.device, "ABCDEFG");
        assert_eq!(stamp_ms(&c.stamp), Some(1_767_323_045_000));
        assert_eq!(parse_copy(&r("Makefile.sync-conflict-20260102-030405-ABCDEFG")).unwrap().original, r("Makefile"));
        assert_eq!(
            parse_copy(&r("x/a.tar.sync-conflict-20260102-030405-ABCDEFG.gz")).unwrap().original,
            r("x/a.tar.gz")
        );
        assert!(parse_copy(&r("b.txt")).is_none());
        assert!(parse_copy(&r("b.sync-conflict-2026-ABC.txt")).is_none());
        assert!(parse_copy(&r(".sync-conflict-20260102-030405-ABCDEFG")).is_none());
    }
}
