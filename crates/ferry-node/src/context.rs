//! The node's shared context: what every task of a running node needs (configuration, this
//! device's id, the store, the endpoint, the event channel, the stop signal) and the registries
//! of the running actors' handles (share actors, peer links). A leaf: it knows the handle types
//! but none of the modules that run the actors, so every module may depend on it and it on none
//! of them.
//!
//! Invariant: nothing here writes a share's index. Index writes belong to the share actor
//! (`share`), which other modules reach through its handle's commands.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_net::{AddressBook, Endpoint};
use ferry_proto::wire::Hello;
use ferry_proto::{DeviceId, PROTOCOL_VERSION, RelPath, ShareId};
use ferry_store::{DeviceRecord, PromptKind, PromptRecord, ShareRecord, Store, StoreError};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::api::*;
use crate::clock::now_ms;
use crate::config::Config;
use crate::events::Event;
use crate::link::PeerLink;
use crate::share_handle::{Reply, ShareCommand, ShareHandle, run_command};

/// Name and owner as they are now (they can change while the node runs).
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    pub name: String,
    pub owner: String,
}

/// How long a pairing prompt waits for the user before the request is refused.
pub(crate) const PAIR_PROMPT_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) struct Context {
    pub cfg: Config,
    pub id: DeviceId,
    pub store: Arc<Store>,
    pub endpoint: Endpoint,
    pub listen: SocketAddr,
    pub events: crate::event_log::EventLog,
    pub peers: Mutex<HashMap<DeviceId, Arc<PeerLink>>>,
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
    pub profile: std::sync::RwLock<Profile>,
    pub tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Address hints from every discovery source (mDNS, static addresses from the config).
    pub book: AddressBook,
    /// Why mDNS is not running, when it was asked for but failed to start.
    pub mdns_error: Mutex<Option<String>>,
    /// One-shot sends: live progress, running receives, delivery locks.
    pub sends: crate::transfers::Sends,
    /// Incoming prompts per device (pairing requests, share and send offers) are rate-limited.
    pub prompt_limits: crate::limits::PromptLimiter,
    /// Per-share sync summaries (last session, since start).
    pub summaries: crate::summary::Summaries,
    /// The index-derived part of each share's status, with the store generation and the
    /// connected devices it was computed for (see `share::share_status`).
    pub status_cache: Mutex<HashMap<ShareId, crate::share_handle::IndexStatus>>,
    /// Wakes the dialer: a device disconnected or got an address, syncing resumed.
    pub dial_wake: tokio::sync::Notify,
    /// Slots for connections from unpaired devices (`limits::MAX_UNPAIRED_CONNECTIONS`).
    pub unpaired: Arc<tokio::sync::Semaphore>,
    /// KDE Connect: whether it runs, its links and the devices it hears (see `kdeconnect/`).
    pub kde: crate::kde_handle::Kde,
    /// LocalSend: whether it runs, the devices it hears, the incoming session (see `localsend/`).
    pub ls: crate::ls_handle::Ls,
}

pub(crate) use crate::api::ApiResult;

impl Context {
    /// Runs a store call on the blocking pool.
    pub async fn db<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> ApiResult<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store)).await.map_err(ApiError::internal)?.map_err(ApiError::from)
    }

    pub fn emit(&self, e: Event) {
        self.events.emit(e);
    }

    pub fn hello(&self) -> Hello {
        let p = self.profile.read().unwrap().clone();
        Hello { protocol: PROTOCOL_VERSION, name: p.name, owner: p.owner }
    }

    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Starts a task the node waits for at shutdown. It runs in the caller's tracing span, so a
    /// task started for a peer or a share logs as that peer's or share's.
    pub fn spawn(self: &Arc<Self>, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let h = tokio::spawn(tracing::Instrument::in_current_span(fut));
        let mut tasks = self.tasks.lock().unwrap();
        tasks.retain(|t| !t.is_finished());
        tasks.push(h);
    }

    pub fn peer(&self, id: &DeviceId) -> Option<Arc<PeerLink>> {
        self.peers.lock().unwrap().get(id).cloned()
    }

    /// Tells a running share's actor its members as `rec` now lists them.
    pub fn refresh_members(&self, rec: &ShareRecord) {
        if let Some(h) = self.shares.lock().unwrap().get(&rec.id) {
            h.set_members(rec.devices.clone());
        }
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

    /// Runs a command on `share`'s actor, the only writer of its index, and waits for the
    /// outcome (see [`ShareCommand`]).
    pub async fn share_command<T>(&self, share: ShareId, make: impl FnOnce(Reply<T>) -> ShareCommand) -> ApiResult<T> {
        let tx = self.shares.lock().unwrap().get(&share).map(|h| h.command_sender());
        let tx = tx.ok_or_else(|| ApiError::new(ErrorCode::Conflict, "the share is not running"))?;
        run_command(tx, make).await
    }
}

pub(crate) async fn add_prompt(inner: &Arc<Context>, device: DeviceId, kind: PromptKind) -> ApiResult<PromptRecord> {
    let id = inner.db(|s| s.next_prompt_id()).await?;
    publish_prompt(inner, PromptRecord { id, device, created_ms: now_ms(), kind }).await
}

/// Stores a prompt (so it shows in `pending`) and announces it. Callers that must be ready for
/// the answer (pairing) set that up before publishing.
pub(crate) async fn publish_prompt(inner: &Arc<Context>, p: PromptRecord) -> ApiResult<PromptRecord> {
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
