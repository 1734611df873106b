//! Crash points: named steps on the durability path where a process started with
//! `FERRY_CRASH_AT=NAME` (or `NAME:N`, the Nth time it gets there) aborts: no clean shutdown,
//! no destructor, no flush, as a crash or a `kill -9` would stop it. A test then restarts the
//! node on what the crash left and checks that it recovers: no partial file at a user-visible
//! path, the index agrees with the disk, nothing it had reported done is lost, the devices
//! converge, no conflict copy appears (`crates/ferry-cli/tests/crash_points.rs`).
//!
//! The variable is read once. Unarmed (always, outside tests), a point costs one load of an
//! initialised `OnceLock` and a comparison.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Every crash point, in the order a change meets them. A point is named where it sits:
/// after the step its name says, before the next one.
pub const POINTS: &[&str] = &[
    // A peer's change, applied by a pull: the new content is whole and verified in its temp
    // file; the old content is archived; the temp is renamed over the target and the folder
    // fsynced; the batch's records are committed to the index.
    "apply.fetched",
    "apply.archived",
    "apply.renamed",
    "pull.committed",
    // A local change: the scan's records (and the versions it took) are committed.
    "scan.committed",
    // A one-shot send on the receiver: an item is placed in the inbox, not yet recorded.
    "send.placed",
    // A note from a peer is stored, not yet acknowledged.
    "note.stored",
    // A restore: the old content is written back (what it replaced archived), the index not
    // yet told.
    "restore.written",
];

/// The armed point and on which pass it fires, from `FERRY_CRASH_AT`.
fn armed() -> Option<&'static (String, u32)> {
    static ARMED: OnceLock<Option<(String, u32)>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let v = std::env::var("FERRY_CRASH_AT").ok()?;
            let (name, nth) = match v.split_once(':') {
                Some((n, k)) => (n.to_string(), k.parse().ok()?),
                None => (v, 1),
            };
            Some((name, nth))
        })
        .as_ref()
}

/// Called after the step `name`. Aborts the process if `FERRY_CRASH_AT` names it and this is
/// the pass it asked for.
pub(crate) fn point(name: &'static str) {
    static PASSES: AtomicU32 = AtomicU32::new(0);
    let Some((want, nth)) = armed() else { return };
    debug_assert!(POINTS.contains(&name), "crash point {name} is not listed in POINTS");
    if want == name && PASSES.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
        // stderr is unbuffered: the test reads this line to know the point was reached.
        eprintln!("ferry: crash point {name} reached, aborting");
        std::process::abort();
    }
}
