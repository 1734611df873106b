//! [`Node`]: start, the API every client uses, and ordered shutdown.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_net::{AddressBook, Endpoint, Identity};
use ferry_proto::wire::Hello;
use ferry_proto::{DeviceId, PROTOCOL_VERSION, RelPath, ShareId, ShareMode};
use ferry_store::{DeviceRecord, PromptKind, PromptRecord, ShareRecord, Store, StoreError};
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;

use crate::api::*;
use crate::config::Config;
use crate::events::Event;
use crate::peer::Peer;
use crate::share::ShareHandle;

/// Capacity of the event channel: enough for a burst of progress events; slower subscribers
/// are told how many they missed.
const EVENT_BUFFER: usize = 4096;
/// How long a pairing prompt waits for the user before the request is refused.
pub(crate) const PAIR_PROMPT_TIMEOUT: Duration = Duration::from_secs(120);

/// A running node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub cfg: Config,
    pub id: DeviceId,
    pub store: Arc<Store>,
    pub endpoint: Endpoint,
    pub listen: SocketAddr,
    pub events: broadcast::Sender<Event>,
    pub peers: Mutex<HashMap<DeviceId, Arc<Peer>>>,
    pub shares: Mutex<HashMap<ShareId, ShareHandle>>,
    /// Incoming pairing prompts waiting for the user's answer, by prompt id.
    pub pair_waiters: Mutex<HashMap<u64, oneshot::Sender<bool>>>,
    /// Outgoing pairing attempts, by ticket.
    pub tickets: Mutex<HashMap<u64, watch::Receiver<Option<PairOutcomeDto>>>>,
    pub next_ticket: AtomicU64,
    /// Devices being dialed right now (so the dialer never dials one twice at once).
    pub dialing: Mutex<HashSet<DeviceId>>,
    /// One note flush per device at a time, so notes go out in order and only once.
    pub note_flush: Mutex<HashMap<DeviceId, Arc<tokio::sync::Mutex<()>>>>,
    pub stop: watch::Sender<bool>,
    /// Syncing paused by the user (see `pause.rs`).
    pub sync_paused: watch::Sender<bool>,
    /// Name and owner now (the app can change them while running, see `settings.rs`).
    pub profile: std::sync::RwLock<crate::settings::Profile>,
    pub tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Address hints from every discovery source (mDNS, static addresses from the config).
    pub book: AddressBook,
    /// Why mDNS is not running, when it was asked for but failed to start.
    pub mdns_error: Mutex<Option<String>>,
    /// One-shot sends: live progress, running receives, delivery locks.
    pub sends: crate::send::Sends,
    /// Incoming prompts per device (pairing requests, share and send offers) are rate-limited.
    pub prompt_limits: crate::limits::PromptLimiter,
    /// Per-share sync summaries (last session, since start).
    pub summaries: crate::summary::Summaries,
    /// The index-derived part of each share's status, with the store generation and the
    /// connected devices it was computed for (see `share::share_status`).
    pub status_cache: Mutex<HashMap<ShareId, crate::share::IndexStatus>>,
    /// Wakes the dialer: a device disconnected or got an address, syncing resumed.
    pub dial_wake: tokio::sync::Notify,
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(format!("store: {e}"))
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Inner {
    /// Runs a store call on the blocking pool.
    pub async fn db<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> ApiResult<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store)).await.map_err(ApiError::internal)?.map_err(ApiError::from)
    }

    pub fn emit(&self, e: Event) {
        // No subscribers is fine: events are best effort by design.
        let _ = self.events.send(e);
    }

    pub fn hello(&self) -> Hello {
        let p = self.profile.read().unwrap().clone();
        Hello { protocol: PROTOCOL_VERSION, name: p.name, owner: p.owner }
    }

    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    pub fn spawn(self: &Arc<Self>, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let h = tokio::spawn(fut);
        let mut tasks = self.tasks.lock().unwrap();
        tasks.retain(|t| !t.is_finished());
        tasks.push(h);
    }

    pub fn peer(&self, id: &DeviceId) -> Option<Arc<Peer>> {
        self.peers.lock().unwrap().get(id).cloned()
    }

    /// Resolves a DEVICE argument: full id, unique id prefix, or device name.
    pub async fn resolve_device(self: &Arc<Self>, arg: &str) -> ApiResult<DeviceRecord> {
        let devices = self.db(|s| s.devices()).await?;
        if let Ok(id) = arg.parse::<DeviceId>()
            && let Some(d) = devices.iter().find(|d| d.id == id)
        {
            return Ok(d.clone());
        }
        let by_name: Vec<_> = devices.iter().filter(|d| d.name.eq_ignore_ascii_case(arg)).collect();
        let by_prefix: Vec<_> = devices.iter().filter(|d| d.id.matches_prefix(arg)).collect();
        let found = if by_name.len() == 1 {
            by_name
        } else if by_name.is_empty() {
            by_prefix
        } else {
            by_name
        };
        match found.len() {
            1 => Ok(found[0].clone()),
            0 => Err(ApiError::not_found(format!("no known device matches {arg:?} (see `ferry devices`)"))),
            _ => Err(ApiError::new(
                ErrorCode::Ambiguous,
                format!(
                    "{arg:?} matches several devices: {}",
                    found.iter().map(|d| format!("{} ({})", d.name, d.id.short())).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }

    /// Resolves a SHARE argument: id, unique id prefix, or label.
    pub async fn resolve_share(self: &Arc<Self>, arg: &str) -> ApiResult<ShareRecord> {
        let shares = self.db(|s| s.shares()).await?;
        let norm = |s: &str| s.replace('-', "").to_ascii_lowercase();
        let arg_n = norm(arg);
        let exact: Vec<_> = shares.iter().filter(|s| norm(&s.id.to_string()) == arg_n || s.label == arg).collect();
        let found = if !exact.is_empty() {
            exact
        } else {
            shares.iter().filter(|s| !arg_n.is_empty() && norm(&s.id.to_string()).starts_with(&arg_n)).collect()
        };
        match found.len() {
            1 => Ok(found[0].clone()),
            0 => Err(ApiError::not_found(format!("no share matches {arg:?} (see `ferry share list`)"))),
            _ => Err(ApiError::new(ErrorCode::Ambiguous, format!("{arg:?} matches several shares; use the id"))),
        }
    }

    /// Checks that `path` can become a share: an existing directory, not inside Ferry's home,
    /// not inside or around another share. Returns the canonical path.
    pub async fn validate_share_path(self: &Arc<Self>, path: &Path, except: Option<ShareId>) -> ApiResult<PathBuf> {
        let meta = std::fs::metadata(path).map_err(|e| ApiError::bad(format!("{}: {e}", path.display())))?;
        if !meta.is_dir() {
            return Err(ApiError::bad(format!("{} is not a directory", path.display())));
        }
        let canon = path.canonicalize().map_err(|e| ApiError::bad(format!("{}: {e}", path.display())))?;
        let home = self.cfg.home.canonicalize().unwrap_or_else(|_| self.cfg.home.clone());
        if canon.starts_with(&home) || home.starts_with(&canon) {
            return Err(ApiError::bad(format!(
                "{} overlaps Ferry's home {}; choose another folder",
                canon.display(),
                home.display()
            )));
        }
        for s in self.db(|s| s.shares()).await? {
            if Some(s.id) == except {
                continue;
            }
            let other = Path::new(&s.path);
            if canon.starts_with(other) || other.starts_with(&canon) {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("{} overlaps the share {:?} at {}; shares cannot nest", canon.display(), s.label, s.path),
                ));
            }
        }
        Ok(canon)
    }

    /// The share containing an absolute path, and the path relative to its root.
    pub async fn locate(self: &Arc<Self>, path: &str) -> ApiResult<(ShareRecord, Option<RelPath>)> {
        let p = Path::new(path);
        if !p.is_absolute() {
            return Err(ApiError::bad(format!("{path:?} must be an absolute path")));
        }
        // The file may be deleted, so canonicalize the deepest existing ancestor.
        let mut existing = p.to_path_buf();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.file_name().map(|n| n.to_os_string()), existing.parent()) {
                (Some(n), Some(parent)) => {
                    rest.push(n);
                    existing = parent.to_path_buf();
                }
                _ => break,
            }
        }
        let mut canon = existing.canonicalize().unwrap_or(existing);
        for n in rest.into_iter().rev() {
            canon.push(n);
        }
        for s in self.db(|s| s.shares()).await? {
            let root = Path::new(&s.path);
            if canon == root {
                return Ok((s, None));
            }
            if canon.starts_with(root) {
                let rel = RelPath::from_fs(root, &canon).map_err(|e| ApiError::bad(e.to_string()))?;
                return Ok((s, Some(rel)));
            }
        }
        Err(ApiError::not_found(format!("{path} is not inside any share (see `ferry share list`)")))
    }
}

impl Node {
    /// Opens the home (identity, store), binds the endpoint and starts every task.
    pub async fn start(cfg: Config) -> Result<Node, ApiError> {
        std::fs::create_dir_all(&cfg.home).map_err(|e| ApiError::internal(format!("{}: {e}", cfg.home.display())))?;
        if tokio::net::UnixStream::connect(cfg.socket_path()).await.is_ok() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("another Ferry node is already running with home {}", cfg.home.display()),
            ));
        }
        let home = cfg.home.clone();
        let (identity, store) = tokio::task::spawn_blocking(move || {
            let identity = Identity::load_or_create(&home).map_err(|e| ApiError::internal(format!("identity: {e}")))?;
            let store = Store::open(&home.join("ferry.redb"))
                .map_err(|e| ApiError::internal(format!("cannot open {}: {e}", home.join("ferry.redb").display())))?;
            Ok::<_, ApiError>((identity, store))
        })
        .await
        .map_err(ApiError::internal)??;
        let endpoint = Endpoint::bind(&identity, cfg.listen)
            .map_err(|e| ApiError::internal(format!("cannot listen on {}: {e}", cfg.listen)))?;
        let listen = endpoint.local_addr().map_err(ApiError::internal)?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (stop, _) = watch::channel(false);
        let (sync_paused, _) = watch::channel(crate::pause::load(&cfg.home));
        let profile =
            std::sync::RwLock::new(crate::settings::Profile { name: cfg.name.clone(), owner: cfg.owner.clone() });
        let inner = Arc::new(Inner {
            id: identity.device_id(),
            cfg,
            store: Arc::new(store),
            endpoint,
            listen,
            events,
            peers: Mutex::new(HashMap::new()),
            shares: Mutex::new(HashMap::new()),
            pair_waiters: Mutex::new(HashMap::new()),
            tickets: Mutex::new(HashMap::new()),
            next_ticket: AtomicU64::new(1),
            dialing: Mutex::new(HashSet::new()),
            note_flush: Mutex::new(HashMap::new()),
            stop,
            sync_paused,
            profile,
            tasks: Mutex::new(Vec::new()),
            book: AddressBook::new(),
            mdns_error: Mutex::new(None),
            sends: Default::default(),
            prompt_limits: Default::default(),
            summaries: Default::default(),
            status_cache: Default::default(),
            dial_wake: tokio::sync::Notify::new(),
        });
        crate::discovery::start(&inner);
        // Pairing prompts belong to connections that died with the previous run.
        for p in inner.db(|s| s.prompts()).await? {
            if matches!(p.kind, PromptKind::Pair { .. }) {
                inner.db(move |s| s.remove_prompt(p.id)).await?;
            }
        }
        tracing::info!(device = %inner.id, listen = %listen, "node starting");
        for share in inner.db(|s| s.shares()).await? {
            crate::share::start_worker(&inner, share);
        }
        let acc = inner.clone();
        inner.spawn(crate::peer::accept_loop(acc));
        let dial = inner.clone();
        inner.spawn(crate::peer::dial_loop(dial));
        let pruner = inner.clone();
        inner.spawn(crate::history::prune_loop(pruner));
        Ok(Node { inner })
    }

    /// Serves the control API on the home's Unix socket until shutdown.
    pub async fn serve_control(&self) -> Result<(), ApiError> {
        crate::control::serve(self.clone()).await
    }

    pub fn device_id(&self) -> DeviceId {
        self.inner.id
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.inner.listen
    }

    pub fn home(&self) -> &Path {
        &self.inner.cfg.home
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Stops everything in order: share workers (each finishes the item at hand), then
    /// connections, then the endpoint; the store closes when the last handle drops.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        if inner.stop.send_replace(true) {
            return;
        }
        tracing::info!("shutting down");
        // mDNS goodbye first, so the others drop this device at once.
        let book = inner.book.clone();
        let _ = tokio::task::spawn_blocking(move || book.shutdown()).await;
        let workers: Vec<ShareHandle> = inner.shares.lock().unwrap().drain().map(|(_, h)| h).collect();
        for w in workers {
            w.stop().await;
        }
        inner.endpoint.close();
        let tasks: Vec<JoinHandle<()>> = inner.tasks.lock().unwrap().drain(..).collect();
        for t in tasks {
            // Tasks watch the stop signal; a bounded wait keeps shutdown from hanging on a
            // peer that does not answer.
            let abort = t.abort_handle();
            if tokio::time::timeout(Duration::from_secs(3), t).await.is_err() {
                abort.abort();
            }
        }
        inner.peers.lock().unwrap().clear();
        // The close frames went out with close(); waiting for the full drain period would only
        // delay exit.
        let _ = tokio::time::timeout(Duration::from_millis(300), inner.endpoint.wait_idle()).await;
        let sock = inner.cfg.socket_path();
        let _ = std::fs::remove_file(sock);
    }

    pub fn id_info(&self) -> IdDto {
        let p = self.profile();
        IdDto { device_id: self.inner.id.to_string(), name: p.name, owner: p.owner }
    }

    pub async fn status(&self) -> ApiResult<StatusDto> {
        let inner = &self.inner;
        let mut shares = Vec::new();
        for s in inner.db(|s| s.shares()).await? {
            shares.push(crate::share::share_status(inner, &s).await?);
        }
        let p = self.profile();
        Ok(StatusDto {
            device_id: inner.id.to_string(),
            name: p.name,
            owner: p.owner,
            listen: inner.listen.to_string(),
            home: inner.cfg.home.display().to_string(),
            connected: inner.peers.lock().unwrap().len(),
            shares,
            paused: inner.sync_paused(),
        })
    }

    pub async fn devices(&self) -> ApiResult<Vec<DeviceDto>> {
        let inner = &self.inner;
        let devices = inner
            .db(|s| {
                let mut out = Vec::new();
                for d in s.devices()? {
                    let (muted, auto) = (s.is_muted(&d.id)?, s.auto_accept(&d.id)?);
                    out.push((d, muted, auto));
                }
                Ok(out)
            })
            .await?;
        let mut out: Vec<DeviceDto> = devices
            .into_iter()
            .map(|(d, muted, auto_accept)| {
                let peer = inner.peer(&d.id);
                let stats = peer.as_ref().map(|p| p.conn.connection().stats());
                DeviceDto {
                    id: d.id.to_string(),
                    name: d.name,
                    owner: d.owner,
                    paired: d.paired,
                    connected: peer.is_some(),
                    addresses: d.static_addresses.into_iter().chain(d.addresses).collect(),
                    last_seen_ms: d.last_seen_ms,
                    rtt_ms: peer.map(|p| p.conn.rtt().as_secs_f64() * 1000.0),
                    bytes_sent: stats.as_ref().map(|s| s.udp_tx.bytes),
                    bytes_received: stats.as_ref().map(|s| s.udp_rx.bytes),
                    nearby: false,
                    nearby_addresses: vec![],
                    muted,
                    auto_accept,
                }
            })
            .collect();
        crate::discovery::add_nearby(inner, &mut out);
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub async fn pending(&self) -> ApiResult<Vec<PendingDto>> {
        let inner = &self.inner;
        let prompts = inner.db(|s| s.prompts()).await?;
        let mut out = Vec::new();
        for p in prompts {
            let dev = inner.db(move |s| s.device(&p.device)).await?;
            let (dev_name, dev_owner) = dev.map(|d| (d.name, d.owner)).unwrap_or_default();
            out.push(match p.kind {
                PromptKind::Pair { name, owner, code } => PendingDto {
                    id: p.id,
                    kind: "pair".into(),
                    device: p.device.to_string(),
                    device_name: name,
                    owner,
                    code: Some(code),
                    share_id: None,
                    share_label: None,
                    created_ms: p.created_ms,
                    transfer: None,
                    files: None,
                    bytes: None,
                    names: vec![],
                    deletes: None,
                },
                PromptKind::ShareOffer { share, label } => PendingDto {
                    id: p.id,
                    kind: "share".into(),
                    device: p.device.to_string(),
                    device_name: dev_name,
                    owner: dev_owner,
                    code: None,
                    share_id: Some(share.to_string()),
                    share_label: Some(label),
                    created_ms: p.created_ms,
                    transfer: None,
                    files: None,
                    bytes: None,
                    names: vec![],
                    deletes: None,
                },
                PromptKind::SendOffer { transfer, files, bytes, names } => PendingDto {
                    id: p.id,
                    kind: "send".into(),
                    device: p.device.to_string(),
                    device_name: dev_name,
                    owner: dev_owner,
                    code: None,
                    share_id: None,
                    share_label: None,
                    created_ms: p.created_ms,
                    transfer: Some(transfer.to_hex()),
                    files: Some(files),
                    bytes: Some(bytes),
                    names,
                    deletes: None,
                },
                PromptKind::MassDelete { share, label, deletes, files } => PendingDto {
                    id: p.id,
                    kind: "mass-delete".into(),
                    device: p.device.to_string(),
                    device_name: dev_name,
                    owner: dev_owner,
                    code: None,
                    share_id: Some(share.to_string()),
                    share_label: Some(label),
                    created_ms: p.created_ms,
                    transfer: None,
                    files: Some(files),
                    bytes: None,
                    names: vec![],
                    deletes: Some(deletes),
                },
            });
        }
        Ok(out)
    }

    /// Asks the device at `address` to pair. Returns once the request is on its screen, with
    /// the code both screens show; [`Node::pair_wait`] waits for the answer.
    pub async fn pair(&self, address: &str) -> ApiResult<PairTicketDto> {
        if address.parse::<SocketAddr>().is_err()
            && let Some(t) = crate::discovery::pair_nearby(&self.inner, address).await?
        {
            return Ok(t);
        }
        let addr: SocketAddr = match address.parse() {
            Ok(a) => a,
            Err(_) => tokio::net::lookup_host(address)
                .await
                .map_err(|e| ApiError::bad(format!("{address:?} is not HOST:PORT: {e}")))?
                .next()
                .ok_or_else(|| ApiError::bad(format!("{address:?} resolves to no address")))?,
        };
        crate::peer::start_pairing(&self.inner, addr, None).await
    }

    /// Waits (up to the prompt timeout plus a margin) for the outcome of a pairing attempt.
    pub async fn pair_wait(&self, ticket: u64) -> ApiResult<PairOutcomeDto> {
        let mut rx = self
            .inner
            .tickets
            .lock()
            .unwrap()
            .get(&ticket)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no pairing attempt {ticket}")))?;
        let wait = rx.wait_for(|o| o.is_some());
        match tokio::time::timeout(PAIR_PROMPT_TIMEOUT + Duration::from_secs(15), wait).await {
            Ok(Ok(o)) => Ok(o.clone().expect("waited for Some")),
            Ok(Err(_)) => Err(ApiError::internal("pairing task ended without an outcome")),
            Err(_) => Ok(PairOutcomeDto { state: "timeout".into(), message: "no answer from the other device".into() }),
        }
    }

    pub async fn accept(&self, req: AcceptDto) -> ApiResult<()> {
        self.answer(req.id, true, req.path).await
    }

    pub async fn reject(&self, id: u64) -> ApiResult<()> {
        self.answer(id, false, None).await
    }

    async fn answer(&self, id: u64, accept: bool, path: Option<String>) -> ApiResult<()> {
        let inner = &self.inner;
        let prompt = inner
            .db(move |s| s.prompt(id))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no pending prompt {id} (see `ferry pending`)")))?;
        match &prompt.kind {
            PromptKind::Pair { .. } => {
                let waiter = inner.pair_waiters.lock().unwrap().remove(&id);
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(accept);
                    }
                    None => {
                        inner.db(move |s| s.remove_prompt(id)).await?;
                        return Err(ApiError::new(
                            ErrorCode::Conflict,
                            "the device asking to pair has gone; ask again",
                        ));
                    }
                }
            }
            PromptKind::ShareOffer { share, label } => {
                if accept {
                    let path = path.ok_or_else(|| {
                        ApiError::bad(format!("accepting the share {label:?} needs a folder: --path DIR"))
                    })?;
                    crate::share::accept_offer(inner, &prompt, *share, label, Path::new(&path)).await?;
                }
                inner.db(move |s| s.remove_prompt(id)).await?;
            }
            PromptKind::SendOffer { transfer, .. } => {
                let res = crate::send::answer(inner, prompt.device, *transfer, accept).await;
                inner.db(move |s| s.remove_prompt(id)).await?;
                inner.emit(Event::PromptResolved { id, accepted: accept && res.is_ok() });
                return res;
            }
            PromptKind::MassDelete { share, deletes, .. } => {
                // Answer first: while the prompt exists, the guard raises no second one.
                crate::guard::answer(inner, *share, accept, *deletes).await?;
                inner.db(move |s| s.remove_prompt(id)).await?;
            }
        }
        inner.emit(Event::PromptResolved { id, accepted: accept });
        Ok(())
    }

    pub async fn share_add(&self, req: ShareAddDto) -> ApiResult<ShareDto> {
        let inner = &self.inner;
        let mode: ShareMode = match &req.mode {
            Some(m) => m.parse().map_err(ApiError::bad)?,
            None => ShareMode::SendReceive,
        };
        let path = inner.validate_share_path(Path::new(&req.path), None).await?;
        let label = req
            .label
            .filter(|l| !l.trim().is_empty())
            .unwrap_or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or("share".into()));
        let rec = ShareRecord {
            id: ShareId::random(),
            label,
            path: path.display().to_string(),
            mode,
            devices: vec![],
            paused: false,
        };
        crate::share::create_share(inner, rec.clone()).await?;
        Ok(share_dto(&rec))
    }

    pub async fn share_invite(&self, req: InviteDto) -> ApiResult<ShareDto> {
        let inner = &self.inner;
        let mut share = inner.resolve_share(&req.share).await?;
        let dev = inner.resolve_device(&req.device).await?;
        if !dev.paired {
            return Err(ApiError::bad(format!("{} is not paired; pair it first", dev.name)));
        }
        if !share.devices.contains(&dev.id) {
            share.devices.push(dev.id);
            let s = share.clone();
            inner.db(move |st| st.put_share(&s)).await?;
            crate::share::refresh_members(inner, &share);
        }
        crate::peer::announce_to(inner, dev.id).await;
        Ok(share_dto(&share))
    }

    pub async fn share_list(&self) -> ApiResult<Vec<ShareDto>> {
        Ok(self.inner.db(|s| s.shares()).await?.iter().map(share_dto).collect())
    }

    /// Stops syncing a share and forgets it; the folder and its files stay as they are.
    pub async fn share_remove(&self, arg: &str) -> ApiResult<ShareDto> {
        let inner = &self.inner;
        let share = inner.resolve_share(arg).await?;
        let handle = inner.shares.lock().unwrap().remove(&share.id);
        if let Some(h) = handle {
            h.stop().await;
        }
        let id = share.id;
        inner.db(move |s| s.remove_share(&id)).await?;
        // Snapshot links only serve versioning of a synced share; left behind they would keep
        // old contents alive. The version archive itself stays (it is the user's data).
        let snapshots = Path::new(&share.path).join(ferry_proto::FERRY_DIR).join("snapshots");
        if let Err(e) = std::fs::remove_dir_all(&snapshots)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %snapshots.display(), "could not remove snapshot links: {e}");
        }
        for d in &share.devices {
            crate::peer::announce_to(inner, *d).await;
        }
        Ok(share_dto(&share))
    }

    pub async fn versions(&self, path: &str) -> ApiResult<Vec<VersionDto>> {
        let inner = &self.inner;
        let (share, rel) = inner.locate(path).await?;
        let id = share.id;
        let list = match rel.clone() {
            Some(rel) => inner.db(move |s| s.versions(&id, &rel)).await?,
            None => inner.db(move |s| s.share_versions(&id)).await?,
        };
        Ok(list.into_iter().map(|v| crate::history::version_dto(&share, v)).collect())
    }

    pub async fn ping(&self, device: &str) -> ApiResult<PingDto> {
        let inner = &self.inner;
        let dev = inner.resolve_device(device).await?;
        let peer = inner
            .peer(&dev.id)
            .ok_or_else(|| ApiError::new(ErrorCode::Unreachable, format!("{} is not connected", dev.name)))?;
        let rtt = peer.ping().await?;
        Ok(PingDto { device: dev.id.to_string(), rtt_ms: rtt.as_secs_f64() * 1000.0 })
    }

    /// Asks every share to rescan now (also what the periodic safety-net rescan does).
    pub fn rescan_all(&self) {
        for h in self.inner.shares.lock().unwrap().values() {
            h.request_full_scan();
        }
    }

    /// Rescans one share (or all); `full` re-hashes every file.
    pub async fn rescan(&self, req: RescanDto) -> ApiResult<()> {
        let ids: Vec<ShareId> = match &req.share {
            Some(s) => vec![self.inner.resolve_share(s).await?.id],
            None => self.inner.shares.lock().unwrap().keys().copied().collect(),
        };
        for id in ids {
            if let Some(h) = self.inner.shares.lock().unwrap().get(&id) {
                if req.full { h.request_rehash() } else { h.request_full_scan() }
            }
        }
        Ok(())
    }

    /// Brings a version of a file back as a new local change.
    pub async fn restore(&self, req: RestoreDto) -> ApiResult<RestoredDto> {
        crate::history::restore(&self.inner, req).await
    }

    /// Puts a share (or a folder in it) back as it was at a moment; `dry_run` only plans.
    pub async fn rewind(&self, req: RewindReqDto) -> ApiResult<RewindDto> {
        crate::history::rewind(&self.inner, req).await
    }

    /// Prunes every share's versions by its retention policy as of `now_ms` (default: now).
    /// Tests pass a future `now_ms` instead of waiting for time to pass.
    pub async fn prune_versions(&self, now_ms: Option<i64>) -> ApiResult<Vec<PruneDto>> {
        crate::history::prune_all(&self.inner, now_ms.unwrap_or_else(now_ms_fn)).await
    }

    pub async fn conflicts(&self, q: ConflictsQuery) -> ApiResult<Vec<ConflictDto>> {
        crate::conflicts::list(&self.inner, q.share.as_deref()).await
    }

    pub async fn resolve(&self, req: ResolveDto) -> ApiResult<ResolvedDto> {
        crate::conflicts::resolve(&self.inner, req).await
    }

    /// Changes a share's conflict policy, retention or mass-delete threshold (what is given).
    pub async fn share_policy(&self, req: SharePolicyDto) -> ApiResult<ShareSettingsDto> {
        let inner = &self.inner;
        let share = inner.resolve_share(&req.share).await?;
        let policy: Option<ferry_proto::ConflictPolicy> =
            req.conflict_policy.as_deref().map(str::parse).transpose().map_err(ApiError::bad)?;
        let retention =
            req.retention.as_deref().map(ferry_proto::Retention::parse).transpose().map_err(ApiError::bad)?;
        if let Some(p) = req.mass_delete_percent
            && !(1..=100).contains(&p)
        {
            return Err(ApiError::bad("the mass-delete threshold is a percent, 1 to 100"));
        }
        let id = share.id;
        let pct = req.mass_delete_percent;
        let st = inner
            .db(move |s| {
                s.update_share_settings(&id, |st| {
                    if let Some(p) = policy {
                        st.conflict_policy = p;
                    }
                    if let Some(r) = retention {
                        st.retention = r;
                    }
                    if pct.is_some() {
                        st.mass_delete_percent = pct;
                    }
                })
            })
            .await?;
        Ok(settings_dto(inner, &share, st))
    }

    /// Send-only shares: make every other device match this one.
    pub async fn share_override(&self, share: &str) -> ApiResult<ModeActionDto> {
        crate::history::override_share(&self.inner, share).await
    }

    /// Receive-only shares: drop local changes (into the history) and match the others.
    pub async fn share_revert(&self, share: &str) -> ApiResult<ModeActionDto> {
        crate::history::revert_share(&self.inner, share).await
    }

    /// Clears a share's "needs attention" flag.
    pub async fn share_ack(&self, share: &str) -> ApiResult<ShareSettingsDto> {
        let inner = &self.inner;
        let share = inner.resolve_share(share).await?;
        let id = share.id;
        let st = inner.db(move |s| s.update_share_settings(&id, |st| st.attention = None)).await?;
        Ok(settings_dto(inner, &share, st))
    }
}

fn now_ms_fn() -> i64 {
    now_ms()
}

fn settings_dto(inner: &Inner, share: &ShareRecord, st: ferry_store::ShareSettings) -> ShareSettingsDto {
    ShareSettingsDto {
        share: share.id.to_string(),
        label: share.label.clone(),
        conflict_policy: st.conflict_policy.as_str().into(),
        retention: st.retention.to_string(),
        mass_delete_percent: st.mass_delete_percent.unwrap_or(inner.cfg.mass_delete_percent),
        attention: st.attention,
    }
}

pub(crate) fn share_dto(s: &ShareRecord) -> ShareDto {
    ShareDto {
        id: s.id.to_string(),
        label: s.label.clone(),
        path: s.path.clone(),
        mode: s.mode.as_str().into(),
        devices: s.devices.iter().map(|d| d.to_string()).collect(),
        paused: s.paused,
    }
}

pub(crate) async fn add_prompt(inner: &Arc<Inner>, device: DeviceId, kind: PromptKind) -> ApiResult<PromptRecord> {
    let id = inner.db(|s| s.next_prompt_id()).await?;
    publish_prompt(inner, PromptRecord { id, device, created_ms: now_ms(), kind }).await
}

/// Stores a prompt (so it shows in `pending`) and announces it. Callers that must be ready for
/// the answer (pairing) set that up before publishing.
pub(crate) async fn publish_prompt(inner: &Arc<Inner>, p: PromptRecord) -> ApiResult<PromptRecord> {
    let device = p.device;
    let stored = p.clone();
    inner.db(move |s| s.put_prompt(&stored)).await?;
    let (kind, code, label, name) = match &p.kind {
        PromptKind::Pair { name, code, .. } => ("pair", Some(code.clone()), None, name.clone()),
        PromptKind::ShareOffer { label, .. } => {
            let name = inner.db(move |s| s.device(&device)).await?.map(|d| d.name).unwrap_or_default();
            ("share", None, Some(label.clone()), name)
        }
        PromptKind::SendOffer { names, .. } => {
            let name = inner.db(move |s| s.device(&device)).await?.map(|d| d.name).unwrap_or_default();
            ("send", None, Some(names.join(", ")), name)
        }
        PromptKind::MassDelete { label, .. } => {
            let name = inner.db(move |s| s.device(&device)).await?.map(|d| d.name).unwrap_or_default();
            ("mass-delete", None, Some(label.clone()), name)
        }
    };
    inner.emit(Event::PromptAdded {
        id: p.id,
        kind: kind.into(),
        device: device.to_string(),
        device_name: name,
        code,
        label,
    });
    Ok(p)
}
