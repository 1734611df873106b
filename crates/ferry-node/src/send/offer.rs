//! The receiver's side of an offer and of the updates that follow: every field of a peer's
//! offer checked before anything is stored, then recorded (prompt or auto-accept).

use super::*;

/// Everything a receiver checks before it records an offer. Paths are already [`RelPath`]s
/// (decoding refused `..`, absolute paths, `.ferry` and temp names).
pub(crate) fn check_offer(files: &[SendFile], dirs: &[RelPath]) -> Result<(), String> {
    if files.is_empty() && dirs.is_empty() {
        return Err("an empty send".into());
    }
    if files.len() > MAX_SEND_FILES || dirs.len() > MAX_SEND_DIRS {
        return Err(format!("more than {MAX_SEND_FILES} files or {MAX_SEND_DIRS} folders"));
    }
    let mut total = 0u64;
    let mut file_paths = HashSet::new();
    for f in files {
        f.check()?;
        total = total.saturating_add(f.size);
        if !file_paths.insert(f.path.as_str()) {
            return Err(format!("{} is offered twice", f.path));
        }
    }
    if total > MAX_SEND_BYTES {
        return Err(format!("{total} bytes is over the {MAX_SEND_BYTES}-byte limit"));
    }
    // A file may not also be a folder (named as one, or be the parent of another entry).
    for p in files.iter().map(|f| &f.path).chain(dirs.iter()) {
        for a in p.ancestors() {
            if file_paths.contains(a.as_str()) {
                return Err(format!("{a} is offered both as a file and as a folder"));
            }
        }
    }
    for d in dirs {
        if file_paths.contains(d.as_str()) {
            return Err(format!("{d} is offered both as a file and as a folder"));
        }
    }
    Ok(())
}

/// Answers an offer from a paired peer.
pub(crate) async fn on_offer(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    id: TransferId,
    files: Vec<SendFile>,
    dirs: Vec<RelPath>,
) -> Message {
    if let Err(e) = check_offer(&files, &dirs) {
        tracing::warn!(peer = %peer.id.short(), "refused a send offer: {e}");
        return Message::Error { code: WireError::BadRequest, message: format!("send refused: {e}") };
    }
    let pid = peer.id;
    let looked =
        inner.db(move |s| Ok((s.device(&pid)?, s.is_muted(&pid)?, s.auto_accept(&pid)?, s.transfer(&id)?))).await;
    let (dev, muted, auto, existing) = match looked {
        Ok(x) => x,
        Err(e) => return Message::Error { code: WireError::Internal, message: e.message },
    };
    let Some(dev) = dev.filter(|d| d.paired) else {
        return Message::Error { code: WireError::NotPaired, message: "this device is not paired with you".into() };
    };
    if let Some(t) = existing {
        // A redelivery (the ack got lost): same answer, nothing new.
        return if t.peer == pid && !t.outgoing {
            Message::Ack
        } else {
            Message::Error { code: WireError::BadRequest, message: "transfer id already in use".into() }
        };
    }
    if muted {
        return Message::Error {
            code: WireError::Refused,
            message: format!("{} does not accept sends from this device", inner.cfg.name),
        };
    }
    if !auto && let Err(e) = inner.prompt_limits.check(pid, "a send offer") {
        return Message::Error { code: WireError::Refused, message: e };
    }
    let rec = TransferRecord {
        id,
        peer: pid,
        outgoing: false,
        created_ms: now_ms(),
        files,
        dirs,
        sources: vec![],
        state: store_state(ferry_engine::send::incoming(auto)),
        done_bytes: 0,
        notify: auto.then_some(SendUpdate::Accepted),
        placed: vec![],
        finished_ms: None,
    };
    let r = rec.clone();
    match inner.db(move |s| s.add_transfer(&r)).await {
        Ok(true) => {}
        Ok(false) => return Message::Ack,
        Err(e) => return Message::Error { code: WireError::Internal, message: e.message },
    }
    let names = top_names(&rec);
    inner.emit(Event::SendOffered {
        id: id.to_hex(),
        device: pid.to_string(),
        device_name: dev.name.clone(),
        direction: "in".into(),
        files: rec.files.len() as u64,
        bytes: rec.total_bytes(),
        names: names.clone(),
    });
    if auto {
        tracing::info!(peer = %pid.short(), "send {} auto-accepted", id.to_hex());
        emit_state(inner, &rec);
        flush_soon(inner, pid);
    } else {
        let kind = PromptKind::SendOffer {
            transfer: id,
            files: rec.files.len() as u64,
            bytes: rec.total_bytes(),
            names: names.into_iter().take(PROMPT_NAMES).collect(),
        };
        if let Err(e) = add_prompt(inner, pid, kind).await {
            return Message::Error { code: WireError::Internal, message: e.message };
        }
    }
    Message::Ack
}

/// An update from the other side of a transfer.
pub(crate) async fn on_update(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    id: TransferId,
    update: SendUpdate,
) -> Message {
    let Ok(Some(t)) = inner.db(move |s| s.transfer(&id)).await else {
        return Message::Error { code: WireError::NotFound, message: "no such transfer".into() };
    };
    if t.peer != peer.id {
        return Message::Error { code: WireError::NotFound, message: "no such transfer".into() };
    }
    match (t.outgoing, update) {
        (true, SendUpdate::Accepted) => {
            set_state(inner, id, SendEvent::PeerAccepted, None).await;
        }
        (true, SendUpdate::Rejected(m)) => {
            set_state(inner, id, SendEvent::PeerRejected(bounded(m)), None).await;
        }
        (true, SendUpdate::Progress(done)) if !t.state.is_final() => {
            let done = done.min(t.total_bytes());
            let rate = inner.sends.with_live(id, |l| {
                l.record(done);
                l.rate()
            });
            emit_progress(inner, &t, done, rate);
        }
        (true, SendUpdate::Done) => {
            // The accept may not have arrived (or been stored) yet: it goes first.
            if transition(&engine_state(&t.state), &SendEvent::PeerAccepted).is_some() {
                set_state(inner, id, SendEvent::PeerAccepted, None).await;
            }
            if !t.state.is_final() {
                inner.sends.with_live(id, |l| l.record(t.total_bytes()));
                emit_progress(inner, &t, t.total_bytes(), 0.0);
            }
            set_state(inner, id, SendEvent::Completed, None).await;
        }
        (true, SendUpdate::Failed(m)) | (false, SendUpdate::Failed(m)) => {
            let m = format!("{} reports: {}", peer.id.short(), bounded(m));
            if set_state(inner, id, SendEvent::Failed(m), None).await.is_some() && !t.outgoing {
                remove_staging(inner, &id).await;
                remove_prompt_for(inner, id).await;
            }
        }
        (_, SendUpdate::Progress(_)) => {}
        (false, other) => {
            return Message::Error {
                code: WireError::BadRequest,
                message: format!("a sender cannot send {other:?} for a transfer"),
            };
        }
    }
    Message::Ack
}
