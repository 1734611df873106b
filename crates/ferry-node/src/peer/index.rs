//! Index exchange with a peer: the cluster config (which shares each side has with the other),
//! one index sender per shared share, and receiving the peer's index updates.

use super::*;

pub(super) async fn on_index(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    share: ShareId,
    epoch: u64,
    mut records: Vec<FileRecord>,
    chunks_from: Vec<ChunksFrom>,
) -> Message {
    let Ok(Some(rec)) = inner.db(move |s| s.share(&share)).await else {
        return wire_err(WireError::NotFound, "no such share");
    };
    if !rec.devices.contains(&peer.id) {
        return wire_err(WireError::Refused, "not a member of this share");
    }
    if !chunks_from.is_empty() {
        // At most one reference per record (checked in full by `resolve`): bounds the lookups
        // a hostile update can ask for before anything else is checked.
        if chunks_from.len() > records.len() {
            return wire_err(WireError::BadRequest, "more chunk references than records");
        }
        // Rebuild the chunk lists left out from what this device holds, before storing anything.
        let pid = peer.id;
        let paths: Vec<RelPath> = chunks_from.iter().map(|c| c.base_path.clone()).collect();
        let bases = match inner.db(move |s| s.local_and_remote_at(&share, &pid, &paths)).await {
            Ok(b) => b,
            Err(e) => return wire_err(WireError::Internal, e.message),
        };
        match ferry_engine::compact::resolve(&mut records, &chunks_from, &bases) {
            Ok(()) => {}
            Err(ferry_engine::compact::Unresolved::Missing(m)) => return wire_err(WireError::NotFound, m),
            Err(ferry_engine::compact::Unresolved::Malformed(m)) => {
                tracing::warn!(peer = %peer.id.short(), share = %share, "refused index update: {m}");
                return wire_err(WireError::BadRequest, m);
            }
        }
    }
    let total = records.len();
    let good: Vec<FileRecord> = records
        .into_iter()
        .filter(|r| match r.check() {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(peer = %peer.id.short(), share = %share, "refused record: {e}");
                false
            }
        })
        .collect();
    if good.len() != total {
        inner.emit(Event::Error {
            share: Some(share.to_string()),
            device: Some(peer.id.to_string()),
            message: format!("refused {} malformed records", total - good.len()),
        });
    }
    let n = good.len();
    if crate::fault::failing("index.store") {
        // A test's stand-in for the store failing to take the update (a full disk, say).
        return wire_err(WireError::Internal, "could not store the index update");
    }
    let pid = peer.id;
    let needed = inner
        .db(move |s| {
            s.put_remote(&share, &pid, epoch, &good)?;
            crate::need::needed_paths(s, &share, &good)
        })
        .await;
    let needed = match needed {
        Ok(n) => n,
        Err(e) => return wire_err(WireError::Internal, e.message),
    };
    inner.emit(Event::IndexReceived { share: share.to_string(), device: peer.id.to_string(), records: n });
    if !needed.is_empty()
        && let Some(h) = inner.shares.lock().unwrap().get(&share)
    {
        h.request_pull_paths(needed);
    }
    Message::Ack
}

pub(super) async fn on_cluster_config(inner: &Arc<Context>, peer: &Arc<PeerLink>, shares: Vec<ShareAnnounce>) {
    *peer.announced.lock().unwrap() = shares.iter().map(|a| (a.share, a.clone())).collect();
    for ann in shares {
        let sid = ann.share;
        let local = inner.db(move |s| s.share(&sid)).await.ok().flatten();
        match local {
            Some(_) => {}
            None => {
                if ann.label.len() > MAX_NAME {
                    continue;
                }
                // An offer: prompt once per (share, device).
                let pid = peer.id;
                let exists = inner
                    .db(move |s| s.prompts())
                    .await
                    .map(|ps| {
                        ps.iter().any(|p| {
                            p.device == pid && matches!(&p.kind, PromptKind::ShareOffer { share, .. } if *share == sid)
                        })
                    })
                    .unwrap_or(true);
                if !exists && inner.prompt_limits.check(peer.id, "a share offer").is_ok() {
                    let _ = add_prompt(inner, peer.id, PromptKind::ShareOffer { share: sid, label: ann.label.clone() })
                        .await;
                }
            }
        }
    }
    reconcile_senders(inner, peer, true).await;
}

/// Starts an index sender for every share that both sides have with each other as members.
/// `restart` restarts running ones (the peer told us where it stands anew).
pub(super) async fn reconcile_senders(inner: &Arc<Context>, peer: &Arc<PeerLink>, restart: bool) {
    let announced: Vec<ShareAnnounce> = peer.announced.lock().unwrap().values().cloned().collect();
    let mut wanted = Vec::new();
    for ann in announced {
        let sid = ann.share;
        let Ok(Some(share)) = inner.db(move |s| s.share(&sid)).await else { continue };
        if !share.devices.contains(&peer.id) {
            continue;
        }
        let Ok(state) = inner.db(move |s| s.share_state(&sid)).await else { continue };
        let from = if ann.your_epoch == state.epoch { ann.your_seq } else { 0 };
        wanted.push((sid, state.epoch, from));
    }
    let mut senders = peer.senders.lock().unwrap();
    let keep: std::collections::HashSet<ShareId> = wanted.iter().map(|w| w.0).collect();
    senders.retain(|sid, h| {
        let k = keep.contains(sid) && !h.is_finished();
        if !k {
            h.abort();
        }
        k
    });
    for (sid, epoch, from) in wanted {
        if senders.contains_key(&sid) && !restart {
            continue;
        }
        let Some(seq_rx) = inner.shares.lock().unwrap().get(&sid).map(|h| h.seq_watch()) else { continue };
        if let Some(old) = senders.remove(&sid) {
            old.abort();
        }
        let i = inner.clone();
        let p = peer.clone();
        let sender = async move { index_sender(i, p, sid, epoch, from, seq_rx).await };
        let span = tracing::info_span!("index", share = %sid);
        senders.insert(sid, tokio::spawn(tracing::Instrument::instrument(sender, span)));
    }
}

/// Sends this device's index of `share` to `peer`, from `after` on, then every change as it
/// is committed. Ends when the connection does.
///
/// Invariant: `after` moves only when the peer acknowledged everything up to it, and nothing
/// but the connection's end stops the sender. An update that failed (a timeout under load, a
/// store error on the peer's side, a refusal) is sent again after a backoff: a sender that gave
/// up would leave both devices "connected" with the peer never hearing of this device's changes
/// again until a reconnect.
async fn index_sender(
    inner: Arc<Context>,
    peer: Arc<PeerLink>,
    share: ShareId,
    epoch: u64,
    mut after: u64,
    mut seq_rx: watch::Receiver<u64>,
) {
    // Set when the peer could not resolve a compact update: the next one goes whole.
    let mut whole = false;
    let mut retry = INDEX_RETRY_MIN;
    loop {
        // Mark the current sequence seen before reading, so a commit after the read still
        // wakes the wait below.
        seq_rx.borrow_and_update();
        let a = after;
        let recs = match inner.db(move |s| s.local_since(&share, Seq(a), INDEX_BATCH_RECORDS)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("index read failed (retrying in {retry:?}): {e}");
                if !back_off(&peer, &mut retry).await {
                    return;
                }
                continue;
            }
        };
        if recs.is_empty() {
            tokio::select! {
                r = seq_rx.changed() => if r.is_err() { return },
                _ = peer.conn.closed() => return,
            }
            continue;
        }
        let batch = first_batch(recs);
        let last = batch.last().map(|r| r.seq.0).unwrap_or(after);
        let n = batch.len();
        let msg = if whole {
            Message::IndexUpdate { share, epoch, records: batch }
        } else {
            compact(&inner, &peer, share, epoch, batch).await
        };
        let compacted = matches!(msg, Message::IndexUpdateCompact { .. });
        let failure = match peer.conn.request(&msg, REQUEST_TIMEOUT).await {
            Ok(Message::Ack) => {
                after = last;
                whole = false;
                retry = INDEX_RETRY_MIN;
                inner.emit(Event::IndexSent { share: share.to_string(), device: peer.id.to_string(), records: n });
                continue;
            }
            Ok(Message::Error { code: WireError::NotFound, message }) if compacted => {
                // The peer no longer holds content a reference named: the same records again, whole.
                tracing::debug!(peer = %peer.id.short(), %share, "sending index whole: {message}");
                whole = true;
                continue;
            }
            Ok(Message::Error { message, .. }) => format!("peer refused index: {message}"),
            Ok(other) => format!("unexpected answer to index: {}", msg_name(&other)),
            Err(e) => format!("index send failed: {e}"),
        };
        tracing::info!(peer = %peer.id.short(), %share, "{failure} (sending again in {retry:?})");
        if !back_off(&peer, &mut retry).await {
            return;
        }
    }
}

/// The leading records of `recs` that fit one update of [`INDEX_BATCH_BYTES`] (at least one).
fn first_batch(recs: Vec<FileRecord>) -> Vec<FileRecord> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    for r in recs {
        let est = 128 + r.path.as_str().len() + r.chunks.len() * 40;
        if !batch.is_empty() && bytes + est > INDEX_BATCH_BYTES {
            break;
        }
        bytes += est;
        batch.push(r);
    }
    batch
}

/// Waits `retry` (then doubles it, up to [`INDEX_RETRY_MAX`]); false if the connection closed
/// meanwhile.
async fn back_off(peer: &PeerLink, retry: &mut Duration) -> bool {
    let wait = *retry;
    *retry = (*retry * 2).min(INDEX_RETRY_MAX);
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = peer.conn.closed() => false,
    }
}

/// The index update for `batch`: compact (see [`ferry_engine::compact`]) when the peer holds all or
/// most of a big file's chunks, plain otherwise (and whenever the lookup fails).
async fn compact(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    share: ShareId,
    epoch: u64,
    batch: Vec<FileRecord>,
) -> Message {
    let paths = ferry_engine::compact::candidate_paths(&batch);
    if paths.is_empty() {
        return Message::IndexUpdate { share, epoch, records: batch };
    }
    let pid = peer.id;
    let looked_up = inner
        .db(move |s| {
            let found = s.remote_files_at(&share, &pid, &paths)?;
            Ok(paths.into_iter().zip(found).collect::<Vec<_>>())
        })
        .await;
    let Ok(theirs) = looked_up else {
        return Message::IndexUpdate { share, epoch, records: batch };
    };
    let chunks_from = ferry_engine::compact::references(&batch, &theirs);
    if chunks_from.is_empty() {
        return Message::IndexUpdate { share, epoch, records: batch };
    }
    let mut records = batch;
    for c in &chunks_from {
        records[c.record as usize].chunks = Vec::new();
    }
    Message::IndexUpdateCompact { share, epoch, records, chunks_from }
}

async fn cluster_config_for(inner: &Arc<Context>, peer: DeviceId) -> Message {
    let mut shares = Vec::new();
    if let Ok(all) = inner.db(|s| s.shares()).await {
        for s in all.into_iter().filter(|s| s.devices.contains(&peer)) {
            let sid = s.id;
            let Ok((mine, theirs)) =
                inner.db(move |st| Ok((st.share_state(&sid)?, st.remote_state(&sid, &peer)?))).await
            else {
                continue;
            };
            shares.push(ShareAnnounce {
                share: s.id,
                label: s.label,
                my_epoch: mine.epoch,
                your_epoch: theirs.epoch,
                your_seq: theirs.max_seq,
            });
        }
    }
    Message::ClusterConfig { shares }
}

pub(super) async fn send_cluster_config(inner: &Arc<Context>, peer: &Arc<PeerLink>) {
    let msg = cluster_config_for(inner, peer.id).await;
    match peer.conn.request(&msg, REQUEST_TIMEOUT).await {
        Ok(Message::Ack) => {}
        Ok(other) => {
            tracing::warn!(peer = %peer.id.short(), "unexpected answer to cluster config: {}", msg_name(&other))
        }
        Err(e) => tracing::info!(peer = %peer.id.short(), "cluster config failed: {e}"),
    }
    reconcile_senders(inner, peer, false).await;
}

/// Tells a connected device our shares with it anew (after an invite, accept or removal).
pub(crate) async fn announce_to(inner: &Arc<Context>, device: DeviceId) {
    if let Some(peer) = inner.peer(&device) {
        send_cluster_config(inner, &peer).await;
    }
}
