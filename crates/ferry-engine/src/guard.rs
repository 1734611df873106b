//! The mass-delete guard as a state machine. A pull that would delete more than a share's
//! threshold of its files at once is held: those deletions are not applied, the user is asked,
//! and the rest of the pull goes on. Accepting lets the next pull apply them (and keeps the
//! guard quiet for the rest of the burst); refusing keeps the files and republishes them.
//!
//! State: the deletions applied recently ([`BURST_WINDOW_MS`]) and the "quiet until" of an
//! accepted burst live in memory ([`MassDeleteGuard`], lost on a restart); the user's standing
//! allowance (`ShareSettings::mass_delete_allowed`) and the prompt live in the store and come in
//! as inputs. Time comes in as `now_ms`.
//!
//! Replaces ferry-node `guard.rs: hold_mass_delete` (the decision; the node removes the held
//! paths from `wanted`, raises the prompt, clears the allowance), `guard.rs: answer` (the
//! settings changes) and the guard half of `summary.rs` (`recent_deletes`,
//! `guard_quiet_until`, `recent_remote_deletes`, `quiet_guard`, `guard_is_quiet`, and the
//! deletion count in `remote_events`). The node keeps one [`MassDeleteGuard`] per share.

use std::collections::VecDeque;

use ferry_proto::{FileRecord, RelPath};

use crate::mass_delete_trips;

/// A peer's burst of deletes may reach us in several index updates (its scanner commits as the
/// events come); deletions applied this recently count towards the threshold, so a burst
/// cannot slip through in slices. At most the threshold's worth of a burst is applied before
/// the rest is held (and what was applied is in the version history).
pub const BURST_WINDOW_MS: i64 = 60_000;

/// The wanted deletions the guard weighs: tombstones of paths where we hold a live file, sorted.
/// `local_is_file(p)`: our entry at `p` is a live file. Node: `wanted.values().map(|(r, _)| r)`
/// and `|p| local.get(p).is_some_and(|e| e.record.is_file())`.
pub fn wanted_deletes<'a>(
    wanted: impl IntoIterator<Item = &'a FileRecord>,
    local_is_file: impl Fn(&RelPath) -> bool,
) -> Vec<RelPath> {
    let mut out: Vec<RelPath> =
        wanted.into_iter().filter(|r| r.deleted && local_is_file(&r.path)).map(|r| r.path.clone()).collect();
    out.sort();
    out
}

/// The wanted changes that must wait while the deletions `held` wait: a folder's deletion, or
/// its replacement by a file or a link, needs every path below it gone first, so doing it now
/// could only fail (the folder is not empty) and report an error for what is in fact waiting
/// for the user's answer. Node: removes these from `wanted` with the held paths; the pull after
/// the answer does them.
pub fn blocked_by_held<'a>(wanted: impl IntoIterator<Item = &'a RelPath>, held: &[RelPath]) -> Vec<RelPath> {
    wanted.into_iter().filter(|p| held.iter().any(|h| h != *p && h.is_within(p))).cloned().collect()
}

/// The stored inputs of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardInput {
    /// Live files in the local index.
    pub live_files: usize,
    /// The share's threshold (its setting, else the node's default).
    pub percent: u8,
    /// The user accepted a held mass delete of this share and it was not applied yet.
    pub allowed: bool,
    /// A mass-delete prompt for this share is already open.
    pub prompt_open: bool,
}

/// What to do with a pull's deletions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardDecision {
    /// Apply them all.
    Apply,
    /// Apply them all, using up the user's allowance: store `mass_delete_allowed = false`.
    ApplyAllowed,
    /// Remove these paths from the pull; raise a prompt when `prompt` (else one is open),
    /// from the device that wrote the first held tombstone (`wanted[&paths[0]].modified_by`).
    Hold { paths: Vec<RelPath>, prompt: Option<Prompt> },
}

/// The prompt to raise for a held mass delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prompt {
    pub deletes: u64,
    pub files: u64,
}

/// The user's answer, as changes to the share's settings and what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Store `mass_delete_allowed`.
    pub allowed: bool,
    /// Mark the share as needing attention (a refused mass delete).
    pub attention: bool,
    /// Republish the local files the peers deleted ([`crate::plans::plan_republish`]).
    pub republish: bool,
}

/// The user's answer to a mass-delete prompt (then the node requests a pull either way).
pub fn answer(accept: bool) -> Answer {
    if accept {
        Answer { allowed: true, attention: false, republish: false }
    } else {
        Answer { allowed: false, attention: true, republish: true }
    }
}

/// One share's guard memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MassDeleteGuard {
    /// Remote deletions applied recently: (when, how many).
    recent: VecDeque<(i64, u64)>,
    /// Until then an accepted mass delete covers the rest of its burst.
    quiet_until_ms: Option<i64>,
}

impl MassDeleteGuard {
    pub fn new() -> Self {
        Self::default()
    }

    /// Weighs a pull's `deletes` (from [`wanted_deletes`]) at `now_ms`.
    pub fn check(&mut self, deletes: &[RelPath], input: GuardInput, now_ms: i64) -> GuardDecision {
        if deletes.is_empty() || self.is_quiet(now_ms) {
            return GuardDecision::Apply;
        }
        let recent = self.recent_deletes(now_ms) as usize;
        if !mass_delete_trips(input.live_files + recent, deletes.len() + recent, input.percent) {
            return GuardDecision::Apply;
        }
        if input.allowed {
            self.quiet_until_ms = Some(now_ms + BURST_WINDOW_MS);
            self.recent.clear();
            return GuardDecision::ApplyAllowed;
        }
        let prompt =
            (!input.prompt_open).then_some(Prompt { deletes: deletes.len() as u64, files: input.live_files as u64 });
        GuardDecision::Hold { paths: deletes.to_vec(), prompt }
    }

    /// Remote deletions were applied (committed) at `now_ms`. Node: from each flushed batch.
    pub fn applied_deletes(&mut self, n: u64, now_ms: i64) {
        if n > 0 {
            self.recent.push_back((now_ms, n));
        }
    }

    /// Remote deletions applied within the window before `now_ms` (older ones are forgotten).
    pub fn recent_deletes(&mut self, now_ms: i64) -> u64 {
        while self.recent.front().is_some_and(|(at, _)| now_ms - at > BURST_WINDOW_MS) {
            self.recent.pop_front();
        }
        self.recent.iter().map(|(_, n)| n).sum()
    }

    /// True while an accepted burst is being applied.
    pub fn is_quiet(&self, now_ms: i64) -> bool {
        self.quiet_until_ms.is_some_and(|u| now_ms < u)
    }
}

#[cfg(test)]
mod blocked_tests {
    use super::*;

    #[test]
    fn a_folder_waits_for_the_held_deletions_below_it() {
        let p = |s: &str| RelPath::new(s).unwrap();
        let wanted = [p("d"), p("d/sub"), p("d/sub/f"), p("dd"), p("e/g"), p("new.txt")];
        let held = [p("d/sub/f"), p("d/x")];
        let mut blocked = blocked_by_held(wanted.iter(), &held);
        blocked.sort();
        // "dd" only shares a prefix; "e/g" and "new.txt" are elsewhere; the held path itself
        // is the caller's to remove.
        assert_eq!(blocked, vec![p("d"), p("d/sub")]);
        assert!(blocked_by_held(wanted.iter(), &[]).is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(n: usize) -> Vec<RelPath> {
        (0..n).map(|i| RelPath::new(format!("f{i:03}")).unwrap()).collect()
    }

    fn input(live_files: usize, allowed: bool, prompt_open: bool) -> GuardInput {
        GuardInput { live_files, percent: 50, allowed, prompt_open }
    }

    #[test]
    fn holds_then_applies_once_allowed_and_stays_quiet_for_the_burst() {
        let mut g = MassDeleteGuard::new();
        assert_eq!(g.check(&paths(5), input(20, false, false), 0), GuardDecision::Apply, "small");
        let d = g.check(&paths(15), input(20, false, false), 0);
        assert_eq!(d, GuardDecision::Hold { paths: paths(15), prompt: Some(Prompt { deletes: 15, files: 20 }) });
        let d = g.check(&paths(15), input(20, false, true), 10);
        assert_eq!(d, GuardDecision::Hold { paths: paths(15), prompt: None }, "one prompt at a time");
        assert_eq!(answer(true), Answer { allowed: true, attention: false, republish: false });
        assert_eq!(g.check(&paths(15), input(20, true, true), 20), GuardDecision::ApplyAllowed);
        g.applied_deletes(15, 20);
        // The rest of the burst, within the window: quiet.
        assert_eq!(g.check(&paths(5), input(5, false, false), 30), GuardDecision::Apply);
        assert!(g.is_quiet(20 + BURST_WINDOW_MS - 1) && !g.is_quiet(20 + BURST_WINDOW_MS));
        // A restart forgets the quiet: held again.
        let mut fresh = MassDeleteGuard::new();
        assert!(matches!(fresh.check(&paths(15), input(20, false, false), 30), GuardDecision::Hold { .. }));
    }

    #[test]
    fn a_burst_in_slices_is_counted_within_the_window() {
        let mut g = MassDeleteGuard::new();
        // 100 files; 10 deleted at a time never trips alone.
        assert_eq!(g.check(&paths(10), input(100, false, false), 0), GuardDecision::Apply);
        g.applied_deletes(10, 0);
        let mut live = 90;
        let mut t = 0;
        let held = loop {
            t += 1000;
            match g.check(&paths(10), input(live, false, false), t) {
                GuardDecision::Apply => {
                    g.applied_deletes(10, t);
                    live -= 10;
                }
                other => break other,
            }
        };
        assert!(matches!(held, GuardDecision::Hold { .. }));
        assert!(live >= 50, "at most the threshold's worth applied: {live} left");
        // Long after, the window is empty again.
        assert_eq!(g.recent_deletes(t + 10 * BURST_WINDOW_MS), 0);
        assert_eq!(answer(false), Answer { allowed: false, attention: true, republish: true });
    }
}
