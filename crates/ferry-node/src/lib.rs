//! The Ferry node: the composition root that wires the store, the file system side and the
//! network into a running service, and the control API through which the CLI (and the desktop
//! shell) drive it.
//!
//! Ownership: [`Node`] is a cheap handle onto shared state. Each share has one worker task that
//! owns all disk changes in that share (scans and pulls are serialized there, so a scan never
//! races a write); each connected peer has a serve loop and one index sender per shared share.
//! Every task watches the node's stop signal; [`Node::shutdown`] stops them in a fixed order.
//! Blocking work (redb, hashing, file IO) runs on the blocking pool, never on the runtime.

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
mod discovery;
pub mod doctor;
mod error;
pub mod events;
pub mod fault;
mod fetch;
mod guard;
mod history;
mod limits;
mod link;
mod need;
mod node;
mod notes;
pub mod pause;
mod peer;
mod records;
mod send;
pub mod settings;
mod share;
mod share_handle;
mod summary;
mod transfers;

pub use api::{ApiError, ErrorCode};
pub use config::{Config, Overrides};
/// The control API's one-field request bodies (a name, an id), beside the DTOs in [`api`]: so
/// every request body can be decoded outside the router (the fuzz targets in `fuzz/`).
pub use control::{AutoAcceptArg, IdArg, MuteArg, NameArg};
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
