//! The receiver pulls an accepted send into its staging folder (verified chunks, resume) and
//! places it in the inbox under a name nothing uses yet.

use super::*;

pub(super) fn start_receive(inner: &Arc<Context>, peer: &Arc<PeerLink>, id: TransferId) {
    if !inner.sends.receiving.lock().unwrap().insert(id) {
        return;
    }
    let (i, p) = (inner.clone(), peer.clone());
    inner.spawn(async move {
        let mut stop = i.stop.subscribe();
        let outcome = tokio::select! {
            r = receive(&i, &p, id) => Some(r),
            _ = stop.wait_for(|s| *s) => None,
            _ = p.conn.closed() => None,
        };
        i.sends.receiving.lock().unwrap().remove(&id);
        match outcome {
            None | Some(Ok(())) => {}
            Some(Err(Stop::Paused(why))) => {
                tracing::info!(peer = %p.id.short(), "send {} paused: {why}", id.to_hex());
            }
            Some(Err(Stop::Failed(why))) => {
                tracing::warn!(peer = %p.id.short(), "send {} failed: {why}", id.to_hex());
                let update = Some(SendUpdate::Failed(why.clone()));
                if set_state(&i, id, TransferState::Failed(why), any, update).await.is_some() {
                    remove_staging(&i, &id).await;
                    flush_soon(&i, p.id);
                }
            }
        }
    });
}

enum Stop {
    /// The connection went away: resume when the device is back.
    Paused(String),
    /// The send cannot complete (bad data from the sender, source changed, local disk error).
    Failed(String),
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, Stop> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Stop::Failed(e)),
        Err(e) => Err(Stop::Failed(e.to_string())),
    }
}

fn io(what: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", what.display())
}

/// A chunk still to fetch.
struct Need {
    file: u32,
    offset: u64,
    len: u32,
    hash: ChunkHash,
    path: PathBuf,
}

async fn receive(inner: &Arc<Context>, peer: &Arc<PeerLink>, id: TransferId) -> Result<(), Stop> {
    let Some(t) = inner.db(move |s| s.transfer(&id)).await.map_err(|e| Stop::Failed(e.message))? else {
        return Ok(());
    };
    if t.state != TransferState::Active || t.outgoing {
        return Ok(());
    }
    let t = Arc::new(t);
    let staging = staging_dir(inner, &id);
    let placed: HashSet<String> = t.placed.iter().map(|(from, _)| from.clone()).collect();

    // 1. What is already here (verified chunk by chunk), and what must be fetched.
    let (inbox, st, tt, placed2) = (inner.cfg.inbox.clone(), staging.clone(), t.clone(), placed.clone());
    let (have, need) = blocking(move || {
        std::fs::create_dir_all(&inbox).map_err(io(&inbox))?;
        std::fs::create_dir_all(&st).map_err(io(&st))?;
        let mut have = 0u64;
        let mut need = Vec::new();
        for (i, f) in tt.files.iter().enumerate() {
            if placed2.contains(f.path.as_str().split('/').next().unwrap_or("")) {
                have += f.size;
                continue;
            }
            let full = ferry_fs::prepare_parent(&st, &f.path).map_err(|e| e.to_string())?;
            let existed = match std::fs::symlink_metadata(&full) {
                Ok(m) if m.file_type().is_file() => true,
                Ok(_) => return Err(format!("{} is in the way", full.display())),
                Err(_) => false,
            };
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&full)
                .map_err(io(&full))?;
            file.set_len(f.size).map_err(io(&full))?;
            let mut buf = Vec::new();
            for (off, c) in f.chunk_offsets() {
                if existed {
                    buf.resize(c.len as usize, 0);
                    if file.read_exact_at(&mut buf, off).is_ok() && ChunkHash::of(&buf) == c.hash {
                        have += u64::from(c.len);
                        continue;
                    }
                }
                need.push(Need { file: i as u32, offset: off, len: c.len, hash: c.hash, path: full.clone() });
            }
        }
        Ok((have, need))
    })
    .await?;
    inner.sends.with_live(id, |l| {
        l.resumed = have;
        l.samples.clear();
        l.record(have);
    });
    if have > 0 {
        tracing::info!(peer = %peer.id.short(), "send {}: resuming with {have} bytes already here", id.to_hex());
    }
    report_progress(inner, peer, &t, have, true);

    // 2. Fetch the rest, 16 chunks in flight, each verified before it is written.
    let mut done = have;
    let jobs = need.into_iter().map(|n| {
        let peer = peer.clone();
        async move {
            let req = Message::SendBlockRequest { id, file: n.file, offset: n.offset, len: n.len, hash: n.hash };
            let data = match peer.conn.request(&req, SEND_TIMEOUT).await {
                Ok(Message::Block { data }) => data,
                Ok(Message::Error { message, .. }) => return Err(Stop::Failed(bounded(message))),
                Ok(_) => return Err(Stop::Failed("unexpected answer to a block request".into())),
                Err(e) => return Err(Stop::Paused(e.to_string())),
            };
            let who = peer.id.short();
            // Hashing and writing run off the runtime.
            blocking(move || {
                if data.len() != n.len as usize || ChunkHash::of(&data) != n.hash {
                    return Err(format!("{who} sent a chunk that does not match its hash"));
                }
                let f = std::fs::OpenOptions::new().write(true).open(&n.path).map_err(io(&n.path))?;
                f.write_all_at(&data, n.offset).map_err(io(&n.path))?;
                Ok(data.len() as u64)
            })
            .await
        }
    });
    let mut stream = futures::stream::iter(jobs).buffer_unordered(PARALLEL_BLOCKS);
    while let Some(r) = stream.next().await {
        let n = r?;
        done += n;
        inner.sends.with_live(id, |l| {
            l.wire += n;
            l.record(done);
        });
        report_progress(inner, peer, &t, done, false);
    }
    drop(stream);

    // 3. Whole-file hashes, metadata, folders, fsync.
    let (st, tt, placed2) = (staging.clone(), t.clone(), placed.clone());
    blocking(move || {
        let mut parents = BTreeSet::new();
        for f in tt.files.iter().filter(|f| !placed2.contains(f.path.as_str().split('/').next().unwrap_or(""))) {
            let full = ferry_fs::checked_path(&st, &f.path).map_err(|e| e.to_string())?;
            let mut file = std::fs::File::open(&full).map_err(io(&full))?;
            let mut h = blake3::Hasher::new();
            std::io::copy(&mut file, &mut h).map_err(io(&full))?;
            if ChunkHash::from(h.finalize()) != f.hash {
                return Err(format!("{} does not match its whole-file hash", f.path));
            }
            let mode = if f.executable { 0o755 } else { 0o644 };
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode)).map_err(io(&full))?;
            let w = std::fs::OpenOptions::new().write(true).open(&full).map_err(io(&full))?;
            w.sync_all().map_err(io(&full))?;
            ferry_fs::set_mtime(&st, &f.path, f.mtime_ns).map_err(|e| e.to_string())?;
            parents.insert(full.parent().unwrap_or(&st).to_path_buf());
        }
        for d in tt.dirs.iter().filter(|d| !placed2.contains(d.as_str().split('/').next().unwrap_or(""))) {
            let full = ferry_fs::prepare_parent(&st, d).map_err(|e| e.to_string())?;
            match std::fs::create_dir(&full) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && full.is_dir() => {}
                Err(e) => return Err(format!("{}: {e}", full.display())),
            }
            parents.insert(full.parent().unwrap_or(&st).to_path_buf());
            parents.insert(full);
        }
        for p in parents {
            ferry_fs::fsync_dir(&p).map_err(|e| e.to_string())?;
        }
        Ok(())
    })
    .await?;

    // 4. Move each top-level item into the inbox under a free name; never overwrite.
    for top in top_names(&t) {
        if placed.contains(&top) {
            continue;
        }
        let (st, inbox, name) = (staging.clone(), inner.cfg.inbox.clone(), top.clone());
        let final_name = blocking(move || place(&st.join(&name), &inbox, &name)).await?;
        let (from, to) = (top.clone(), final_name.clone());
        inner
            .db(move |s| {
                s.update_transfer(&id, |t| {
                    t.placed.push((from, to));
                    true
                })
            })
            .await
            .map_err(|e| Stop::Failed(e.message))?;
        let (st, name) = (staging.clone(), top.clone());
        // The staging copy of a file is a second link to what is now in the inbox.
        let _ = blocking(move || {
            let p = st.join(&name);
            if p.symlink_metadata().is_ok_and(|m| m.is_file()) {
                std::fs::remove_file(&p).map_err(io(&p))?;
            }
            Ok(())
        })
        .await;
    }
    let (inbox, st) = (inner.cfg.inbox.clone(), staging.clone());
    blocking(move || {
        ferry_fs::fsync_dir(&inbox).map_err(|e| e.to_string())?;
        std::fs::remove_dir_all(&st).map_err(io(&st))
    })
    .await?;
    inner.sends.with_live(id, |l| l.record(t.total_bytes()));
    emit_progress(inner, &t, t.total_bytes(), 0.0);
    if let Some(t) = set_state(inner, id, TransferState::Done, any, Some(SendUpdate::Done)).await {
        tracing::info!(peer = %peer.id.short(), "send {} received: {} files", id.to_hex(), t.files.len());
    }
    flush_soon(inner, peer.id);
    Ok(())
}

/// Progress: an event here and an update to the sender, about four a second (and the last one).
fn report_progress(inner: &Arc<Context>, peer: &Arc<PeerLink>, t: &Arc<TransferRecord>, done: u64, force: bool) {
    let last = done == t.total_bytes();
    let (due, rate) = inner.sends.with_live(t.id, |l| (l.due(force || last), l.rate()));
    if !due {
        return;
    }
    emit_progress(inner, t, done, rate);
    let (p, id) = (peer.clone(), t.id);
    tokio::spawn(async move {
        let _ = p.conn.request(&Message::SendUpdate { id, update: SendUpdate::Progress(done) }, SEND_TIMEOUT).await;
    });
}

/// `name`, then `stem (1).ext`, `stem (2).ext`... (folders and dotfiles: `name (1)`).
pub(crate) fn candidate(name: &str, n: u32, is_dir: bool) -> String {
    if n == 0 {
        return name.to_string();
    }
    match name.rfind('.') {
        Some(dot) if !is_dir && dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

/// Moves `src` (a file or folder in the staging folder) into `inbox` under the first free
/// candidate name, atomically and without replacing anything; returns the name it got.
pub(super) fn place(src: &Path, inbox: &Path, name: &str) -> Result<String, String> {
    let meta = std::fs::symlink_metadata(src).map_err(io(src))?;
    let is_dir = meta.is_dir();
    for n in 0..10_000 {
        let cand = candidate(name, n, is_dir);
        let target = inbox.join(&cand);
        if is_dir {
            // Claim the name with an empty folder (fails if anything is there), then rename
            // over it: rename replaces only an empty directory.
            match std::fs::create_dir(&target) {
                Ok(()) => {
                    std::fs::rename(src, &target).map_err(io(&target))?;
                    return Ok(cand);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("{}: {e}", target.display())),
            }
        } else {
            match std::fs::hard_link(src, &target) {
                Ok(()) => return Ok(cand),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("{}: {e}", target.display())),
            }
        }
    }
    Err(format!("no free name for {name} in {}", inbox.display()))
}

pub(super) async fn remove_staging(inner: &Arc<Context>, id: &TransferId) {
    let dir = staging_dir(inner, id);
    let _ = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove {}: {e}", dir.display()),
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// API
