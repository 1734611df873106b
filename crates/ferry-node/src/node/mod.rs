//! [`Node`]: the facade every client (the CLI through the control socket, the desktop shell)
//! uses. It holds the shared context, starts every actor and task, and stops them in a fixed
//! order. Its methods are split by area in the submodules; each is a thin layer that resolves
//! arguments and calls the module that owns the work. Nothing below this module imports it
//! (except `control`, which serves it), so the facade can call everything without a cycle.

mod devices;
mod history;
mod notes;
mod sends;
mod settings;
mod shares;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_net::{AddressBook, Endpoint, Identity};
use ferry_proto::DeviceId;
use ferry_store::{PromptKind, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::*;
use crate::config::Config;
use crate::context::{ApiResult, Context, Profile};
use crate::doctor::{inotify_report, mdns_running, problems};
use crate::events::Event;
use crate::pause::persist;
use crate::share_handle::ShareHandle;
use std::path::PathBuf;

/// Capacity of the event channel: enough for a burst of progress events; slower subscribers
/// are told how many they missed.
const EVENT_BUFFER: usize = 4096;

/// A running node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<Context>,
}

impl Node {
    /// Opens the home (identity, store), binds the endpoint and starts every task.
    pub async fn start(cfg: Config) -> Result<Node, ApiError> {
        ferry_fs::create_dirs_durable(&cfg.home)
            .map_err(|e| ApiError::internal(format!("{}: {e}", cfg.home.display())))?;
        if tokio::net::UnixStream::connect(cfg.socket_path()).await.is_ok() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("another Ferry node is already running with home {}", cfg.home.display()),
            ));
        }
        let home = cfg.home.clone();
        let (identity, store) = tokio::task::spawn_blocking(move || {
            let identity = Identity::load_or_create(&home).map_err(|e| ApiError::internal(format!("identity: {e}")))?;
            let db = home.join("ferry.redb");
            let store = Store::open(&db).map_err(|e| match e {
                ferry_store::StoreError::Damaged(why) => ApiError::internal(damaged_database(&db, &why)),
                e => ApiError::internal(format!("cannot open {}: {e}", db.display())),
            })?;
            Ok::<_, ApiError>((identity, store))
        })
        .await
        .map_err(ApiError::internal)??;
        let endpoint = Endpoint::bind(&identity, cfg.listen)
            .map_err(|e| ApiError::internal(format!("cannot listen on {}: {e}", cfg.listen)))?;
        let listen = endpoint.local_addr().map_err(ApiError::internal)?;
        let events = crate::event_log::EventLog::new(EVENT_BUFFER);
        let (stop, _) = watch::channel(false);
        let (sync_paused, _) = watch::channel(crate::pause::load(&cfg.home));
        let profile = std::sync::RwLock::new(Profile { name: cfg.name.clone(), owner: cfg.owner.clone() });
        let inner = Arc::new(Context {
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
            unpaired: Arc::new(tokio::sync::Semaphore::new(crate::limits::MAX_UNPAIRED_CONNECTIONS)),
            kde: Default::default(),
            ls: Default::default(),
        });
        crate::removal::restore(&inner).await?;
        crate::discovery::start(&inner);
        crate::kdeconnect::start(&inner).await;
        crate::localsend::start(&inner).await;
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

    pub fn device_id(&self) -> DeviceId {
        self.inner.id
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.inner.listen
    }

    pub fn home(&self) -> &Path {
        &self.inner.cfg.home
    }

    /// The live events, numbered as they are emitted (see event_log.rs).
    pub fn subscribe(&self) -> crate::event_log::Subscription {
        self.inner.events.subscribe()
    }

    /// The events kept for views that were not listening (see event_log.rs).
    pub fn recent_events(&self) -> crate::event_log::RecentDto {
        self.inner.events.recent()
    }

    /// The kept events after `since`, and the live ones right after them.
    pub fn events_since(&self, since: u64) -> (Vec<crate::event_log::Stamped>, crate::event_log::Subscription) {
        self.inner.events.since(since)
    }

    /// Stops everything in order: share actors (each finishes the item at hand), then
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
        crate::share::keep_counts(inner).await;
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
    /// Pauses (`true`) or resumes (`false`) syncing; persisted; emits `SyncPaused` on a change.
    pub async fn set_paused(&self, paused: bool) -> ApiResult<bool> {
        let inner = self.inner.clone();
        persist(&inner, paused).await?;
        let changed = inner.sync_paused.send_if_modified(|p| std::mem::replace(p, paused) != paused);
        if changed {
            tracing::info!(paused, "syncing {}", if paused { "paused" } else { "resumed" });
            // Wake every worker: on pause so its state shows `paused` at once, on resume so it
            // rescans what changed meanwhile and pulls what peers announced.
            for h in inner.shares.lock().unwrap().values() {
                h.request_full_scan();
            }
            if !paused {
                inner.dial_wake.notify_one();
            }
            inner.emit(Event::SyncPaused { paused });
        }
        Ok(paused)
    }

    pub fn paused(&self) -> bool {
        self.inner.sync_paused()
    }
}

impl Node {
    pub async fn doctor(&self) -> ApiResult<DoctorDto> {
        let inner = &self.inner;
        let shares: Vec<PathBuf> = inner.db(|s| s.shares()).await?.into_iter().map(|s| PathBuf::from(s.path)).collect();
        let inotify =
            tokio::task::spawn_blocking(move || inotify_report(&shares, true)).await.map_err(ApiError::internal)?;
        let mdns = mdns_running(inner).await?;
        let mut d = DoctorDto {
            daemon_running: true,
            control_socket: inner.cfg.socket_path().display().to_string(),
            control_socket_state: "answering".into(),
            device_id: Some(inner.id.to_string()),
            name: Some(inner.cfg.name.clone()),
            listen: inner.listen.to_string(),
            mdns,
            kdeconnect: crate::doctor::kde_running(inner),
            localsend: crate::doctor::ls_running(inner),
            inotify,
            problems: vec![],
        };
        d.problems = problems(&d);
        Ok(d)
    }
}

/// What a person reads when the database cannot be opened because it is damaged: what it means
/// for their files, and the exact steps to start again. The node does not move the file itself:
/// the database holds the pairings and the list of shares (the identity is in `cert.der` and
/// `key.der`, the files in the shared folders), so a fresh one cannot take up the shares by
/// itself, and a person should decide to start over.
pub(crate) fn damaged_database(db: &std::path::Path, why: &str) -> String {
    let d = db.display();
    format!(
        "the database {d} is damaged ({why}).\n\
         Ferry did not start and changed nothing: the files in your shared folders are untouched, and \
         this device keeps its identity (cert.der and key.der beside the database).\n\
         To start again with a new database:\n\
         \x20 1. move the damaged one aside (keep it; do not delete it): mv {d} {d}.damaged\n\
         \x20 2. start Ferry again: ferry daemon\n\
         \x20 3. pair with your other devices again: ferry pair ADDRESS (a device that still has this one\n\
         \x20    paired answers at once; another shows a prompt to accept)\n\
         \x20 4. on the other device, invite this one to each share again: ferry share invite SHARE DEVICE;\n\
         \x20    accept each offer here into the same folder as before: ferry accept ID --path FOLDER.\n\
         \x20    Its files are kept and compared with the other devices' (nothing is deleted; where both\n\
         \x20    changed a file, a conflict copy keeps both)."
    )
}

/// Resolves the device a note or send goes to: a known device (id, unique prefix or name), or
/// else a LocalSend device heard nearby (by alias or fingerprint), which then gets a device row.
pub(crate) async fn resolve_target(
    inner: &std::sync::Arc<crate::context::Context>,
    arg: &str,
) -> ApiResult<ferry_store::DeviceRecord> {
    match inner.resolve_device(arg).await {
        Err(e) if e.code == ErrorCode::NotFound => match crate::localsend::resolve_nearby(inner, arg).await? {
            Some(id) => inner
                .db(move |s| s.device(&id))
                .await?
                .ok_or_else(|| ApiError::internal("the LocalSend device has no row after resolving it")),
            None => Err(e),
        },
        r => r,
    }
}
