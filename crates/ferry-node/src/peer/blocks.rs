//! Serving block requests (single and batched) from a paired peer: every block checked (indexed
//! here, inside the file, the same hash on disk) before it is read out. A single block the live
//! file does not hold may come from a download in progress of the same share and path (see
//! `swarm`), re-hashed from its temp file the same way.

use super::*;

/// The share `peer` asks about, if it is a member; otherwise the answer that refuses it.
async fn member_share(
    inner: &Arc<Context>,
    peer: &PeerLink,
    share: ShareId,
) -> Result<ferry_store::ShareRecord, Message> {
    let Ok(Some(rec)) = inner.db(move |s| s.share(&share)).await else {
        return Err(wire_err(WireError::NotFound, "no such share"));
    };
    if !rec.devices.contains(&peer.id) {
        return Err(wire_err(WireError::Refused, "not a member of this share"));
    }
    Ok(rec)
}

pub(super) async fn serve_block(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    share: ShareId,
    path: RelPath,
    offset: u64,
    len: u32,
    hash: ChunkHash,
) -> Message {
    let rec = match member_share(inner, peer, share).await {
        Ok(rec) => rec,
        Err(refused) => return refused,
    };
    if len == 0 || len > MAX_BLOCK {
        return wire_err(WireError::BadRequest, "bad block length");
    }
    let block = match live_block(inner, peer, &rec, path.clone(), offset, len, hash).await {
        Ok(data) => data,
        Err(refusal) => match from_download(inner, share, &path, offset, len, hash).await {
            Some(data) => data,
            None => return refusal,
        },
    };
    served(inner, share, block.len() as u64);
    Message::Block { data: block }
}

/// Counts bytes of `share` served to a peer (the share's status shows them).
fn served(inner: &Arc<Context>, share: ShareId, n: u64) {
    if let Some(h) = inner.shares.lock().unwrap().get(&share) {
        h.runtime.lock().unwrap().served_bytes += n;
    }
}

/// The block from a download of `path` in progress, if its chunk is written there (and still
/// hashes to `hash`: see `swarm::Download::read`).
async fn from_download(
    inner: &Arc<Context>,
    share: ShareId,
    path: &RelPath,
    offset: u64,
    len: u32,
    hash: ChunkHash,
) -> Option<Vec<u8>> {
    let download = inner.shares.lock().unwrap().get(&share)?.downloads.get(path)?;
    tokio::task::spawn_blocking(move || download.read(offset, len, hash)).await.ok().flatten()
}

/// The block from the live file at `path` (indexed here, inside the file, the same hash on
/// disk), or the answer that refuses it.
async fn live_block(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    rec: &ferry_store::ShareRecord,
    path: RelPath,
    offset: u64,
    len: u32,
    hash: ChunkHash,
) -> Result<Vec<u8>, Message> {
    let share = rec.id;
    // Read before the lookup: a commit racing it only makes the cached size look stale.
    let seq = inner.shares.lock().unwrap().get(&share).map(|h| h.current_seq());
    let size = match seq.and_then(|q| peer.blocks.size(&share, &path, q)) {
        Some(size) => size,
        None => {
            let p = path.clone();
            let size = match inner.db(move |s| s.local_file(&share, &p)).await {
                Ok(Some(e)) if e.record.is_file() && !e.record.deleted => e.record.size,
                _ => return Err(wire_err(WireError::NotFound, format!("{path} is not here"))),
            };
            if let Some(q) = seq {
                peer.blocks.put(share, path.clone(), q, size);
            }
            size
        }
    };
    if offset.checked_add(len as u64).is_none_or(|end| end > size) {
        return Err(wire_err(WireError::BadRequest, "block beyond the end of the file"));
    }
    let root = std::path::PathBuf::from(&rec.path);
    let read = tokio::task::spawn_blocking(move || {
        // Tests: hold the serving of live files (peers serving downloads in progress go on).
        crate::fault::point("serve.live_block");
        ferry_fs::read_range(&root, &path, offset, len)
    })
    .await;
    match read {
        Ok(Ok(data)) if ChunkHash::of(&data) == hash => Ok(data),
        Ok(Ok(_)) => Err(wire_err(WireError::NotFound, "the file changed; block no longer here")),
        Ok(Err(e)) => Err(wire_err(WireError::NotFound, e.to_string())),
        Err(e) => Err(wire_err(WireError::Internal, e.to_string())),
    }
}

/// Serves a batch of small blocks: one share check, one index read, one blocking task. Every
/// block is checked like a single one (indexed here, inside the file, same hash on disk).
pub(super) async fn serve_blocks(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    share: ShareId,
    blocks: Vec<BlockRef>,
) -> Message {
    if let Err(e) = Message::check_blocks_request(&blocks) {
        return wire_err(WireError::BadRequest, e);
    }
    let rec = match member_share(inner, peer, share).await {
        Ok(rec) => rec,
        Err(refused) => return refused,
    };
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
        Ok(blocks) => {
            let n = blocks.iter().map(|b| if let BlockReply::Data(d) = b { d.len() as u64 } else { 0 }).sum();
            served(inner, share, n);
            Message::Blocks { blocks }
        }
        Err(e) => wire_err(WireError::Internal, e.to_string()),
    }
}

/// Serves bytes of content this device keeps of `path` with whole-file hash `hash`: an archived
/// version (its file checked to be inside the share's archive) or the live file. The share's
/// members only, like every block. `len` 0 answers whether it is kept, with no bytes.
pub(super) async fn serve_version_block(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    share: ShareId,
    path: RelPath,
    hash: ChunkHash,
    offset: u64,
    len: u32,
) -> Message {
    let rec = match member_share(inner, peer, share).await {
        Ok(rec) => rec,
        Err(refused) => return refused,
    };
    if len > MAX_BLOCK {
        return wire_err(WireError::BadRequest, "bad block length");
    }
    let p = path.clone();
    let found = inner.db(move |s| Ok((s.versions(&share, &p)?, s.local_file(&share, &p)?))).await;
    let Ok((versions, live)) = found else { return wire_err(WireError::Internal, "could not read the index") };
    let root = std::path::PathBuf::from(&rec.path);
    // An archived copy first (it does not change under us), then the live file.
    let file = versions
        .iter()
        .filter(|v| v.hash == hash && v.kept_here())
        .find_map(|v| crate::history::version_file(&root, &v.archive_path).ok().map(|f| (f, v.size)))
        .or_else(|| {
            let e = live.filter(|e| e.record.is_file() && !e.record.deleted && e.record.hash == hash)?;
            ferry_fs::checked_path(&root, &path).ok().map(|f| (f, e.record.size))
        });
    let Some((file, size)) = file else {
        return wire_err(WireError::NotFound, format!("no content of {path} with that hash is kept here"));
    };
    if offset.checked_add(len as u64).is_none_or(|end| end > size) {
        return wire_err(WireError::BadRequest, "block beyond the end of the version");
    }
    if len == 0 {
        return Message::Block { data: Vec::new() };
    }
    match tokio::task::spawn_blocking(move || ferry_fs::read_file_range(&file, offset, len)).await {
        Ok(Ok(data)) => Message::Block { data },
        Ok(Err(e)) => wire_err(WireError::NotFound, e.to_string()),
        Err(e) => wire_err(WireError::Internal, e.to_string()),
    }
}
