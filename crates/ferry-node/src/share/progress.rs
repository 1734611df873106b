//! Telling the share's other connected members which chunks of a download in progress this
//! device holds ([`Message::Progress`]), so they can fetch those from here (see `swarm`).
//!
//! One task per download, started by the pull when the download starts and stopped when the
//! [`Announcer`] is dropped; its last message says the download ended (an empty `have`), so
//! the others forget it. A member that does not take a message in [`ANNOUNCE_TIMEOUT`] is
//! told again at the next tick; nothing waits on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::wire::Message;
use ferry_proto::{DeviceId, RelPath, ShareId};
use tokio::sync::oneshot;

use crate::context::Context;
use crate::link::PeerLink;
use crate::swarm::Download;

/// How often a download tells of its new chunks. At LAN speed (~100 MB/s) a quarter second is
/// ~25 MB, about a hundred average chunks: the others' view lags by that much, which is small
/// beside the part of a big file each device starts in (a tenth of 1 GiB with ten devices), and
/// four small messages a second per member cost nothing. More often would add messages
/// without making many more chunks tradeable; much less often would leave the others fetching
/// from the file's holders what this device already has.
const ANNOUNCE_EVERY: Duration = Duration::from_millis(250);
/// Longest one member gets to take a message: a slow or vanished device delays the next tick
/// by at most this, never the download itself (which runs apart from this task).
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(2);

/// Keeps the announcing task of one download running; dropping it stops the task, which then
/// tells the members it told that the download ended.
pub(super) struct Announcer {
    _stop: oneshot::Sender<()>,
}

/// The connected members of `share` other than this device and `skip`.
pub(super) fn connected_members(inner: &Arc<Context>, share: ShareId, skip: &[DeviceId]) -> Vec<Arc<PeerLink>> {
    let ids = inner.shares.lock().unwrap().get(&share).map(|h| h.members.lock().unwrap().clone()).unwrap_or_default();
    ids.iter().filter(|d| **d != inner.id && !skip.contains(d)).filter_map(|d| inner.peer(d)).collect()
}

/// Starts telling the members of `share` (except `skip`: the devices that hold the whole file
/// already have no use for it) about `download` of `path`.
pub(super) fn start(
    inner: &Arc<Context>,
    share: ShareId,
    path: RelPath,
    download: Arc<Download>,
    skip: Vec<DeviceId>,
) -> Announcer {
    let (tx, rx) = oneshot::channel();
    let i = inner.clone();
    inner.spawn(async move { run(i, share, path, download, skip, rx).await });
    Announcer { _stop: tx }
}

async fn run(
    inner: Arc<Context>,
    share: ShareId,
    path: RelPath,
    download: Arc<Download>,
    skip: Vec<DeviceId>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut shutdown = inner.stop.subscribe();
    // The number of chunks each member was last told of.
    let mut told: HashMap<DeviceId, u64> = HashMap::new();
    // The first tick one period in: a download shorter than that tells nobody anything.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + ANNOUNCE_EVERY, ANNOUNCE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        let written = *download.written.borrow();
        if written == 0 {
            continue;
        }
        let targets: Vec<Arc<PeerLink>> =
            connected_members(&inner, share, &skip).into_iter().filter(|p| told.get(&p.id) != Some(&written)).collect();
        if targets.is_empty() {
            continue;
        }
        let msg = Message::Progress { share, path: path.clone(), content: download.content, have: download.have() };
        let results = futures::future::join_all(targets.iter().map(|p| tell(p, &msg))).await;
        for (p, ok) in targets.iter().zip(results) {
            if ok {
                told.insert(p.id, written);
            }
        }
    }
    let msg = Message::Progress { share, path, content: download.content, have: Vec::new() };
    let targets: Vec<Arc<PeerLink>> =
        connected_members(&inner, share, &skip).into_iter().filter(|p| told.contains_key(&p.id)).collect();
    futures::future::join_all(targets.iter().map(|p| tell(p, &msg))).await;
}

/// Sends `msg` to `peer`; true if it took it.
async fn tell(peer: &PeerLink, msg: &Message) -> bool {
    match peer.conn.request(msg, ANNOUNCE_TIMEOUT).await {
        Ok(Message::Ack) => true,
        Ok(other) => {
            tracing::debug!(peer = %peer.id.short(), "progress not taken: {other:?}");
            false
        }
        Err(e) => {
            tracing::debug!(peer = %peer.id.short(), "progress not sent: {e}");
            false
        }
    }
}
