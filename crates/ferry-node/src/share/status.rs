//! A share's status as `ferry status` shows it: the actor's runtime state plus what the index
//! says (live files and bytes, unsent local changes, whether the connected peers have it all),
//! cached until the index changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_proto::{DeviceId, FileKind, ShareId};
use ferry_store::{KeptCounts, ShareRecord, WalkStates};

use crate::api::ShareStatusDto;
use crate::context::{ApiResult, Context};
use crate::share_handle::{IndexStatus, Runtime, StatusCounts};

/// Computes [`StatusCounts`] in one streaming pass over the local index and the `connected`
/// members' indexes (one path decoded at a time), with the index states that pass read.
pub(crate) fn status_counts(
    s: &ferry_store::Store,
    id: &ShareId,
    connected: &[DeviceId],
) -> Result<(StatusCounts, WalkStates), ferry_store::StoreError> {
    // How a test sees whether a status call walked the indexes (tests/tests/restart_mark.rs).
    if crate::fault::failing("status.walk") {
        return Err(ferry_store::StoreError::Invalid("fault point status.walk".into()));
    }
    let mut c = StatusCounts { files: 0, bytes: 0, local_changes: 0, peers_have_all: true };
    let states = s.walk_share(id, connected, |local, remotes| {
        // Paths only a peer holds say nothing about whether the peers have ours.
        let Some(e) = local.map(crate::records::into_entry) else { return Ok(()) };
        if e.local_change {
            if !ferry_engine::plans::is_dropped_change(&e) {
                c.local_changes += 1;
            }
        } else if c.peers_have_all {
            c.peers_have_all = remotes.iter().all(|r| match r {
                Some(r) => r.version == e.record.version,
                None => e.record.deleted,
            });
        }
        if !e.record.deleted {
            c.bytes += e.record.size;
            if e.record.kind == FileKind::File {
                c.files += 1;
            }
        }
        Ok(())
    })?;
    Ok((c, states))
}

/// While a share is busy (scanning, pulling) its index changes with every batch, and each status
/// call would walk all of it again: over a second at a million files, with the app polling every
/// few seconds. Counts up to this many times their own computing time old are then served, so
/// the walks take at most about a tenth of the time. An idle share's counts are exact (and
/// `in_sync` is false while busy whatever the counts say).
const STALE_FACTOR: u32 = 10;
/// ... and at least this old: a small share's walk costs little, but a status poll loop during
/// a long sync need not repeat it more than twice a second.
const STALE_MIN: Duration = Duration::from_millis(500);

async fn index_status(
    inner: &Arc<Context>,
    id: ShareId,
    connected: Vec<DeviceId>,
    busy: bool,
) -> ApiResult<IndexStatus> {
    if let Some(c) = inner.status_cache.lock().unwrap().get(&id)
        && c.connected == connected
        && (c.generation == inner.store.index_generation()
            || busy && c.at.elapsed() < STALE_MIN.max(c.took * STALE_FACTOR))
    {
        return Ok(c.clone());
    }
    // The first call after a start may find the counts kept at the last stop.
    let first = !inner.status_cache.lock().unwrap().contains_key(&id);
    let st = inner
        .db(move |s| {
            let at = Instant::now();
            // Read the generation first: a write racing the reads below makes the entry stale
            // (recomputed next time), never wrongly current.
            let generation = s.index_generation();
            if first && let Some(kept) = kept_counts(s, &id, &connected) {
                return Ok(IndexStatus {
                    generation,
                    connected,
                    counts: kept.0,
                    states: kept.1,
                    at,
                    took: at.elapsed(),
                });
            }
            let (counts, states) = status_counts(s, &id, &connected)?;
            Ok(IndexStatus { generation, connected, counts, states, at, took: at.elapsed() })
        })
        .await?;
    inner.status_cache.lock().unwrap().insert(id, st.clone());
    Ok(st)
}

/// The counts kept at the last stop, if the indexes they were counted from are as they were
/// (a read error is no counts: they are computed instead).
///
/// The usual restart of a device with peers stops with them connected and starts before they
/// are: its states then name other devices than the kept ones. An equal index generation still
/// means no index was written since (every index write moves it), so the local counts hold;
/// whether the connected peers have it all is known for a subset of the kept peers when they
/// had it all, and trivially with none connected (the walk would compare with nobody).
fn kept_counts(s: &ferry_store::Store, id: &ShareId, connected: &[DeviceId]) -> Option<(StatusCounts, WalkStates)> {
    let kept = s.kept_counts(id).ok()??;
    let now = s.walk_states(id, connected).ok()?;
    let KeptCounts { states, files, bytes, local_changes, peers_have_all } = kept;
    if states.generation != now.generation || states.local != now.local {
        return None;
    }
    let kept_peers = |d: &DeviceId| states.remotes.iter().any(|(k, _)| k == d);
    let peers_have_all = if states == now {
        peers_have_all
    } else if connected.is_empty() || peers_have_all && connected.iter().all(kept_peers) {
        true
    } else {
        return None;
    };
    Some((StatusCounts { files, bytes, local_changes, peers_have_all }, now))
}

/// Keeps the counts last computed for each share (see [`KeptCounts`]): called as the node
/// stops. Each was exact for the states its walk read; those that are stale by the next start
/// are not used then.
pub(crate) async fn keep_counts(inner: &Arc<Context>) {
    let all: Vec<(ShareId, KeptCounts)> = inner
        .status_cache
        .lock()
        .unwrap()
        .iter()
        .map(|(id, st)| {
            let StatusCounts { files, bytes, local_changes, peers_have_all } = st.counts.clone();
            (*id, KeptCounts { states: st.states.clone(), files, bytes, local_changes, peers_have_all })
        })
        .collect();
    if all.is_empty() {
        return;
    }
    if let Err(e) = inner.db(move |s| s.put_kept_counts(&all)).await {
        tracing::warn!("keeping the status counts: {}", e.message);
    }
}

pub(crate) async fn share_status(inner: &Arc<Context>, rec: &ShareRecord) -> ApiResult<ShareStatusDto> {
    let runtime = inner.shares.lock().unwrap().get(&rec.id).map(|h| h.runtime.lock().unwrap().clone());
    let runtime = runtime.unwrap_or(Runtime { state: "stopped", ..Default::default() });
    let connected: Vec<DeviceId> = rec.devices.iter().copied().filter(|d| inner.peer(d).is_some()).collect();
    let id = rec.id;
    let settings = inner.db(move |s| s.share_settings(&id)).await?;
    let busy = runtime.state != "idle";
    let StatusCounts { files, bytes, local_changes, peers_have_all } =
        index_status(inner, id, connected, busy).await?.counts;
    let (failed_items, failed_more) = runtime.failed.list();
    Ok(ShareStatusDto {
        id: rec.id.to_string(),
        label: rec.label.clone(),
        path: rec.path.clone(),
        mode: rec.mode.as_str().into(),
        state: runtime.state.into(),
        // Items that cannot be synced keep a share out of sync (Syncthing's "Failed Items").
        in_sync: runtime.need == 0 && runtime.state == "idle" && peers_have_all && runtime.failed.is_empty(),
        files,
        bytes,
        need: runtime.need,
        last_error: runtime.last_error,
        fetched_bytes: runtime.fetched_bytes,
        reused_bytes: runtime.reused_bytes,
        served_bytes: runtime.served_bytes,
        peer_chunks: rec.devices.iter().filter_map(|d| inner.peer(d)).map(|p| p.heard.chunks_in(rec.id)).sum(),
        conflict_policy: settings.conflict_policy.as_str().into(),
        retention: settings.retention.to_string(),
        local_changes,
        attention: settings.attention,
        summary: inner.summaries.get(rec.id),
        failed_items,
        failed_more,
    })
}
