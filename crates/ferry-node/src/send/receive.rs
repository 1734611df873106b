//! The receiver pulls an accepted send into its staging folder (verified chunks, resume) and
//! places it in the inbox under a name nothing uses yet.

use super::*;
use crate::fetch::{self, Chunk, FetchError, Origin, Source};

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
                if set_state(&i, id, SendEvent::Failed(why), update).await.is_some() {
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

/// Files of a send fetched at once. Each fills with up to [`PARALLEL_BLOCKS`] chunks in
/// flight, and all of them share that many requests to the sender (see [`SendSource`]), so a
/// send of many small files keeps the link busy and one of big files uses no more memory.
const PARALLEL_FILES: usize = 4;

/// Where a send's receiver gets the chunks: only the sender, and only through a request for
/// this send's file, which the sender checks against what it offered.
struct SendSource<'a> {
    peer: &'a PeerLink,
    id: TransferId,
    file: u32,
    /// Requests in flight for the whole send.
    permits: &'a tokio::sync::Semaphore,
}

impl Source for SendSource<'_> {
    async fn remote(&self, _index: usize, c: Chunk, attempt: usize) -> Option<Result<Vec<u8>, FetchError>> {
        if attempt > 0 {
            return None;
        }
        let _permit = self.permits.acquire().await.ok()?;
        let req =
            Message::SendBlockRequest { id: self.id, file: self.file, offset: c.offset, len: c.len, hash: c.hash };
        Some(match self.peer.conn.request(&req, SEND_TIMEOUT).await {
            Ok(Message::Block { data }) => Ok(data),
            Ok(Message::Error { message, .. }) => Err(FetchError::Failed(bounded(message))),
            Ok(_) => Err(FetchError::Failed("unexpected answer to a block request".into())),
            Err(e) => Err(FetchError::Unavailable(e.to_string())),
        })
    }
}

impl From<FetchError> for Stop {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Unavailable(m) => Stop::Paused(m),
            FetchError::Failed(m) | FetchError::Disk(m) => Stop::Failed(m),
        }
    }
}

/// The top-level name of a path in a send (what is placed in the inbox as one item).
fn top(p: &RelPath) -> &str {
    p.as_str().split('/').next().unwrap_or("")
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
    let (inbox, st) = (inner.cfg.inbox.clone(), staging.clone());
    blocking(move || {
        ferry_fs::create_dirs_durable(&inbox).map_err(io(&inbox))?;
        ferry_fs::create_dirs_durable(&st).map_err(io(&st))
    })
    .await?;
    let placed = Arc::new(adopt_moved_folders(inner, &t, &staging).await?);
    fetch_files(inner, peer, &t, &staging, &placed).await?;
    make_dirs(&t, &staging, &placed).await?;
    place_items(inner, &t, &staging, &placed).await?;
    let (inbox, st) = (inner.cfg.inbox.clone(), staging.clone());
    blocking(move || {
        ferry_fs::fsync_dir(&inbox).map_err(|e| e.to_string())?;
        std::fs::remove_dir_all(&st).map_err(io(&st))
    })
    .await?;
    inner.sends.with_live(id, |l| l.record(t.total_bytes()));
    emit_progress(inner, &t, t.total_bytes(), 0.0);
    if let Some(t) = set_state(inner, id, SendEvent::Completed, Some(SendUpdate::Done)).await {
        tracing::info!(peer = %peer.id.short(), "send {} received: {} files", id.to_hex(), t.files.len());
    }
    flush_soon(inner, peer.id);
    Ok(())
}

/// Fills every file not placed yet into the staging folder through the fetch pipeline: chunks
/// already there (an interrupted try) are verified and kept, the rest fetched from the sender;
/// each file's whole hash comes out of the same pass. Then mode, fsync and mtime.
async fn fetch_files(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    t: &Arc<TransferRecord>,
    staging: &Path,
    placed: &Arc<HashSet<String>>,
) -> Result<(), Stop> {
    let id = t.id;
    let already: u64 = t.files.iter().filter(|f| placed.contains(top(&f.path))).map(|f| f.size).sum();
    inner.sends.with_live(id, |l| {
        l.resumed = already;
        l.samples.clear();
        l.record(already);
    });
    report_progress(inner, peer, t, already, true);
    let done = std::sync::atomic::AtomicU64::new(already);
    let permits = tokio::sync::Semaphore::new(PARALLEL_BLOCKS);
    let todo: Vec<usize> = (0..t.files.len()).filter(|&i| !placed.contains(top(&t.files[i].path))).collect();
    let jobs: Vec<_> = todo.into_iter().map(|i| fetch_file(inner, peer, t, staging, i, &done, &permits)).collect();
    let mut stream = futures::stream::iter(jobs).buffer_unordered(PARALLEL_FILES);
    while let Some(r) = stream.next().await {
        r?;
    }
    Ok(())
}

/// One file of [`fetch_files`]: filled, checked against its whole-file hash, made durable.
async fn fetch_file(
    inner: &Arc<Context>,
    peer: &Arc<PeerLink>,
    t: &Arc<TransferRecord>,
    staging: &Path,
    i: usize,
    done: &std::sync::atomic::AtomicU64,
    permits: &tokio::sync::Semaphore,
) -> Result<(), Stop> {
    let (f, id) = (&t.files[i], t.id);
    let (st, path, size) = (staging.to_path_buf(), f.path.clone(), f.size);
    let (file, existed) = blocking(move || {
        let full = ferry_fs::prepare_parent(&st, &path).map_err(|e| e.to_string())?;
        let existed = match std::fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_file() => true,
            Ok(_) => return Err(format!("{} is in the way", full.display())),
            Err(_) => false,
        };
        let opts = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).clone();
        let file = opts.open(&full).map_err(io(&full))?;
        file.set_len(size).map_err(io(&full))?;
        Ok((Arc::new(file), existed))
    })
    .await?;
    let chunks: Vec<Chunk> = f.chunk_offsets().map(|(offset, c)| Chunk { offset, len: c.len, hash: c.hash }).collect();
    let source = SendSource { peer, id, file: i as u32, permits };
    // File order: a send has one source, nobody to trade parts with.
    let how = fetch::Fill { resume: existed, parallel: PARALLEL_BLOCKS, start: 0 };
    let written = tokio::sync::watch::channel(0).0;
    let (_, result) = fetch::fill(file.clone(), &chunks, how, written, &source, |n, origin| {
        let now = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        inner.sends.with_live(id, |l| {
            match origin {
                Origin::Kept => l.resumed += n,
                Origin::Remote => l.wire += n,
                Origin::Local | Origin::Repeat | Origin::Zero => {}
            }
            l.record(now);
        });
        report_progress(inner, peer, t, now, false);
    })
    .await;
    if result?.hash != f.hash {
        return Err(Stop::Failed(format!("{} does not match its whole-file hash", f.path)));
    }
    let (st, path, mode, mtime) = (staging.to_path_buf(), f.path.clone(), f.executable, f.mtime_ns);
    blocking(move || {
        let full = ferry_fs::checked_path(&st, &path).map_err(|e| e.to_string())?;
        let perms = std::fs::Permissions::from_mode(if mode { 0o755 } else { 0o644 });
        file.set_permissions(perms).map_err(io(&full))?;
        file.sync_all().map_err(io(&full))?;
        ferry_fs::set_mtime(&st, &path, mtime).map_err(|e| e.to_string())
    })
    .await
}

/// Creates the send's folders (empty ones too) and fsyncs every folder that got an entry, so
/// the whole staged tree is durable before anything is placed.
async fn make_dirs(t: &Arc<TransferRecord>, staging: &Path, placed: &Arc<HashSet<String>>) -> Result<(), Stop> {
    let (st, tt, placed) = (staging.to_path_buf(), t.clone(), placed.clone());
    blocking(move || {
        let mut parents = BTreeSet::new();
        for f in tt.files.iter().filter(|f| !placed.contains(top(&f.path))) {
            let full = ferry_fs::checked_path(&st, &f.path).map_err(|e| e.to_string())?;
            parents.insert(full.parent().unwrap_or(&st).to_path_buf());
        }
        for d in tt.dirs.iter().filter(|d| !placed.contains(top(d))) {
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
    .await
}

/// The top-level items already placed: those recorded, and folders an earlier run moved into
/// the inbox but stopped before recording (`placed_before`), recorded now so that they are
/// neither fetched nor placed a second time.
async fn adopt_moved_folders(
    inner: &Arc<Context>,
    t: &TransferRecord,
    staging: &Path,
) -> Result<HashSet<String>, Stop> {
    let mut placed: HashSet<String> = t.placed.iter().map(|(from, _)| from.clone()).collect();
    let tops: Vec<String> = top_names(t).into_iter().filter(|n| !placed.contains(n)).collect();
    let (st, inbox) = (staging.to_path_buf(), inner.cfg.inbox.clone());
    let found: Vec<(String, String)> = blocking(move || {
        Ok(tops.into_iter().filter_map(|n| placed_before(&st, &inbox, &n).map(|to| (n, to))).collect())
    })
    .await?;
    if found.is_empty() {
        return Ok(placed);
    }
    tracing::info!("send {}: {} folder(s) placed before a stop, recorded now", t.id.to_hex(), found.len());
    let (id, record) = (t.id, found.clone());
    inner
        .db(move |s| {
            s.update_transfer(&id, |t| {
                t.placed.extend(record);
                true
            })
        })
        .await
        .map_err(|e| Stop::Failed(e.message))?;
    placed.extend(found.into_iter().map(|(from, _)| from));
    Ok(placed)
}

/// Moves each top-level item into the inbox under a free name (never overwriting), recording
/// each placement before the staging copy goes, so a crash in between places nothing twice.
async fn place_items(
    inner: &Arc<Context>,
    t: &Arc<TransferRecord>,
    staging: &Path,
    placed: &Arc<HashSet<String>>,
) -> Result<(), Stop> {
    let id = t.id;
    for top in top_names(t) {
        if placed.contains(&top) {
            continue;
        }
        let (st, inbox, name) = (staging.to_path_buf(), inner.cfg.inbox.clone(), top.clone());
        let final_name = blocking(move || place(&st.join(&name), &inbox, &name)).await?;
        crate::crash::point("send.placed");
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
        let (st, name) = (staging.to_path_buf(), top.clone());
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

pub(crate) async fn remove_staging(inner: &Arc<Context>, id: &TransferId) {
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
