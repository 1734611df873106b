//! The mass-delete guard: a peer's update that would delete more than a share's threshold of its
//! files at once (more than [`ferry_engine::policy::MASS_DELETE_MIN`] files, and more than
//! `mass_delete_percent` of them) is held: those deletions are not applied, a prompt asks the user
//! (`ferry pending`), and the rest of the update goes on. Accepting applies them at the next
//! pull. Refusing keeps the local files and republishes them as new versions, so the devices
//! that deleted them get them back, and marks the share as needing attention until
//! acknowledged (`ferry share ack`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ferry_engine::Action;
use ferry_engine::guard::{GuardDecision, GuardInput, MassDeleteGuard, blocked_by_held, wanted_deletes};
use ferry_engine::plans::plan_republish;
use ferry_proto::{FileRecord, RelPath};
use ferry_store::{LocalEntry, PromptKind, ShareRecord};

use crate::api::ApiError;
use crate::context::{ApiResult, Context};
use crate::records;

/// Pull hook: asks the share's guard ([`MassDeleteGuard::check`]) about the wanted deletions,
/// then carries out its decision: removes held deletions from `wanted` (and raises the prompt),
/// or uses up the user's allowance. `live_files` counts the live files of the local index;
/// `local` holds our entries at (at least) the wanted paths. Returns how many were held.
pub(crate) async fn hold_mass_delete(
    inner: &Arc<Context>,
    share: &ShareRecord,
    guard: &Mutex<MassDeleteGuard>,
    live_files: usize,
    local: &HashMap<RelPath, LocalEntry>,
    wanted: &mut HashMap<RelPath, (FileRecord, Action)>,
) -> ApiResult<usize> {
    let deletes = wanted_deletes(wanted.values().map(|(r, _)| r), |p| local.get(p).is_some_and(|e| e.record.is_file()));
    if deletes.is_empty() {
        return Ok(0); // (the engine's first answer too; this saves the reads below)
    }
    let id = share.id;
    let (settings, prompts) = inner.db(move |s| Ok((s.share_settings(&id)?, s.prompts()?))).await?;
    let input = GuardInput {
        live_files,
        percent: settings.mass_delete_percent.unwrap_or(inner.cfg.mass_delete_percent),
        allowed: settings.mass_delete_allowed,
        prompt_open: prompts.iter().any(|p| matches!(&p.kind, PromptKind::MassDelete { share: s, .. } if *s == id)),
    };
    let decision = guard.lock().unwrap().check(&deletes, input, crate::clock::now_ms());
    match decision {
        GuardDecision::Apply => Ok(0),
        GuardDecision::ApplyAllowed => {
            inner.db(move |s| s.update_share_settings(&id, |st| st.mass_delete_allowed = false)).await?;
            tracing::info!(share = %id, deletes = deletes.len(), "applying an allowed mass delete");
            Ok(0)
        }
        GuardDecision::Hold { paths, prompt } => {
            let by = wanted[&paths[0]].0.modified_by;
            for p in &paths {
                wanted.remove(p);
            }
            // The folders those deletions would empty wait with them (deleted or replaced after
            // the answer), rather than fail now as "not empty".
            for p in blocked_by_held(wanted.keys(), &paths) {
                wanted.remove(&p);
            }
            if let Some(p) = prompt {
                tracing::warn!(share = %id, deletes = p.deletes, live_files, "holding a mass delete for the user");
                let kind = PromptKind::MassDelete {
                    share: id,
                    label: share.label.clone(),
                    deletes: p.deletes,
                    files: p.files,
                };
                crate::context::add_prompt(inner, by, kind).await?;
            }
            Ok(paths.len())
        }
    }
}

/// The user's answer to a mass-delete prompt.
pub(crate) async fn answer(
    inner: &Arc<Context>,
    share: ferry_proto::ShareId,
    accept: bool,
    deletes: u64,
) -> ApiResult<()> {
    let _exists = inner.db(move |s| s.share(&share)).await?.ok_or_else(|| ApiError::not_found("the share is gone"))?;
    let answer = ferry_engine::guard::answer(accept);
    let note = answer.attention.then(|| {
        format!(
            "refused a peer's deletion of {deletes} files on {}; local files kept and sent back (`ferry share ack` clears this)",
            crate::clock::fmt_ms(crate::clock::now_ms())
        )
    });
    inner
        .db(move |s| {
            s.update_share_settings(&share, |st| {
                if note.is_some() {
                    st.attention = note;
                }
                st.mass_delete_allowed = answer.allowed;
            })
        })
        .await?;
    if answer.republish {
        inner.share_command(share, crate::share_handle::ShareCommand::Republish).await?;
    }
    if let Some(h) = inner.shares.lock().unwrap().get(&share) {
        h.request_pull();
    }
    Ok(())
}

/// Gives every local file a peer has a newer deletion of a version that supersedes it, so the
/// file comes back on that peer (which files, and their versions: [`plan_republish`]). Runs on
/// the share's actor (`ShareCommand::Republish`), which publishes the new sequence afterwards.
pub(crate) async fn republish(inner: &Arc<Context>, share: ferry_proto::ShareId) -> ApiResult<()> {
    let share = inner.db(move |s| s.share(&share)).await?.ok_or_else(|| ApiError::not_found("the share is gone"))?;
    let (id, members, mode, me) = (share.id, share.devices.clone(), share.mode, inner.id);
    inner
        .db(move |s| {
            let local: Vec<ferry_engine::Entry> = s.local_files(&id)?.into_iter().map(records::into_entry).collect();
            // Tests hold this point to show that no other write can land between the read and
            // the commit below (tests/tests/writer.rs).
            crate::fault::point("republish.after_read");
            let mut remotes = Vec::new();
            for d in &members {
                remotes
                    .push(s.remote_files(&id, d)?.into_iter().map(|r| (r.path.clone(), r)).collect::<HashMap<_, _>>());
            }
            let refs: Vec<&HashMap<RelPath, FileRecord>> = remotes.iter().collect();
            let updates: Vec<_> =
                plan_republish(&local, &refs, mode, me).into_iter().map(records::local_update).collect();
            if !updates.is_empty() {
                s.commit_local(&id, &updates, &[])?;
            }
            Ok(())
        })
        .await?;
    Ok(())
}
