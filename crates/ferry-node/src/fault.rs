//! Named fault points: places on the data-safety path where a test can hold the thread that
//! reaches them (to force an interleaving that timing alone would make rare) and then let it
//! go, or make the step fail as the disk would (`fail`). Unarmed (always, outside tests) a
//! point costs one relaxed atomic load.
//!
//! A point blocks the calling thread, so points sit in blocking code only (store closures,
//! file IO on the blocking pool), never directly on the async runtime.
//!
//! Points are process-wide: a test that arms one runs in its own test binary, or arms a name
//! that no other test in the binary reaches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

/// Longest a point holds a thread: a test that forgets to release (or panics first) must not
/// hang the process forever.
const MAX_HOLD: Duration = Duration::from_secs(60);

/// Set while any point is armed, so unarmed points skip the lock.
static ARMED: AtomicBool = AtomicBool::new(false);

fn points() -> &'static Mutex<HashMap<&'static str, Arc<Gate>>> {
    static POINTS: OnceLock<Mutex<HashMap<&'static str, Arc<Gate>>>> = OnceLock::new();
    POINTS.get_or_init(Default::default)
}

#[derive(Default)]
struct Gate {
    /// Passes let through before the point starts holding (see [`hold_after`]).
    free: std::sync::atomic::AtomicU32,
    /// Set by [`Held::fail_held`]: the threads held so far fail their step when let go.
    fail_held: AtomicBool,
    /// (reached, released)
    state: Mutex<(bool, bool)>,
    changed: Condvar,
    reached: tokio::sync::Notify,
}

/// Called at a named step. Blocks while a test holds the point.
pub(crate) fn point(name: &'static str) {
    let _ = pass(name);
}

/// Like [`point`], for a step that can fail: false when the test let the held thread go with
/// [`Held::fail_held`] (the caller then fails the step as if its IO had failed).
pub(crate) fn pass(name: &'static str) -> bool {
    if !ARMED.load(Ordering::Relaxed) {
        return true;
    }
    let Some(gate) = points().lock().unwrap().get(name).cloned() else { return true };
    if gate.free.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
        return true;
    }
    let mut st = gate.state.lock().unwrap();
    st.0 = true;
    gate.reached.notify_waiters();
    gate.reached.notify_one();
    let _ = gate.changed.wait_timeout_while(st, MAX_HOLD, |s| !s.1);
    !gate.fail_held.load(Ordering::Relaxed)
}

/// A point held by a test (see [`hold`]). Dropping it releases the point.
pub struct Held {
    name: &'static str,
    gate: Arc<Gate>,
}

/// Arms `name`: every thread that reaches it waits until the returned guard is released.
pub fn hold(name: &'static str) -> Held {
    hold_after(name, 0)
}

/// Like [`hold`], after letting the first `passes` threads through.
pub fn hold_after(name: &'static str, passes: u32) -> Held {
    let gate = Arc::new(Gate { free: passes.into(), ..Default::default() });
    points().lock().unwrap().insert(name, gate.clone());
    ARMED.store(true, Ordering::Relaxed);
    Held { name, gate }
}

impl Held {
    /// Waits up to `timeout` for a thread to reach the point; true if one did.
    pub async fn reached(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.gate.reached.notified();
                if self.gate.state.lock().unwrap().0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// Lets every waiting (and later) thread pass.
    pub fn release(self) {}

    /// Lets go: the threads held so far fail their step (see [`pass`]); later ones pass.
    pub fn fail_held(self) {
        self.gate.fail_held.store(true, Ordering::Relaxed);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut map = points().lock().unwrap();
        if map.get(self.name).is_some_and(|g| Arc::ptr_eq(g, &self.gate)) {
            map.remove(self.name);
        }
        ARMED.store(!map.is_empty(), Ordering::Relaxed);
        drop(map);
        self.gate.state.lock().unwrap().1 = true;
        self.gate.changed.notify_all();
    }
}

fn failures() -> &'static Mutex<HashMap<&'static str, u32>> {
    static FAILURES: OnceLock<Mutex<HashMap<&'static str, u32>>> = OnceLock::new();
    FAILURES.get_or_init(Default::default)
}

/// Set while any failure is armed, so unarmed steps skip the lock.
static FAILING: AtomicBool = AtomicBool::new(false);

/// True (and one fewer left) when the step `name` must fail now. The caller returns the error
/// the real failure would give.
pub(crate) fn failing(name: &'static str) -> bool {
    if !FAILING.load(Ordering::Relaxed) {
        return false;
    }
    let mut map = failures().lock().unwrap();
    match map.get_mut(name) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    }
}

/// Makes the next `times` passes through step `name` fail (see [`failing`]).
pub fn fail(name: &'static str, times: u32) {
    failures().lock().unwrap().insert(name, times);
    FAILING.store(true, Ordering::Relaxed);
}

/// How many armed failures of `name` have not happened yet.
pub fn failures_left(name: &'static str) -> u32 {
    failures().lock().unwrap().get(name).copied().unwrap_or(0)
}
