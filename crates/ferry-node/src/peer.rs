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
    let hello = conn.handshake(&inner.hello()).await.map_err(|e| e.to_string())?;
    check_hello(&hello)?;
    let peer_id = conn.peer();
    let known = inner.db(move |s| s.device(&peer_id)).await.map_err(|e| e.to_string())?;
    if known.as_ref().is_some_and(|d| d.paired) {
        attach(inner, conn, hello).await;
        return Ok(());
    }
    // Unpaired: exactly one request, and it must be a pairing request.
    let (mut send, mut recv) = tokio::time::timeout(Duration::from_secs(30), conn.accept_bi())
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
        write_frame(&mut send, &Message::PairResponse { accepted: true, message: String::new() })
            .await
            .map_err(|e| e.to_string())?;
        let _ = send.finish();
        inner.emit(Event::Paired { device: peer_id.to_string(), name: name.clone() });
        tracing::info!(peer = %peer_id.short(), %name, "paired");
        attach(inner, conn, Hello { name, owner, ..hello }).await;
        Ok(())
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

fn new_device(id: DeviceId) -> DeviceRecord {
    DeviceRecord {
        id,
        name: id.short(),
        owner: String::new(),
        paired: false,
        addresses: vec![],
        static_addresses: vec![],
        last_seen_ms: None,
    }
}

/// Records `id` as paired (pinned from now on) with its name, owner and address.
async fn mark_paired(inner: &Arc<Context>, id: DeviceId, name: &str, owner: &str, addr: SocketAddr) -> ApiResult<()> {
    let (name, owner) = (name.to_string(), owner.to_string());
    inner
        .db(move |s| {
            let mut d = s.device(&id)?.unwrap_or_else(|| new_device(id));
            d.name = name;
            d.owner = owner;
            d.paired = true;
            remember_address(&mut d, addr);
            s.put_device(&d)
        })
        .await?;
    // No dialer wake here: both sides attach the pairing connection itself right after this,
    // and a dial racing it would replace that connection mid-answer. If it later drops, the
    // detach wakes the dialer.
    Ok(())
}

fn remember_address(d: &mut DeviceRecord, addr: SocketAddr) {
    let a = addr.to_string();
    d.addresses.retain(|x| *x != a);
    d.addresses.insert(0, a);
    d.addresses.truncate(MAX_ADDRESSES);
}

/// Dials `addr` and asks to pair; returns the ticket once the request is on the other screen.
/// With `expect`, the device at `addr` must prove that identity (pairing with a nearby device
/// chosen by name: the mDNS hint is checked against the TLS certificate).
pub(crate) async fn start_pairing(
    inner: &Arc<Context>,
    addr: SocketAddr,
    expect: Option<DeviceId>,
) -> ApiResult<PairTicketDto> {
    let conn = inner
        .endpoint
        .connect(addr, expect)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unreachable, format!("cannot reach {addr}: {e}")))?;
    let peer_id = conn.peer();
    if peer_id == inner.id {
        conn.close("self");
        return Err(ApiError::bad(format!("{addr} is this device")));
    }
    let hello = conn
        .handshake(&inner.hello())
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unreachable, format!("handshake with {addr} failed: {e}")))?;
    check_hello(&hello).map_err(ApiError::bad)?;
    let code = conn.pairing_code().map_err(|e| ApiError::internal(e.to_string()))?;
    let ticket = inner.next_ticket.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (tx, rx) = watch::channel(None);
    inner.tickets.lock().unwrap().insert(ticket, rx);
    let i = inner.clone();
    let h = hello.clone();
    inner.spawn(async move {
        let me = i.hello();
        let req = Message::PairRequest { name: me.name, owner: me.owner };
        let outcome = match conn.request(&req, PAIR_PROMPT_TIMEOUT + Duration::from_secs(5)).await {
            Ok(Message::PairResponse { accepted: true, .. }) => {
                match mark_paired(&i, peer_id, &h.name, &h.owner, addr).await {
                    Ok(()) => {
                        i.emit(Event::Paired { device: peer_id.to_string(), name: h.name.clone() });
                        let i2 = i.clone();
                        let c2 = conn.clone();
                        let h2 = h.clone();
                        i.spawn(async move { attach(&i2, c2, h2).await });
                        PairOutcomeDto { state: "accepted".into(), message: format!("paired with {}", h.name) }
                    }
                    Err(e) => PairOutcomeDto { state: "failed".into(), message: e.message },
                }
            }
            Ok(Message::PairResponse { accepted: false, message }) => {
                conn.close("declined");
                PairOutcomeDto { state: "rejected".into(), message }
            }
            Ok(other) => {
                conn.close("protocol");
                PairOutcomeDto { state: "failed".into(), message: format!("unexpected answer: {}", msg_name(&other)) }
            }
            Err(NetError::Timeout) => {
                conn.close("timeout");
                PairOutcomeDto { state: "timeout".into(), message: "nobody answered the pairing prompt".into() }
            }
            Err(e) => PairOutcomeDto { state: "failed".into(), message: e.to_string() },
        };
        let _ = tx.send(Some(outcome));
    });
    Ok(PairTicketDto { ticket, device: peer_id.to_string(), device_name: hello.name, code })
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
    });
    {
        let mut peers = inner.peers.lock().unwrap();
        if let Some(existing) = peers.get(&id)
            && existing.conn.connection().close_reason().is_none()
        {
            // Both sides dialed at once: keep the connection dialed by the smaller id, a
            // rule both ends apply the same way.
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
                return;
            }
            existing.conn.close("duplicate connection");
            existing.stop_senders();
        }
        peers.insert(id, peer.clone());
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
    let reason = tokio::select! {
        e = conn.closed() => e.to_string(),
        _ = stop.wait_for(|s| *s) => { conn.close("shutdown"); "shutdown".to_string() }
    };
    serve.abort();
    peer.stop_senders();
    let removed = {
        let mut peers = inner.peers.lock().unwrap();
        match peers.get(&id) {
            Some(p) if Arc::ptr_eq(p, &peer) => {
                peers.remove(&id);
                inner.dial_wake.notify_one();
                true
            }
            _ => false,
        }
    };
    if removed {
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
        inner.emit(Event::DeviceDisconnected { device: id.to_string(), name: hello.name, reason });
    }
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

fn wire_err(code: WireError, message: impl Into<String>) -> Message {
    Message::Error { code, message: message.into() }
}

async fn serve_block(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    share: ShareId,
    path: RelPath,
    offset: u64,
    len: u32,
    hash: ChunkHash,
) -> Message {
    let Ok(Some(rec)) = inner.db(move |s| s.share(&share)).await else {
        return wire_err(WireError::NotFound, "no such share");
    };
    if !rec.devices.contains(&peer.id) {
        return wire_err(WireError::Refused, "not a member of this share");
    }
    if len == 0 || len > MAX_BLOCK {
        return wire_err(WireError::BadRequest, "bad block length");
    }
    // Read before the lookup: a commit racing it only makes the cached size look stale.
    let seq = inner.shares.lock().unwrap().get(&share).map(|h| h.current_seq());
    let size = match seq.and_then(|q| peer.blocks.size(&share, &path, q)) {
        Some(size) => size,
        None => {
            let p = path.clone();
            let size = match inner.db(move |s| s.local_file(&share, &p)).await {
                Ok(Some(e)) if e.record.is_file() && !e.record.deleted => e.record.size,
                _ => return wire_err(WireError::NotFound, format!("{path} is not here")),
            };
            if let Some(q) = seq {
                peer.blocks.put(share, path.clone(), q, size);
            }
            size
        }
    };
    if offset.checked_add(len as u64).is_none_or(|end| end > size) {
        return wire_err(WireError::BadRequest, "block beyond the end of the file");
    }
    let root = std::path::PathBuf::from(&rec.path);
    let read = tokio::task::spawn_blocking(move || ferry_fs::read_range(&root, &path, offset, len)).await;
    match read {
        Ok(Ok(data)) if ChunkHash::of(&data) == hash => Message::Block { data },
        Ok(Ok(_)) => wire_err(WireError::NotFound, "the file changed; block no longer here"),
        Ok(Err(e)) => wire_err(WireError::NotFound, e.to_string()),
        Err(e) => wire_err(WireError::Internal, e.to_string()),
    }
}

/// Serves a batch of small blocks: one share check, one index read, one blocking task. Every
/// block is checked like a single one (indexed here, inside the file, same hash on disk).
async fn serve_blocks(inner: &Arc<Context>, peer: &Arc<PeerLink>, share: ShareId, blocks: Vec<BlockRef>) -> Message {
    if let Err(e) = Message::check_blocks_request(&blocks) {
        return wire_err(WireError::BadRequest, e);
    }
    let Ok(Some(rec)) = inner.db(move |s| s.share(&share)).await else {
        return wire_err(WireError::NotFound, "no such share");
    };
    if !rec.devices.contains(&peer.id) {
        return wire_err(WireError::Refused, "not a member of this share");
    }
    let paths: Vec<RelPath> = blocks.iter().map(|b| b.path.clone()).collect();
    let entries = match inner.db(move |s| s.local_files_at(&share, &paths)).await {
        Ok(e) => e,
        Err(e) => return wire_err(WireError::Internal, e.message),
    };
    let root = std::path::PathBuf::from(&rec.path);
    let read = tokio::task::spawn_blocking(move || {
        blocks
            .into_iter()
            .zip(entries)
            .map(|(b, e)| {
                let size = match e {
                    Some(e) if e.record.is_file() && !e.record.deleted => e.record.size,
                    _ => return BlockReply::Missing(format!("{} is not here", b.path)),
                };
                if b.offset.checked_add(b.len as u64).is_none_or(|end| end > size) {
                    return BlockReply::Missing("block beyond the end of the file".into());
                }
                match ferry_fs::read_range(&root, &b.path, b.offset, b.len) {
                    Ok(data) if ChunkHash::of(&data) == b.hash => BlockReply::Data(data),
                    Ok(_) => BlockReply::Missing("the file changed; block no longer here".into()),
                    Err(e) => BlockReply::Missing(e.to_string()),
                }
            })
            .collect::<Vec<_>>()
    })
    .await;
    match read {
        Ok(blocks) => Message::Blocks { blocks },
        Err(e) => wire_err(WireError::Internal, e.to_string()),
    }
}

async fn on_index(
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
        match crate::compact::resolve(&mut records, &chunks_from, &bases) {
            Ok(()) => {}
            Err(crate::compact::Unresolved::Missing(m)) => return wire_err(WireError::NotFound, m),
            Err(crate::compact::Unresolved::Malformed(m)) => {
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
    let pid = peer.id;
    let needed = inner
        .db(move |s| {
            s.put_remote(&share, &pid, epoch, &good)?;
            crate::need::any_needed(s, &share, &good)
        })
        .await;
    let needed = match needed {
        Ok(n) => n,
        Err(e) => return wire_err(WireError::Internal, e.message),
    };
    inner.emit(Event::IndexReceived { share: share.to_string(), device: peer.id.to_string(), records: n });
    if needed && let Some(h) = inner.shares.lock().unwrap().get(&share) {
        h.request_pull();
    }
    Message::Ack
}

async fn on_cluster_config(inner: &Arc<Context>, peer: &Arc<PeerLink>, shares: Vec<ShareAnnounce>) {
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
async fn reconcile_senders(inner: &Arc<Context>, peer: &Arc<PeerLink>, restart: bool) {
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
    loop {
        // Mark the current sequence seen before reading, so a commit after the read still
        // wakes the wait below.
        seq_rx.borrow_and_update();
        let a = after;
        let recs = match inner.db(move |s| s.local_since(&share, Seq(a), INDEX_BATCH_RECORDS)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("index read failed: {e}");
                return;
            }
        };
        if recs.is_empty() {
            tokio::select! {
                r = seq_rx.changed() => if r.is_err() { return },
                _ = peer.conn.closed() => return,
            }
            continue;
        }
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
        let last = batch.last().map(|r| r.seq.0).unwrap_or(after);
        let n = batch.len();
        let msg = if whole {
            Message::IndexUpdate { share, epoch, records: batch }
        } else {
            compact(&inner, &peer, share, epoch, batch).await
        };
        let compacted = matches!(msg, Message::IndexUpdateCompact { .. });
        match peer.conn.request(&msg, REQUEST_TIMEOUT).await {
            Ok(Message::Ack) => {
                after = last;
                whole = false;
                inner.emit(Event::IndexSent { share: share.to_string(), device: peer.id.to_string(), records: n });
            }
            Ok(Message::Error { code: WireError::NotFound, message }) if compacted => {
                // The peer no longer holds content a reference named: the same records again, whole.
                tracing::debug!(peer = %peer.id.short(), %share, "sending index whole: {message}");
                whole = true;
            }
            Ok(Message::Error { message, .. }) => {
                tracing::info!(peer = %peer.id.short(), %share, "peer refused index: {message}");
                return;
            }
            Ok(other) => {
                tracing::warn!(peer = %peer.id.short(), "unexpected answer to index: {}", msg_name(&other));
                return;
            }
            Err(e) => {
                tracing::info!(peer = %peer.id.short(), "index send failed: {e}");
                return;
            }
        }
    }
}

/// The index update for `batch`: compact (see [`crate::compact`]) when the peer holds all or
/// most of a big file's chunks, plain otherwise (and whenever the lookup fails).
async fn compact(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    share: ShareId,
    epoch: u64,
    batch: Vec<FileRecord>,
) -> Message {
    let paths = crate::compact::candidate_paths(&batch);
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
    let chunks_from = crate::compact::references(&batch, &theirs);
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

async fn send_cluster_config(inner: &Arc<Context>, peer: &Arc<PeerLink>) {
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

/// Keeps paired devices connected: dials each disconnected one at its known addresses, with
/// a per-device backoff.
pub(crate) async fn dial_loop(inner: Arc<Context>) {
    let mut stop = inner.stop.subscribe();
    let mut backoff: HashMap<DeviceId, (Instant, Duration)> = HashMap::new();
    let mut hints = inner.book.changes();
    // Addresses discovery last gave per device: a new one means "dial now", whatever the backoff.
    let mut last_hint: HashMap<DeviceId, Vec<SocketAddr>> = HashMap::new();
    // Sleeps until the next backoff deadline of a device that is not connected, or until
    // something wakes it (no ticking while every paired device is connected: idle CPU).
    let mut next_due = Instant::now();
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep_until(next_due.into()) => {}
            _ = inner.dial_wake.notified() => {}
            r = hints.changed() => if r.is_err() { return },
        }
        next_due = Instant::now() + DIAL_IDLE;
        // Paused syncing: no new connections (see pause.rs); resuming wakes the dialer.
        if inner.sync_paused() {
            continue;
        }
        let Ok(devices) = inner.db(|s| s.devices()).await else {
            next_due = Instant::now() + DIAL_MIN;
            continue;
        };
        let now = Instant::now();
        for d in devices.into_iter().filter(|d| d.paired) {
            let hinted = inner.book.addresses(&d.id);
            let fresh = !hinted.is_empty() && last_hint.get(&d.id) != Some(&hinted);
            if let Some(peer) = inner.peer(&d.id) {
                backoff.remove(&d.id);
                if fresh && hinted.first() != Some(&peer.conn.remote_addr()) {
                    // It announces a newer address than the one we talk to (a new DHCP lease,
                    // another interface): check the connection at once instead of waiting out
                    // the idle timeout, so the redial to the new address comes within seconds.
                    // A device that still answers keeps its connection.
                    inner.spawn(async move {
                        if !matches!(tokio::time::timeout(MOVED_PROBE, peer.ping()).await, Ok(Ok(_))) {
                            tracing::info!(peer = %peer.id.short(), "device moved; redialing at its new address");
                            peer.conn.close("moved");
                        }
                    });
                }
                last_hint.insert(d.id, hinted);
                continue;
            }
            last_hint.insert(d.id, hinted);
            if fresh {
                backoff.insert(d.id, (now, DIAL_MIN));
            }
            let entry = backoff.entry(d.id).or_insert((now, DIAL_MIN));
            if entry.0 > now {
                next_due = next_due.min(entry.0);
                continue;
            }
            {
                let mut dialing = inner.dialing.lock().unwrap();
                if !dialing.insert(d.id) {
                    next_due = next_due.min(now + DIAL_MIN);
                    continue;
                }
            }
            entry.0 = now + entry.1;
            entry.1 = (entry.1 * 2).min(DIAL_MAX);
            // Look again at the next attempt's time (a dial that connects removes the device
            // from the list above; one that fails is retried then).
            next_due = next_due.min(entry.0);
            let i = inner.clone();
            inner.spawn(async move {
                dial(&i, &d).await;
                i.dialing.lock().unwrap().remove(&d.id);
            });
        }
    }
}

async fn dial(inner: &Arc<Context>, d: &DeviceRecord) {
    // Fresh hints (mDNS, config) first, then addresses the user gave, then the last known ones.
    let mut addrs: Vec<SocketAddr> = inner.book.addresses(&d.id);
    for a in d.static_addresses.iter().chain(d.addresses.iter()).filter_map(|a| a.parse().ok()) {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    for addr in addrs {
        if inner.peer(&d.id).is_some() || inner.stopping() {
            return;
        }
        match inner.endpoint.connect(addr, Some(d.id)).await {
            Ok(conn) => match conn.handshake(&inner.hello()).await {
                Ok(hello) if check_hello(&hello).is_ok() => {
                    let i = inner.clone();
                    inner.spawn(async move { attach(&i, conn, hello).await });
                    return;
                }
                Ok(_) => conn.close("bad hello"),
                Err(e) => tracing::debug!(peer = %d.id.short(), %addr, "handshake failed: {e}"),
            },
            Err(e) => tracing::debug!(peer = %d.id.short(), %addr, "dial failed: {e}"),
        }
    }
}
