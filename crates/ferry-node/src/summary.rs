//! Sync summaries (pysyncml's report): per share, what the last sync session and everything
//! since the node started did: local and remote adds, changes and deletes, errors and
//! conflicts. A session is one round of the share's worker (scan, then pull) that changed
//! something; at its end the counts go to status and out as a [`Event::SyncSummary`].

use std::collections::HashMap;
use std::sync::Mutex;

use ferry_proto::ShareId;

use crate::api::{SummaryCountsDto, SummaryDto};
use crate::events::{ChangeKind, Event};

/// Local adds, changes and deletes a scan found (files and links; directories are not counted).
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct LocalCounts {
    pub adds: u64,
    pub changes: u64,
    pub deletes: u64,
}

impl LocalCounts {
    pub fn add(&mut self, o: LocalCounts) {
        self.adds += o.adds;
        self.changes += o.changes;
        self.deletes += o.deletes;
    }
}

#[derive(Default)]
struct Tracker {
    current: SummaryCountsDto,
    started_ms: i64,
    last: Option<(SummaryCountsDto, i64, i64)>,
    total: SummaryCountsDto,
}

/// Every share's summary, owned by the node.
#[derive(Default)]
pub(crate) struct Summaries(Mutex<HashMap<ShareId, Tracker>>);

fn add(a: &mut SummaryCountsDto, b: &SummaryCountsDto) {
    a.local_adds += b.local_adds;
    a.local_changes += b.local_changes;
    a.local_deletes += b.local_deletes;
    a.remote_adds += b.remote_adds;
    a.remote_changes += b.remote_changes;
    a.remote_deletes += b.remote_deletes;
    a.errors += b.errors;
    a.conflicts += b.conflicts;
}

fn is_empty(c: &SummaryCountsDto) -> bool {
    *c == SummaryCountsDto::default()
}

impl Summaries {
    fn with(&self, share: ShareId, f: impl FnOnce(&mut Tracker)) {
        f(self.0.lock().unwrap().entry(share).or_default())
    }

    pub fn begin(&self, share: ShareId) {
        self.with(share, |t| {
            t.current = SummaryCountsDto::default();
            t.started_ms = crate::clock::now_ms();
        });
    }

    pub fn local(&self, share: ShareId, c: LocalCounts) {
        self.with(share, |t| {
            t.current.local_adds += c.adds;
            t.current.local_changes += c.changes;
            t.current.local_deletes += c.deletes;
        });
    }

    /// Counts a pull batch's applied changes and the conflicts they made.
    pub fn remote(&self, share: ShareId, changes: &[ChangeKind], conflicts: u64) {
        self.with(share, |t| {
            for k in changes {
                match k {
                    ChangeKind::Added => t.current.remote_adds += 1,
                    ChangeKind::Deleted => t.current.remote_deletes += 1,
                    ChangeKind::Changed => t.current.remote_changes += 1,
                }
            }
            t.current.conflicts += conflicts;
        });
    }

    pub fn conflict(&self, share: ShareId) {
        self.with(share, |t| t.current.conflicts += 1);
    }

    pub fn error(&self, share: ShareId) {
        self.with(share, |t| t.current.errors += 1);
    }

    /// Ends the session; returns the event to emit if it did anything.
    pub fn end(&self, share: ShareId, label: &str) -> Option<Event> {
        let mut map = self.0.lock().unwrap();
        let t = map.entry(share).or_default();
        let c = std::mem::take(&mut t.current);
        if is_empty(&c) {
            return None;
        }
        let now = crate::clock::now_ms();
        add(&mut t.total, &c);
        t.last = Some((c.clone(), t.started_ms, now));
        Some(Event::SyncSummary {
            share: share.to_string(),
            label: label.to_string(),
            started_ms: t.started_ms,
            ended_ms: now,
            counts: c,
        })
    }

    pub fn get(&self, share: ShareId) -> SummaryDto {
        let map = self.0.lock().unwrap();
        match map.get(&share) {
            Some(t) => SummaryDto {
                last_session: t.last.as_ref().map(|(c, _, _)| c.clone()),
                last_session_started_ms: t.last.as_ref().map(|(_, s, _)| *s),
                last_session_ended_ms: t.last.as_ref().map(|(_, _, e)| *e),
                since_start: t.total.clone(),
            },
            None => SummaryDto::default(),
        }
    }
}
