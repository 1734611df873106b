//! The node's event log: every event is numbered as it is emitted (`seq`, from 1, the order
//! subscribers receive them in) and the last few hundred that say what happened are kept, so
//! a view that was not listening can still show them: a desktop window opened after a file
//! arrived, `ferry events --since N` after a reconnect (as Syncthing's `/rest/events?since=`).
//!
//! Invariant: numbering, keeping and sending happen under one lock, so every subscriber sees
//! `seq` strictly increasing, and a snapshot taken with a subscription (`since`) neither
//! misses nor repeats an event between the two.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::events::Event;

/// Kept events: as many as the desktop's Activity feed shows (ui/src/lib/activity.ts
/// MAX_ENTRIES), a few hours of a busy node's connects, prompts, files and errors.
pub const KEPT: usize = 300;

/// An event with its number and the time it was emitted (Unix milliseconds). On the wire the
/// event's own fields sit beside `seq` and `at_ms` (one flat JSON object per event).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stamped {
    pub seq: u64,
    pub at_ms: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// The kept events, and the `seq` of the last event emitted before the snapshot (kept or not):
/// a view that subscribed first drops the live events up to `upto`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecentDto {
    pub upto: u64,
    pub events: Vec<Stamped>,
}

pub(crate) struct EventLog {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Stamped>,
}

#[derive(Default)]
struct Inner {
    seq: u64,
    kept: VecDeque<Stamped>,
}

/// Progress and index chatter: many per second in a sync, and stale by the time anyone looks
/// back. What happened is in the rest.
fn worth_keeping(ev: &Event) -> bool {
    !matches!(
        ev,
        Event::TransferProgress { .. }
            | Event::SendProgress { .. }
            | Event::IndexSent { .. }
            | Event::IndexReceived { .. }
    )
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl EventLog {
    /// `capacity`: how many events a subscriber may fall behind by before it misses some.
    pub fn new(capacity: usize) -> Self {
        EventLog { inner: Mutex::new(Inner::default()), tx: broadcast::channel(capacity).0 }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers `event`, keeps it if it says what happened, and sends it to the subscribers
    /// (none is fine: events are best effort by design; producers never block).
    pub fn emit(&self, event: Event) {
        let mut g = self.lock();
        g.seq += 1;
        let stamped = Stamped { seq: g.seq, at_ms: now_ms(), event };
        if worth_keeping(&stamped.event) {
            if g.kept.len() == KEPT {
                g.kept.pop_front();
            }
            g.kept.push_back(stamped.clone());
        }
        let _ = self.tx.send(stamped);
    }

    pub fn subscribe(&self) -> Subscription {
        let g = self.lock();
        Subscription { rx: self.tx.subscribe(), last: g.seq }
    }

    pub fn recent(&self) -> RecentDto {
        let g = self.lock();
        RecentDto { upto: g.seq, events: g.kept.iter().cloned().collect() }
    }

    /// The kept events numbered after `since`, and a subscription that goes on right after
    /// them.
    pub fn since(&self, since: u64) -> (Vec<Stamped>, Subscription) {
        let g = self.lock();
        let kept = g.kept.iter().filter(|e| e.seq > since).cloned().collect();
        (kept, Subscription { rx: self.tx.subscribe(), last: g.seq })
    }
}

/// A live subscription to the node's events.
pub struct Subscription {
    rx: broadcast::Receiver<Stamped>,
    /// The `seq` of the last event received (or emitted before subscribing).
    last: u64,
}

impl Subscription {
    /// The next event; None once the node has stopped. A subscriber that fell behind gets one
    /// `Lagged` in place of the events it missed, numbered as the last of them.
    pub async fn next(&mut self) -> Option<Stamped> {
        use broadcast::error::RecvError;
        let stamped = match self.rx.recv().await {
            Ok(s) => s,
            Err(RecvError::Lagged(missed)) => {
                Stamped { seq: self.last + missed, at_ms: now_ms(), event: Event::Lagged { missed } }
            }
            Err(RecvError::Closed) => return None,
        };
        self.last = stamped.seq;
        Some(stamped)
    }

    /// The next event alone, as a `broadcast::Receiver` gives it (`Lagged(n)` when n were
    /// missed, `Closed` once the node has stopped).
    pub async fn recv(&mut self) -> Result<Event, broadcast::error::RecvError> {
        use broadcast::error::RecvError;
        match self.rx.recv().await {
            Ok(s) => {
                self.last = s.seq;
                Ok(s.event)
            }
            Err(RecvError::Lagged(missed)) => {
                self.last += missed;
                Err(RecvError::Lagged(missed))
            }
            Err(e) => Err(e),
        }
    }

    /// `recv` without waiting.
    pub fn try_recv(&mut self) -> Result<Event, broadcast::error::TryRecvError> {
        use broadcast::error::TryRecvError;
        match self.rx.try_recv() {
            Ok(s) => {
                self.last = s.seq;
                Ok(s.event)
            }
            Err(TryRecvError::Lagged(missed)) => {
                self.last += missed;
                Err(TryRecvError::Lagged(missed))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paused(i: u64) -> Event {
        Event::SyncPaused { paused: i.is_multiple_of(2) }
    }

    fn progress() -> Event {
        Event::IndexSent { share: "s".into(), device: "d".into(), records: 1 }
    }

    #[test]
    fn keeps_the_last_ones_and_skips_progress() {
        let log = EventLog::new(16);
        for i in 0..(KEPT as u64 + 10) {
            log.emit(paused(i));
        }
        log.emit(progress());
        let r = log.recent();
        assert_eq!(r.upto, KEPT as u64 + 11);
        assert_eq!(r.events.len(), KEPT);
        assert_eq!(r.events[0].seq, 11, "the oldest ten went");
        assert_eq!(r.events.last().map(|e| e.seq), Some(r.upto - 1), "progress is numbered, not kept");
        assert!(r.events.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    }

    #[tokio::test]
    async fn since_then_live_misses_and_repeats_nothing() {
        let log = EventLog::new(16);
        for i in 0..5 {
            log.emit(paused(i));
        }
        let (kept, mut sub) = log.since(3);
        assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
        log.emit(progress());
        log.emit(paused(6));
        assert_eq!(sub.next().await.map(|e| e.seq), Some(6));
        assert_eq!(sub.next().await.map(|e| (e.seq, e.event)), Some((7, paused(6))));
        let (kept, _) = log.since(7);
        assert!(kept.is_empty());
    }

    #[tokio::test]
    async fn a_subscriber_that_fell_behind_is_told_how_far() {
        let log = EventLog::new(4);
        let mut sub = log.subscribe();
        for i in 0..10 {
            log.emit(paused(i));
        }
        let lagged = sub.next().await.unwrap();
        assert_eq!(lagged.event, Event::Lagged { missed: 6 });
        assert_eq!(lagged.seq, 6, "numbered as the last event it missed");
        assert_eq!(sub.next().await.map(|e| e.seq), Some(7), "then on from the oldest still buffered");
    }

    #[test]
    fn on_the_wire_one_flat_object() {
        let s = Stamped { seq: 7, at_ms: 1_000, event: paused(0) };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v, serde_json::json!({"seq": 7, "at_ms": 1000, "type": "sync_paused", "paused": true}));
        assert_eq!(serde_json::from_value::<Stamped>(v).unwrap(), s);
        // A line from an older node (no number) is refused, not misread.
        assert!(serde_json::from_str::<Stamped>(r#"{"type":"sync_paused","paused":true}"#).is_err());
    }
}
