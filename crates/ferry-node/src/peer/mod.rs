//! Connections to other devices: accepting and dialing, pairing, and for each paired and
//! connected device a [`Peer`] with a serve loop (answering its requests) and one index sender
//! per share both sides have.
//!
//! Trust: TLS tells us the device's id. An unpaired device gets exactly one request, a
//! [`Message::PairRequest`], answered only after the user accepts; anything else closes the
//! connection. Every message from a paired device is still checked (share membership, paths,
//! sizes) before it touches the store or the disk.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_net::{NetError, PeerConn, read_frame, write_frame, write_frame_owned};
use ferry_proto::wire::{
    BlockRef, BlockReply, ChunksFrom, ErrorCode as WireError, Hello, MAX_BLOCK, MAX_NAME, Message, ShareAnnounce,
};
use ferry_proto::{ChunkHash, DeviceId, FileRecord, RelPath, Seq, ShareId};
use ferry_store::{DeviceRecord, PromptKind, PromptRecord};
use tokio::sync::{oneshot, watch};

use crate::api::{ApiError, ErrorCode, PairOutcomeDto, PairTicketDto};
use crate::clock::now_ms;
use crate::context::{ApiResult, Context, PAIR_PROMPT_TIMEOUT, add_prompt, publish_prompt};
use crate::events::Event;
use crate::link::{PeerLink, REQUEST_TIMEOUT, msg_name};

/// Largest index batch, in estimated encoded bytes: well under the frame cap, big enough that
/// a 10,000-file tree goes in a handful of round trips.
const INDEX_BATCH_BYTES: usize = 2 << 20;
/// Records per store read while batching.
const INDEX_BATCH_RECORDS: usize = 4096;
/// Index resend backoff after a failed update: soon at first (a timeout under load or a
/// passing store error clears in moments), doubling up to half a minute so a peer that keeps
/// refusing costs one request per 30 s.
const INDEX_RETRY_MIN: Duration = Duration::from_millis(500);
const INDEX_RETRY_MAX: Duration = Duration::from_secs(30);
/// How many last-known addresses of a device are kept.
const MAX_ADDRESSES: usize = 4;
/// Redial backoff: first retry soon (a peer restarting comes back in a second or two), then
/// doubling up to a minute so an absent device costs nearly nothing.
const DIAL_MIN: Duration = Duration::from_secs(1);
const DIAL_MAX: Duration = Duration::from_secs(60);
/// How long a connected device gets to answer a ping when discovery says it moved.
const MOVED_PROBE: Duration = Duration::from_millis(1500);
/// Longest the dialer sleeps when nothing is due (a safety net: every reason to dial sooner
/// wakes it, see `Context::dial_wake`).
const DIAL_IDLE: Duration = Duration::from_secs(30);

mod blocks;
mod dial;
mod index;
mod pairing;

use blocks::{serve_block, serve_blocks, serve_version_block};
pub(crate) use dial::dial_loop;
pub(crate) use index::announce_to;
use index::{on_cluster_config, on_index, send_cluster_config};
use pairing::mark_paired;
pub(crate) use pairing::start_pairing;

fn check_hello(h: &Hello) -> Result<(), String> {
    if h.name.is_empty() || h.name.len() > MAX_NAME || h.owner.len() > MAX_NAME {
        return Err("device name or owner missing or too long".into());
    }
    Ok(())
}

pub(crate) async fn accept_loop(inner: Arc<Context>) {
    let mut stop = inner.stop.subscribe();
    loop {
        let incoming = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            c = inner.endpoint.accept() => c,
        };
        match incoming {
            None => break,
            Some(Err(e)) => tracing::info!("incoming connection failed: {e}"),
            Some(Ok(conn)) => {
                let i = inner.clone();
                inner.spawn(async move {
                    if let Err(e) = handle_incoming(&i, conn.clone()).await {
                        tracing::info!(peer = %conn.peer().short(), "incoming connection closed: {e}");
                        conn.close(&e);
                    }
                });
            }
        }
    }
}

async fn handle_incoming(inner: &Arc<Context>, conn: PeerConn) -> Result<(), String> {
    let peer_id = conn.peer();
    let known = inner.db(move |s| s.device(&peer_id)).await.map_err(|e| e.to_string())?;
    if known.as_ref().is_some_and(|d| d.paired) {
        let hello = conn.handshake(&inner.hello()).await.map_err(|e| e.to_string())?;
        check_hello(&hello)?;
        attach(inner, conn, hello).await;
        return Ok(());
    }
    // Unpaired: a slot first (before any work for it), held until the pairing is decided.
    let Ok(slot) = inner.unpaired.clone().try_acquire_owned() else {
        tracing::debug!(peer = %peer_id.short(), "too many unpaired connections; closing one");
        return Err("busy: too many unpaired connections".into());
    };
    let (hello, mut send) = pairing_request(inner, &conn).await?;
    drop(slot);
    write_frame(&mut send, &Message::PairResponse { accepted: true, message: String::new() })
        .await
        .map_err(|e| e.to_string())?;
    let _ = send.finish();
    let name = hello.name.clone();
    inner.emit(Event::Paired { device: peer_id.to_string(), name: name.clone() });
    tracing::info!(peer = %peer_id.short(), %name, "paired");
    attach(inner, conn, hello).await;
    Ok(())
}

/// The Hello and the one request an unpaired device may make, shown to the user as a prompt.
/// Once the user accepted: the device is recorded as paired and this returns its Hello (with
/// the name and owner it asked under) and the stream to answer on. `Err` when the request was
/// refused or declined (answered here).
async fn pairing_request(inner: &Arc<Context>, conn: &PeerConn) -> Result<(Hello, ferry_net::SendStream), String> {
    let peer_id = conn.peer();
    let hello = conn.handshake(&inner.hello()).await.map_err(|e| e.to_string())?;
    check_hello(&hello)?;
    let (mut send, mut recv) = tokio::time::timeout(crate::limits::UNPAIRED_REQUEST_TIMEOUT, conn.accept_bi())
        .await
        .map_err(|_| "unpaired device sent no request".to_string())?
        .map_err(|e| e.to_string())?;
    let msg = read_frame(&mut recv).await.map_err(|e| e.to_string())?;
    let Message::PairRequest { name, owner } = msg else {
        tracing::warn!(peer = %peer_id.short(), "unpaired device sent {}; refused", msg_name(&msg));
        let _ = write_frame(
            &mut send,
            &Message::Error { code: WireError::NotPaired, message: "this device is not paired with you".into() },
        )
        .await;
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
        return Err("not paired".into());
    };
    if name.is_empty() || name.len() > MAX_NAME || owner.len() > MAX_NAME {
        return Err("pairing request with a bad name".into());
    }
    if let Err(message) = inner.prompt_limits.check(peer_id, "a pairing request") {
        let _ = write_frame(&mut send, &Message::PairResponse { accepted: false, message }).await;
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
        return Err("too many pairing requests".into());
    }
    let code = conn.pairing_code().map_err(|e| e.to_string())?;
    // The waiter exists before the prompt is visible, so an instant answer finds it.
    let id = inner.db(|s| s.next_prompt_id()).await.map_err(|e| e.to_string())?;
    let (tx, rx) = oneshot::channel();
    inner.pair_waiters.lock().unwrap().insert(id, tx);
    let kind = PromptKind::Pair { name: name.clone(), owner: owner.clone(), code };
    let prompt = match publish_prompt(inner, PromptRecord { id, device: peer_id, created_ms: now_ms(), kind }).await {
        Ok(p) => p,
        Err(e) => {
            inner.pair_waiters.lock().unwrap().remove(&id);
            return Err(e.to_string());
        }
    };
    let answer = tokio::select! {
        a = rx => a.unwrap_or(false),
        _ = tokio::time::sleep(PAIR_PROMPT_TIMEOUT) => false,
        _ = conn.closed() => false,
    };
    inner.pair_waiters.lock().unwrap().remove(&prompt.id);
    let pid = prompt.id;
    let _ = inner.db(move |s| s.remove_prompt(pid)).await;
    if answer {
        mark_paired(inner, peer_id, &name, &owner, conn.remote_addr()).await.map_err(|e| e.to_string())?;
        Ok((Hello { name, owner, ..hello }, send))
    } else {
        let _ = write_frame(
            &mut send,
            &Message::PairResponse { accepted: false, message: "the other device declined the pairing request".into() },
        )
        .await;
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
        Err("pairing declined".into())
    }
}

fn remember_address(d: &mut DeviceRecord, addr: SocketAddr) {
    let a = addr.to_string();
    d.addresses.retain(|x| *x != a);
    d.addresses.insert(0, a);
    d.addresses.truncate(MAX_ADDRESSES);
}

/// Registers a connection to a paired device and runs it until it closes. Everything it starts
/// (serving, index senders, note and send flushes) logs in the span `peer{device=<short id>}`.
pub(crate) async fn attach(inner: &Arc<Context>, conn: PeerConn, hello: Hello) {
    let span = tracing::info_span!("peer", device = %conn.peer().short());
    tracing::Instrument::instrument(attach_in_span(inner, conn, hello), span).await
}

async fn attach_in_span(inner: &Arc<Context>, conn: PeerConn, hello: Hello) {
    let id = conn.peer();
    let peer = Arc::new(PeerLink {
        id,
        conn: conn.clone(),
        senders: Mutex::new(HashMap::new()),
        announced: Mutex::new(HashMap::new()),
        blocks: Default::default(),
        heard: Default::default(),
    });
    if !register(inner, &peer) {
        return;
    }
    if inner.endpoint.is_refused(&id) {
        // Removed while this connection was on its way in (see `removal::remove`). Checked
        // after registering: a removal either sees this link in the registry or is seen here.
        conn.close_removed(&inner.hello().name);
        detach(inner, &peer, hello.name, "removed".into()).await;
        return;
    }
    inner.dialing.lock().unwrap().remove(&id);
    let addr = conn.remote_addr();
    let (n, o) = (hello.name.clone(), hello.owner.clone());
    let _ = inner
        .db(move |s| {
            if let Some(mut d) = s.device(&id)? {
                d.name = n;
                d.owner = o;
                d.last_seen_ms = Some(now_ms());
                remember_address(&mut d, addr);
                s.put_device(&d)?;
            }
            Ok(())
        })
        .await;
    crate::removal::refresh_admission(inner).await;
    tracing::info!(peer = %id.short(), name = %hello.name, %addr, "connected");
    inner.emit(Event::DeviceConnected { device: id.to_string(), name: hello.name.clone(), address: addr.to_string() });

    let serve_inner = inner.clone();
    let serve_peer = peer.clone();
    let serve =
        tokio::spawn(tracing::Instrument::in_current_span(async move { serve_loop(&serve_inner, &serve_peer).await }));
    send_cluster_config(inner, &peer).await;
    {
        let (i, p) = (inner.clone(), peer.clone());
        inner.spawn(async move { crate::notes::flush(&i, &p).await });
    }
    {
        let (i, p) = (inner.clone(), peer.clone());
        inner.spawn(async move { crate::send::flush(&i, &p).await });
    }
    for h in inner.shares.lock().unwrap().values() {
        if h.has_member(&id) {
            h.request_pull();
        }
    }
    let mut stop = inner.stop.subscribe();
    let closed = tokio::select! {
        e = conn.closed() => Some(e),
        _ = stop.wait_for(|s| *s) => { conn.close("shutdown"); None }
    };
    let reason = match closed {
        Some(e) => {
            if let Some(by) = ferry_net::removed_by(&e) {
                crate::removal::removed_by(inner, id, by).await;
            }
            e.to_string()
        }
        None => "shutdown".to_string(),
    };
    serve.abort();
    peer.stop_senders();
    let path = conn.connection().stats().path;
    // What the connection's path looked like over its life: the MTU discovery settled on, and
    // the congestion it met (losses and black-hole resets are what slow a bulk transfer).
    tracing::debug!(
        mtu = path.current_mtu,
        sent_packets = path.sent_packets,
        lost_packets = path.lost_packets,
        congestion_events = path.congestion_events,
        black_holes = path.black_holes_detected,
        "connection path"
    );
    detach(inner, &peer, hello.name, reason).await;
}

/// Puts `peer` in the registry, unless a live connection to the same device wins (both sides
/// dialed at once): then closes this one and returns false.
fn register(inner: &Arc<Context>, peer: &Arc<PeerLink>) -> bool {
    let (id, conn) = (peer.id, &peer.conn);
    let mut peers = inner.peers.lock().unwrap();
    if let Some(existing) = peers.get(&id)
        && existing.conn.connection().close_reason().is_none()
    {
        // Keep the connection dialed by the smaller id, a rule both ends apply the same way.
        let dialer = if conn.outgoing() { inner.id } else { id };
        let keep_new = dialer == inner.id.min(id);
        if !keep_new {
            let old = existing.clone();
            drop(peers);
            conn.close("duplicate connection");
            // The other side dialed although we hold a connection to it: ours may be dead
            // (it moved to another address). Check it now rather than at the idle timeout.
            inner.spawn(async move {
                if !matches!(tokio::time::timeout(MOVED_PROBE, old.ping()).await, Ok(Ok(_))) {
                    tracing::info!(peer = %old.id.short(), "old connection no longer answers; closing it");
                    old.conn.close("stale");
                }
            });
            return false;
        }
        existing.conn.close("duplicate connection");
        existing.stop_senders();
    }
    peers.insert(id, peer.clone());
    true
}

/// After the connection closed: out of the registry (unless a newer connection replaced it),
/// last seen noted, mDNS asked whether the device is still there, the dialer woken.
async fn detach(inner: &Arc<Context>, peer: &Arc<PeerLink>, name: String, reason: String) {
    let id = peer.id;
    let removed = {
        let mut peers = inner.peers.lock().unwrap();
        match peers.get(&id) {
            Some(p) if Arc::ptr_eq(p, peer) => {
                peers.remove(&id);
                inner.dial_wake.notify_one();
                true
            }
            _ => false,
        }
    };
    if !removed {
        return;
    }
    let _ = inner
        .db(move |s| {
            if let Some(mut d) = s.device(&id)? {
                d.last_seen_ms = Some(now_ms());
                s.put_device(&d)?;
            }
            Ok(())
        })
        .await;
    tracing::info!(peer = %id.short(), %reason, "disconnected");
    // Is it still there? mDNS re-queries it rather than trusting a hint up to 120 s old.
    let book = inner.book.clone();
    tokio::task::spawn_blocking(move || book.connection_lost(&id));
    inner.emit(Event::DeviceDisconnected { device: id.to_string(), name, reason });
}

async fn serve_loop(inner: &Arc<Context>, peer: &Arc<PeerLink>) {
    loop {
        let (send, recv) = match peer.conn.accept_bi().await {
            Ok(s) => s,
            Err(_) => return,
        };
        let i = inner.clone();
        let p = peer.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_request(&i, &p, send, recv).await {
                tracing::warn!(peer = %p.id.short(), "closing connection: {e}");
                i.emit(Event::Error { share: None, device: Some(p.id.to_string()), message: e.clone() });
                p.conn.close(&e);
            }
        });
    }
}

/// Answers one request. An `Err` means the peer broke the protocol and the connection closes.
async fn serve_request(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    mut send: ferry_net::SendStream,
    mut recv: ferry_net::RecvStream,
) -> Result<(), String> {
    let msg = read_frame(&mut recv).await.map_err(|e| format!("bad frame: {e}"))?;
    let reply = match msg {
        Message::Ping { nonce } => Message::Pong { nonce },
        Message::ClusterConfig { shares } => {
            on_cluster_config(inner, peer, shares).await;
            Message::Ack
        }
        Message::IndexUpdate { share, epoch, records } => on_index(inner, peer, share, epoch, records, vec![]).await,
        Message::IndexUpdateCompact { share, epoch, records, chunks_from } => {
            on_index(inner, peer, share, epoch, records, chunks_from).await
        }
        Message::BlockRequest { share, path, offset, len, hash } => {
            serve_block(inner, peer, share, path, offset, len, hash).await
        }
        Message::BlocksRequest { share, blocks } => serve_blocks(inner, peer, share, blocks).await,
        Message::VersionBlockRequest { share, path, hash, offset, len } => {
            serve_version_block(inner, peer, share, path, hash, offset, len).await
        }
        Message::Progress { share, path, content, have } => on_progress(inner, peer, share, path, content, have),
        Message::Note { id, sent_at, text } => crate::notes::on_note(inner, peer, id, sent_at, text).await,
        Message::NoteRead { id } => crate::notes::on_note_read(inner, peer, id).await,
        Message::SendOffer { id, files, dirs } => crate::send::on_offer(inner, peer, id, files, dirs).await,
        Message::SendBlockRequest { id, file, offset, len, hash } => {
            crate::send::on_block(inner, peer, id, file, offset, len, hash).await
        }
        Message::SendUpdate { id, update } => crate::send::on_update(inner, peer, id, update).await,
        // Already paired (the other side may have lost its state): say yes again.
        Message::PairRequest { .. } => Message::PairResponse { accepted: true, message: "already paired".into() },
        other => return Err(format!("unexpected {} request", msg_name(&other))),
    };
    write_frame_owned(&mut send, reply).await.map_err(|e| e.to_string())?;
    let _ = send.finish();
    Ok(())
}

/// Keeps what a member of `share` told of its download of `path` (see `swarm`); checked first
/// (ranges bounded and ordered, the sender a member), answered with an `Error` if refused.
fn on_progress(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    share: ShareId,
    path: RelPath,
    content: ChunkHash,
    have: Vec<(u32, u32)>,
) -> Message {
    if let Err(e) = Message::check_progress(&have) {
        return wire_err(WireError::BadRequest, e);
    }
    let member = inner.shares.lock().unwrap().get(&share).is_some_and(|h| h.has_member(&peer.id));
    if !member {
        return wire_err(WireError::Refused, "not a member of this share");
    }
    if !peer.heard.record(share, path, content, have) {
        return wire_err(WireError::Refused, "too many downloads in progress");
    }
    Message::Ack
}

fn wire_err(code: WireError, message: impl Into<String>) -> Message {
    Message::Error { code, message: message.into() }
}
