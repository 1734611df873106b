//! The mass-delete guard: a peer's update that would delete more than a share's threshold of its
//! files at once (more than [`ferry_engine::policy::MASS_DELETE_MIN`] files, and more than
//! `mass_delete_percent` of them) is held: those deletions are not applied, a prompt asks the user
//! (`ferry pending`), and the rest of the update goes on. Accepting applies them at the next
//! pull. Refusing keeps the local files and republishes them as new versions, so the devices
//! that deleted them get them back, and marks the share as needing attention until
//! acknowledged (`ferry share ack`).

use std::collections::HashMap;
use std::sync::Arc;

use ferry_engine::Action;
use ferry_proto::{FileKind, FileRecord, RelPath};
use ferry_store::{LocalEntry, LocalUpdate, PromptKind, ShareRecord};

use crate::api::ApiError;
use crate::context::{ApiResult, Context};

/// A peer's burst of deletes may reach us in several index updates (its scanner commits as the
/// events come); deletions applied this recently count towards the guard's threshold, so a
/// burst cannot slip through in slices. At most the threshold's worth of a burst is applied
/// before the rest is held (and what was applied is in the version history).
const BURST_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Pull hook: removes held deletions from `wanted` (and raises the prompt) when they trip the
/// guard. `live_files` counts the live files of the local index; `local` holds our entries at
/// (at least) the wanted paths. Returns how many were held.
pub(crate) async fn hold_mass_delete(
    inner: &Arc<Context>,
    share: &ShareRecord,
    live_files: usize,
    local: &HashMap<RelPath, LocalEntry>,
    wanted: &mut HashMap<RelPath, (FileRecord, Action)>,
) -> ApiResult<usize> {
    let deletes: Vec<RelPath> = wanted
        .iter()
        .filter(|(p, (r, _))| r.deleted && local.get(*p).is_some_and(|e| e.record.is_file()))
        .map(|(p, _)| p.clone())
        .collect();
    let id = share.id;
    let settings = inner.db(move |s| s.share_settings(&id)).await?;
    let percent = settings.mass_delete_percent.unwrap_or(inner.cfg.mass_delete_percent);
    if deletes.is_empty() || inner.summaries.guard_is_quiet(id) {
        return Ok(0);
    }
    let recent = inner.summaries.recent_remote_deletes(id, BURST_WINDOW) as usize;
    if !ferry_engine::mass_delete_trips(live_files + recent, deletes.len() + recent, percent) {
        return Ok(0);
    }
    if settings.mass_delete_allowed {
        inner.db(move |s| s.update_share_settings(&id, |st| st.mass_delete_allowed = false)).await?;
        inner.summaries.quiet_guard(id, BURST_WINDOW);
        tracing::info!(share = %id, deletes = deletes.len(), "applying an allowed mass delete");
        return Ok(0);
    }
    let by = wanted[&deletes[0]].0.modified_by;
    for p in &deletes {
        wanted.remove(p);
    }
    let prompts = inner.db(|s| s.prompts()).await?;
    let open = prompts.iter().any(|p| matches!(&p.kind, PromptKind::MassDelete { share: s, .. } if *s == id));
    if !open {
        tracing::warn!(share = %id, deletes = deletes.len(), recent, live_files, "holding a mass delete for the user");
        let kind = PromptKind::MassDelete {
            share: id,
            label: share.label.clone(),
            deletes: deletes.len() as u64,
            files: live_files as u64,
        };
        crate::context::add_prompt(inner, by, kind).await?;
    }
    Ok(deletes.len())
}

/// The user's answer to a mass-delete prompt.
pub(crate) async fn answer(
    inner: &Arc<Context>,
    share: ferry_proto::ShareId,
    accept: bool,
    deletes: u64,
) -> ApiResult<()> {
    let _exists = inner.db(move |s| s.share(&share)).await?.ok_or_else(|| ApiError::not_found("the share is gone"))?;
    if accept {
        inner.db(move |s| s.update_share_settings(&share, |st| st.mass_delete_allowed = true)).await?;
    } else {
        let note = format!(
            "refused a peer's deletion of {deletes} files on {}; local files kept and sent back (`ferry share ack` clears this)",
            crate::clock::fmt_ms(crate::clock::now_ms())
        );
        inner
            .db(move |s| {
                s.update_share_settings(&share, |st| {
                    st.attention = Some(note);
                    st.mass_delete_allowed = false;
                })
            })
            .await?;
        inner.share_command(share, crate::share_handle::ShareCommand::Republish).await?;
    }
    if let Some(h) = inner.shares.lock().unwrap().get(&share) {
        h.request_pull();
    }
    Ok(())
}

/// Gives every local file a peer has a newer deletion of a version that supersedes it, so the
/// file comes back on that peer. Runs on the share's actor (`ShareCommand::Republish`), which
/// publishes the new sequence afterwards.
pub(crate) async fn republish(inner: &Arc<Context>, share: ferry_proto::ShareId) -> ApiResult<()> {
    let share = inner.db(move |s| s.share(&share)).await?.ok_or_else(|| ApiError::not_found("the share is gone"))?;
    if !share.mode.sends() {
        return Ok(());
    }
    let (id, members, me) = (share.id, share.devices.clone(), inner.id);
    inner
        .db(move |s| {
            let local = s.local_files(&id)?;
            // Tests hold this point to show that no other write can land between the read and
            // the commit below (tests/tests/writer.rs).
            crate::fault::point("republish.after_read");
            let mut updates = Vec::new();
            for d in &members {
                let remote: HashMap<RelPath, FileRecord> =
                    s.remote_files(&id, d)?.into_iter().map(|r| (r.path.clone(), r)).collect();
                for e in
                    local.iter().filter(|e| e.record.is_file() || e.record.kind == FileKind::Dir && !e.record.deleted)
                {
                    let Some(r) = remote.get(&e.record.path) else { continue };
                    let newer = matches!(
                        r.version.compare(&e.record.version),
                        ferry_proto::VersionOrdering::Greater | ferry_proto::VersionOrdering::Concurrent
                    );
                    if r.deleted && newer && !updates.iter().any(|u: &LocalUpdate| u.entry.record.path == e.record.path)
                    {
                        let record = ferry_engine::override_record(&e.record, r, me);
                        updates.push(LocalUpdate { entry: LocalEntry { record, meta: e.meta }, new_seq: true });
                    }
                }
            }
            if !updates.is_empty() {
                s.commit_local(&id, &updates, &[])?;
            }
            Ok(())
        })
        .await?;
    Ok(())
}
