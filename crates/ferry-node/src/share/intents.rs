//! Apply intents ([`ferry_store::ApplyIntent`]): a pull pass records what it is about to write
//! before any of its renames and clears them after its last index commit; at start the actor
//! checks what a stopped pass left. A path whose disk content is neither the one the index
//! holds nor the one being written was Ferry's unfinished apply on a disk that lost the content
//! (or lied about an fsync): the first scan records it without a version of this device
//! ([`ferry_engine::scan::unfinished_apply`]), so the peer's record is fetched again and what
//! is on disk goes to the history, never taken for the user's edit (no conflict copy). Content
//! that is the old or the new one needs nothing: a pass redoes the first, the scan merges the
//! second as identical content.

use std::collections::HashSet;

use super::*;
use ferry_store::ApplyIntent;

impl Worker {
    /// Records the pass's writes of file content (before any of them is renamed into place).
    /// Returns whether there were any (then the pass clears them at its end).
    pub(super) async fn record_intents(
        &self,
        items: &[(FileRecord, Action)],
        local: &HashMap<RelPath, LocalEntry>,
    ) -> Result<bool, ShareError> {
        let intents: Vec<ApplyIntent> = items
            .iter()
            .filter(|(t, _)| t.is_file())
            .map(|(t, _)| ApplyIntent {
                path: t.path.clone(),
                new: t.hash,
                old: local.get(&t.path).filter(|l| l.record.is_file()).map(|l| l.record.hash),
            })
            .collect();
        if intents.is_empty() {
            return Ok(false);
        }
        let id = self.id;
        self.inner.db(move |s| s.record_intents(&id, &intents)).await?;
        Ok(true)
    }

    pub(super) async fn clear_intents(&self) -> Result<(), ShareError> {
        let id = self.id;
        self.inner.db(move |s| s.clear_intents(&id)).await?;
        Ok(())
    }

    /// At start, before the first scan: the paths a stopped pass left neither old nor new
    /// become [`Worker::unfinished`] (their intents are cleared once the first full scan has
    /// recorded them); with none, the intents are cleared at once.
    pub(super) async fn check_intents(&self) {
        let id = self.id;
        let intents = match self.inner.db(move |s| s.intents(&id)).await {
            Ok(i) if i.is_empty() => return,
            Ok(i) => i,
            Err(e) => return tracing::warn!(share = %self.id, "reading apply intents: {e}"),
        };
        let root = self.root.clone();
        let left = intents.len();
        let torn = tokio::task::spawn_blocking(move || {
            intents.into_iter().filter(|i| unfinished(&root, i)).map(|i| i.path).collect::<HashSet<_>>()
        })
        .await
        .unwrap_or_default();
        tracing::info!(share = %self.id, left, unfinished = torn.len(), "checked the writes a stopped pull left");
        if torn.is_empty() {
            if let Err(e) = self.clear_intents().await {
                tracing::warn!(share = %self.id, "clearing apply intents: {e}");
            }
        } else {
            *self.unfinished.lock().unwrap() = torn;
        }
    }
}

/// A regular file at the intent's path holding neither the old nor the new content. Nothing
/// there (or not a file) is left to the scan: a rename is atomic, so that was not Ferry.
fn unfinished(root: &Path, i: &ApplyIntent) -> bool {
    let Ok(full) = ferry_fs::checked_path(root, &i.path) else { return false };
    match ferry_fs::hash_file(&full) {
        Ok((h, _)) => h != i.new && Some(h) != i.old,
        Err(_) => false,
    }
}
