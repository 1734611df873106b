//! Events: what the node tells the outside world as it works. Producers never block: events
//! go to a bounded broadcast channel and slow subscribers miss old ones (they are told how many).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    DeviceConnected {
        device: String,
        name: String,
        address: String,
    },
    DeviceDisconnected {
        device: String,
        name: String,
        reason: String,
    },
    PromptAdded {
        id: u64,
        kind: String,
        device: String,
        device_name: String,
        code: Option<String>,
        label: Option<String>,
    },
    PromptResolved {
        id: u64,
        accepted: bool,
    },
    Paired {
        device: String,
        name: String,
    },
    /// A paired device came back with another certificate (or an older protocol) and was
    /// refused (KDE Connect devices).
    DeviceRefused {
        device: String,
        name: String,
        reason: String,
    },
    /// A device's trust was withdrawn: `by` is `None` when this device removed it, or the name
    /// of the device that removed this one.
    DeviceRemoved {
        device: String,
        name: String,
        by: Option<String>,
    },
    ScanFinished {
        share: String,
        changes: usize,
        seen: usize,
        hashed_bytes: u64,
        millis: u64,
    },
    IndexSent {
        share: String,
        device: String,
        records: usize,
    },
    IndexReceived {
        share: String,
        device: String,
        records: usize,
    },
    TransferProgress {
        share: String,
        path: String,
        done: u64,
        total: u64,
        bytes_per_sec: f64,
    },
    /// A change from a peer was applied here (`action`: added, changed, deleted).
    Applied {
        share: String,
        path: String,
        action: String,
        from: String,
    },
    Conflict {
        share: String,
        path: String,
        copy: String,
        winner: String,
    },
    InSync {
        share: String,
    },
    /// A share has items that cannot be synced that it did not have before (sent once per such
    /// change, not at every scan or retry): `new` are those items (at most 10), `count` all of
    /// the share's items now.
    FailedItems {
        share: String,
        label: String,
        count: u64,
        new: Vec<crate::api::FailedItemDto>,
    },
    Error {
        share: Option<String>,
        device: Option<String>,
        message: String,
    },
    /// A note from a paired device was stored here (shown once, however often it is delivered).
    NoteReceived {
        id: String,
        from: String,
        from_name: String,
        text: String,
    },
    /// A note changed state: `delivered`, `read` or `refused` (sent notes), `read` (received).
    NoteState {
        id: String,
        state: String,
    },
    /// Sent to a subscriber that fell behind.
    Lagged {
        missed: u64,
    },
    /// A one-shot send was offered (`direction` `out`: by this device; `in`: to it).
    SendOffered {
        id: String,
        device: String,
        device_name: String,
        direction: String,
        files: u64,
        bytes: u64,
        names: Vec<String>,
    },
    /// A send changed state: `offered`, `active`, `done`, `rejected` or `failed` (with why).
    SendState {
        id: String,
        device: String,
        direction: String,
        state: String,
        message: Option<String>,
    },
    /// Bytes of a send the receiver holds, about four times a second while it moves.
    SendProgress {
        id: String,
        device: String,
        direction: String,
        done: u64,
        total: u64,
        bytes_per_sec: f64,
    },
    /// A sync session of a share ended having changed something (pysyncml's summary).
    SyncSummary {
        share: String,
        label: String,
        started_ms: i64,
        ended_ms: i64,
        counts: crate::api::SummaryCountsDto,
    },
    /// Syncing was paused or resumed for the whole node.
    SyncPaused {
        paused: bool,
    },
}

/// What applying a peer's record did to a path. The summary counts these (typed), and the
/// `Applied` event carries the same as text (`action`) for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Changed => "changed",
            ChangeKind::Deleted => "deleted",
        }
    }
}

impl Event {
    /// The `Applied` event for a change of `kind`.
    pub(crate) fn applied(
        share: &ferry_proto::ShareId,
        path: &ferry_proto::RelPath,
        kind: ChangeKind,
        from: &ferry_proto::DeviceId,
    ) -> Event {
        Event::Applied {
            share: share.to_string(),
            path: path.to_string(),
            action: kind.as_str().into(),
            from: from.to_string(),
        }
    }
}
