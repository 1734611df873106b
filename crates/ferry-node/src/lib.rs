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
pub use control::{AutoAcceptArg, IdArg, MuteArg, NameArg};
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

/// Returns the free pages of glibc's heap to the system (`malloc_trim`). glibc gives back only
/// the top of the heap by itself; after a large owner goes (the desktop app's window and its
/// WebKit objects) the freed middle stays resident until trimmed. Cheap, and a no-op elsewhere.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim takes the allocator's own lock; it is safe from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Hands back the resident pages of the libraries whose file name contains one of `names`
/// (`madvise(MADV_PAGEOUT)` over each of their mappings in `/proc/self/maps`); returns the
/// bytes of the mappings advised. For the desktop app closed to the tray: a window's WebKit
/// and the GL stack it brought (Mesa's driver and the LLVM it links, ~90 MiB resident) stay
/// mapped after the window is gone, their pages still counted in the app's memory although
/// nothing runs them until a window opens again. Paging out keeps every byte as it was (clean
/// file pages are dropped and read again from the file if touched; written ones, such as the
/// relocated tables, are swapped or stay), so it is safe on any mapping, even one in use: it
/// costs at most a fault back in. A no-op off Linux (and on kernels before 5.4, which refuse it).
pub fn page_out_libraries(names: &[&str]) -> u64 {
    #[cfg(target_os = "linux")]
    {
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return 0 };
        let mut advised = 0;
        for line in maps.lines() {
            // "start-end perms offset dev inode path"
            let mut fields = line.split_whitespace();
            let range = fields.next().unwrap_or("");
            let path = fields.nth(4).unwrap_or("");
            let file = path.rsplit('/').next().unwrap_or("");
            if !path.starts_with('/') || !names.iter().any(|n| file.contains(n)) {
                continue;
            }
            let Some((start, end)) = range.split_once('-') else { continue };
            let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) else {
                continue;
            };
            #[allow(unsafe_code)]
            // SAFETY: the range is one whole mapping of this process as the kernel listed it;
            // MADV_PAGEOUT only reclaims pages (their contents stay as they were), so even a
            // mapping unmapped meanwhile is at worst an error return, never a changed byte.
            let ok = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) } == 0;
            if ok {
                advised += (end - start) as u64;
            }
        }
        advised
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = names;
        0
    }
}
