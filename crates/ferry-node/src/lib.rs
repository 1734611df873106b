//! The Ferry node: the composition root that wires the store, the file system side and the
//! network into a running service, and the control API through which the CLI (and the desktop
//! shell) drive it.
//!
//! Ownership: [`Node`] is the facade (`node/`) over a shared context (`context`) that holds the
//! configuration, the store, the endpoint, the events and the registries of actor handles. Each
//! share is one actor (`share/`), the only writer of its index and files: scans, pulls and the
//! commands that change a share (restore, rewind, resolve, override, revert, republish, prune)
//! run in that one task. Each connected device is one `PeerLink` owning its tasks (`link`,
//! `peer/`). Every sync decision is made by ferry-engine; this crate gathers its inputs and
//! carries out its answers. [`Node::shutdown`] stops everything in a fixed order. Blocking work
//! (redb, hashing, file IO) runs on the blocking pool, never on the runtime. ARCHITECTURE.md at
//! the repository root has the map.

pub mod api;
#[cfg(test)]
mod bindings;
mod block_cache;
pub mod client;
mod clock;
pub mod config;
mod conflicts;
mod context;
mod control;
pub mod crash;
mod discovery;
pub mod doctor;
mod error;
pub mod event_log;
pub mod events;
mod failed;
pub mod fault;
mod fetch;
mod foreign;
mod guard;
mod history;
mod kde_handle;
mod kdeconnect;
mod limits;
mod link;
mod localsend;
mod ls_handle;
mod need;
mod node;
mod notes;
pub mod pause;
mod peer;
mod records;
mod removal;
mod send;
pub mod settings;
mod share;
mod share_handle;
mod summary;
mod swarm;
mod transfers;

pub use api::{ApiError, ErrorCode};
pub use config::{Config, Overrides};
/// The control API's one-field request bodies (a name, an id), beside the DTOs in [`api`]: so
/// every request body can be decoded outside the router (the fuzz targets in `fuzz/`).
pub use control::{AutoAcceptArg, Empty, IdArg, MuteArg, NameArg};
pub use event_log::{RecentDto, Stamped, Subscription};
pub use events::Event;
pub use node::Node;

/// Keeps the process to one glibc malloc arena. By default glibc gives each thread that
/// allocates under contention an arena of its own (up to 8 per core), and each keeps the
/// buffers freed in it (blocks, index batches, file lists) resident: a node's tokio workers and
/// blocking threads held ~30 MiB that way in a 10,000-file sync (peak RSS 82 MiB, 53 MiB with
/// one arena, no measurable CPU cost). Call first thing in `main`, before any thread starts.
pub fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only changes an allocator parameter; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
