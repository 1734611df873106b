//! `ferry rewind SHARE[/SUBDIR] --to TIME [--dry-run]`: every file of a share (or folder) back
//! to what it held at a moment, as new changes that sync to every device.
//!
//! Invariant: a rewind never removes or replaces a file whose content at that time it cannot
//! produce. The engine's plan says what each path held then ([`plan_rewind`]); here each step
//! that needs old content finds where it is: this device's archive, or a connected device of
//! the share that keeps it (history spans the devices of a share, see `remote`). A step whose
//! content is on neither becomes `keep`, with the reason, and is left alone. The dry run and the
//! real run make the same plan; the real run fetches first and only then touches the files, so
//! a fetch that fails leaves its file as it was (and says so in `errors`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use ferry_engine::history::{Current, RewindStep, VersionInfo, parse_time, plan_rewind};
use ferry_fs::ArchiveMode;
use ferry_proto::RelPath;
use ferry_store::{LocalEntry, ShareRecord, VersionReason, VersionRecord};

use super::{archive_as, finish, info, remote, restore_blocking};
use crate::api::*;
use crate::clock::now_ms;
use crate::context::{ApiResult, Context};
use crate::error::ShareError;
use crate::link::PeerLink;

/// What a `keep` step says.
const CANNOT_PRODUCE: &str =
    "its content at that time is not on this device and no connected device keeps it: left as it is";

/// The share and optional folder a rewind's target names (`SHARE[/SUBDIR]` or an absolute path).
pub(crate) async fn rewind_target(
    inner: &Arc<Context>,
    req: &RewindReqDto,
) -> ApiResult<(ShareRecord, Option<RelPath>)> {
    Ok(if req.target.starts_with('/') {
        inner.locate(&req.target).await?
    } else {
        let (name, sub) = match req.target.split_once('/') {
            Some((n, s)) if !s.trim_matches('/').is_empty() => {
                (n, Some(RelPath::new(s.trim_matches('/')).map_err(|e| ApiError::bad(e.to_string()))?))
            }
            Some((n, _)) => (n, None),
            None => (req.target.as_str(), None),
        };
        (inner.resolve_share(name).await?, sub)
    })
}

/// What the rewind reads: the live entries, their current content, and the versions by path.
struct Inputs {
    entries: HashMap<RelPath, LocalEntry>,
    current: HashMap<RelPath, Current>,
    by_path: HashMap<RelPath, Vec<VersionInfo>>,
    records: HashMap<(RelPath, u64), VersionRecord>,
}

async fn inputs(inner: &Arc<Context>, share: &ShareRecord, sub: Option<&RelPath>) -> ApiResult<Inputs> {
    let id = share.id;
    let (entries, versions) = inner.db(move |s| Ok((s.local_files(&id)?, s.share_versions(&id)?))).await?;
    let within = |p: &RelPath| sub.is_none_or(|s| p == s || p.is_within(s));
    let entries: HashMap<RelPath, LocalEntry> =
        entries.into_iter().filter(|e| within(&e.record.path)).map(|e| (e.record.path.clone(), e)).collect();
    let current = entries
        .values()
        .filter(|e| e.record.is_file())
        .map(|e| (e.record.path.clone(), Current { mtime_ns: e.record.mtime_ns, hash: e.record.hash }))
        .collect();
    let mut by_path: HashMap<RelPath, Vec<VersionInfo>> = HashMap::new();
    let mut records = HashMap::new();
    for v in versions.into_iter().filter(|v| within(&v.path)) {
        by_path.entry(v.path.clone()).or_default().push(info(&v));
        records.insert((v.path.clone(), v.id), v);
    }
    Ok(Inputs { entries, current, by_path, records })
}

/// One step of the plan as carried out: the engine's step and, for old content this device
/// has no copy of, the connected devices that keep it.
struct Planned {
    step: RewindStep,
    keepers: Vec<Arc<PeerLink>>,
}

/// The engine's plan, each step checked for where its content comes from. Returns the steps to
/// show (with `keep` for those that cannot be done) and those to carry out.
async fn locate(
    inner: &Arc<Context>,
    share: &ShareRecord,
    input: &Inputs,
    plan: Vec<RewindStep>,
) -> ApiResult<(Vec<RewindStepDto>, Vec<Planned>)> {
    let mut shown = Vec::new();
    let mut todo = Vec::new();
    for step in plan {
        let path = step_path(&step).clone();
        let RewindStep::Restore { version, .. } = &step else {
            shown.push(RewindStepDto {
                action: "remove".into(),
                path: path.to_string(),
                version: None,
                from: None,
                note: None,
            });
            todo.push(Planned { step, keepers: Vec::new() });
            continue;
        };
        let version = *version;
        let action = if input.current.contains_key(&path) { "restore" } else { "undelete" };
        let v = &input.records[&(path.clone(), version)];
        let keepers = if v.kept_here() { Vec::new() } else { remote::keepers(inner, share, v).await };
        if !v.kept_here() && keepers.is_empty() {
            let note = Some(CANNOT_PRODUCE.to_string());
            shown.push(RewindStepDto {
                action: "keep".into(),
                path: path.to_string(),
                version: Some(version),
                from: None,
                note,
            });
            continue;
        }
        let from = match keepers.first() {
            Some(k) => Some(device_name(inner, k).await),
            None => None,
        };
        shown.push(RewindStepDto {
            action: action.into(),
            path: path.to_string(),
            version: Some(version),
            from,
            note: None,
        });
        todo.push(Planned { step, keepers });
    }
    Ok((shown, todo))
}

async fn device_name(inner: &Arc<Context>, peer: &PeerLink) -> String {
    let id = peer.id;
    match inner.db(move |s| s.device(&id)).await {
        Ok(Some(d)) => d.name,
        _ => id.short(),
    }
}

fn step_path(step: &RewindStep) -> &RelPath {
    match step {
        RewindStep::Restore { path, .. } | RewindStep::Remove { path } => path,
    }
}

pub(crate) async fn rewind(inner: &Arc<Context>, req: RewindReqDto) -> ApiResult<RewindDto> {
    let (share, sub) = rewind_target(inner, &req).await?;
    let t = parse_time(&req.to, now_ms()).map_err(ApiError::bad)?;
    let mut input = inputs(inner, &share, sub.as_ref()).await?;
    let plan = plan_rewind(&input.current, &input.by_path, t);
    let (steps, todo) = locate(inner, &share, &input, plan).await?;
    let mut errors = Vec::new();
    if !req.dry_run && !todo.is_empty() {
        // Fetch first: a step whose content did not arrive is not carried out at all.
        let mut ready = Vec::new();
        for p in todo {
            if let RewindStep::Restore { path, version } = &p.step
                && !p.keepers.is_empty()
            {
                let key = (path.clone(), *version);
                match remote::fetch(inner, &share, &input.records[&key], &p.keepers).await {
                    Ok(kept) => drop(input.records.insert(key, kept)),
                    Err(e) => {
                        errors.push(format!("{path}: {e}"));
                        continue;
                    }
                }
            }
            ready.push(p.step);
        }
        let (versions, errs) = carry_out(inner, &share, input, ready.clone()).await?;
        errors.extend(errs);
        finish(inner, share.id, versions, ready.iter().map(|s| step_path(s).clone()).collect()).await?;
    }
    Ok(RewindDto { share: share.id.to_string(), to_ms: t, dry_run: req.dry_run, steps, errors })
}

/// Carries out the steps on disk (blocking pool): old content restored (what it replaces
/// archived first), files created since moved into the history. Returns the version records
/// to commit and the steps that failed.
async fn carry_out(
    inner: &Arc<Context>,
    share: &ShareRecord,
    input: Inputs,
    steps: Vec<RewindStep>,
) -> ApiResult<(Vec<VersionRecord>, Vec<String>)> {
    let (root, me, id) = (PathBuf::from(&share.path), inner.id, share.id);
    let Inputs { entries, records, .. } = input;
    let done = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let mut errs = Vec::new();
        for step in &steps {
            let res = match step {
                RewindStep::Restore { path, version } => {
                    let v = &records[&(path.clone(), *version)];
                    restore_blocking(&root, id, path, v, entries.get(path), me)
                }
                RewindStep::Remove { path } => {
                    let entry = entries.get(path);
                    archive_as(&root, id, path, path, entry, me, ArchiveMode::Move, VersionReason::Deleted)
                        .map(|v| v.into_iter().collect())
                }
            };
            match res {
                Ok(v) => out.extend(v),
                Err(e) => errs.push(format!("{}: {e}", step_path(step))),
            }
        }
        (out, errs)
    })
    .await
    .map_err(ShareError::from)?;
    Ok(done)
}
