//! The node's recent events, kept in the shell for the window's Activity feed. The feed is
//! built in the page from events as they arrive, and the page is destroyed when the window is
//! closed to the tray (window.rs): a new page replays these first, so Activity still shows
//! what happened while it was closed (files received, a conflict, an error a notification
//! pointed to).
//!
//! Every event forwarded to the window carries `seq`; `recent_events` says up to which `seq`
//! its list goes, so a page that listens before asking drops the live events it already got.

use std::collections::VecDeque;
use std::sync::Mutex;

use ferry_node::Event;
use serde::Serialize;

/// As many as the feed shows (ui/src/lib/activity.ts MAX_ENTRIES).
const KEEP: usize = 300;

#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub seq: u64,
    pub at_ms: u64,
    pub event: Event,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecentDto {
    /// The `seq` of the last event forwarded before this answer (kept or not).
    pub upto: u64,
    pub events: Vec<Recorded>,
}

#[derive(Default)]
pub struct Recent(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    seq: u64,
    kept: VecDeque<Recorded>,
}

/// Progress and index chatter: many per second in a sync, and stale by the time a window
/// opens. The feed's entries come from the rest.
fn worth_keeping(ev: &Event) -> bool {
    !matches!(
        ev,
        Event::TransferProgress { .. }
            | Event::SendProgress { .. }
            | Event::IndexSent { .. }
            | Event::IndexReceived { .. }
    )
}

impl Recent {
    /// Numbers `ev` (kept if worth it) and returns its `seq`.
    pub fn record(&self, ev: &Event, at_ms: u64) -> u64 {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.seq += 1;
        let seq = g.seq;
        if worth_keeping(ev) {
            if g.kept.len() == KEEP {
                g.kept.pop_front();
            }
            g.kept.push_back(Recorded { seq, at_ms, event: ev.clone() });
        }
        seq
    }

    pub fn snapshot(&self) -> RecentDto {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        RecentDto { upto: g.seq, events: g.kept.iter().cloned().collect() }
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The event as the window gets it: the node's JSON plus `seq`.
pub fn with_seq(ev: &Event, seq: u64) -> serde_json::Value {
    let mut v = serde_json::to_value(ev).unwrap_or(serde_json::Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("seq".into(), seq.into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(i: u64) -> Event {
        Event::SyncPaused { paused: i % 2 == 0 }
    }

    #[test]
    fn keeps_the_last_ones_and_skips_progress() {
        let r = Recent::default();
        for i in 0..(KEEP as u64 + 10) {
            r.record(&note(i), i);
        }
        let progress = Event::IndexSent { share: "s".into(), device: "d".into(), records: 1 };
        let last = r.record(&progress, 0);
        let s = r.snapshot();
        assert_eq!(s.upto, last);
        assert_eq!(s.events.len(), KEEP);
        assert_eq!(s.events[0].seq, 11, "the oldest ten went");
        assert_eq!(s.events.last().map(|e| e.seq), Some(last - 1), "progress is numbered, not kept");
    }

    #[test]
    fn forwarded_events_carry_seq() {
        let v = with_seq(&note(0), 7);
        assert_eq!(v["seq"], 7);
        assert_eq!(v["type"], "sync_paused");
    }
}
