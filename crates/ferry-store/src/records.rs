//! The records the store keeps. Each is stored postcard-encoded inside a versioned wrapper, so
//! changing one of these types means adding a new wrapper variant and a migration.

use ferry_proto::wire::SendFile;
use ferry_proto::{
    ChunkHash, ConflictPolicy, DeviceId, FileRecord, NoteId, RelPath, Retention, ShareId, ShareMode, TransferId,
};
use serde::{Deserialize, Serialize};

/// A device we know: paired, or one that asked to pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub id: DeviceId,
    pub name: String,
    pub owner: String,
    pub paired: bool,
    /// Last known `ip:port` addresses, most recent first.
    pub addresses: Vec<String>,
    /// Addresses configured by the user.
    pub static_addresses: Vec<String>,
    pub last_seen_ms: Option<i64>,
}

/// A device whose trust was withdrawn (schema v4): either this device removed it (its
/// certificate is refused from then on) or it told us it removed this device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalRecord {
    pub device: DeviceId,
    pub removed_ms: i64,
    pub by: RemovedBy,
}

/// Who withdrew the trust of a [`RemovalRecord`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemovedBy {
    /// The user of this device removed it: its connections are refused until this device
    /// deliberately pairs with it again.
    Us,
    /// It removed this device and said so, under this name (at most `MAX_NAME` bytes).
    Them { name: String },
}

/// What [`crate::Store::record_removal`] changed besides the device: the shares that lost it
/// as a member (as they are now) and the prompts it had raised (now gone).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemovalChanges {
    pub shares: Vec<ShareRecord>,
    pub prompts: Vec<PromptRecord>,
}

/// A share this device is a member of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareRecord {
    pub id: ShareId,
    pub label: String,
    /// Absolute path of the share root.
    pub path: String,
    pub mode: ShareMode,
    /// Member devices other than this one.
    pub devices: Vec<DeviceId>,
    pub paused: bool,
}

/// This device's index of a share: its epoch (random, nonzero, new whenever the index starts
/// over) and the highest seq handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ShareState {
    pub epoch: u64,
    pub max_seq: u64,
}

/// What we hold of a remote device's index of a share: its epoch and the highest seq received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RemoteState {
    pub epoch: u64,
    pub max_seq: u64,
}

/// One path of the local index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalEntry {
    pub record: FileRecord,
    pub meta: LocalMeta,
}

/// Local-only facts about an entry, never sent to peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LocalMeta {
    pub inode: u64,
    /// A change made here in a receive-only share: never sent.
    pub local_change: bool,
}

/// One entry to write in [`crate::Store::commit_local`].
#[derive(Clone, Debug)]
pub struct LocalUpdate {
    pub entry: LocalEntry,
    /// Give the entry the next seq (a change peers must hear about); otherwise keep the seq in
    /// `entry.record.seq` (a metadata-only refresh, e.g. a new inode).
    pub new_seq: bool,
}

/// An archived earlier version of a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub share: ShareId,
    pub path: RelPath,
    /// Unique per path: archive time in ns.
    pub id: u64,
    pub archived_at_ms: i64,
    pub size: u64,
    pub hash: ChunkHash,
    pub mtime_ns: i64,
    /// Device that wrote the archived content.
    pub modified_by: DeviceId,
    /// Device whose change replaced or deleted it.
    pub replaced_by: DeviceId,
    /// Relative to the share root, e.g. `.ferry/versions/a/b~20260101-120000.txt`; empty
    /// ([`VersionRecord::NOT_KEPT_HERE`]) when this device knows of the version but holds no
    /// copy (the file was rewritten in place, so its snapshot changed with it): another device of
    /// the share may have archived it, and a restore fetches it from there.
    pub archive_path: String,
    pub reason: VersionReason,
}

impl VersionRecord {
    /// The `archive_path` of a version this device holds no copy of.
    pub const NOT_KEPT_HERE: &'static str = "";

    /// Whether this device holds a copy of the version.
    pub fn kept_here(&self) -> bool {
        self.archive_path != Self::NOT_KEPT_HERE
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionReason {
    Replaced,
    Deleted,
    Conflict,
}

/// Something awaiting the user's decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptRecord {
    pub id: u64,
    pub device: DeviceId,
    pub created_ms: i64,
    pub kind: PromptKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromptKind {
    Pair {
        name: String,
        owner: String,
        code: String,
    },
    ShareOffer {
        share: ShareId,
        label: String,
    },
    /// A one-shot send waiting for the user: what `ferry pending` shows of it.
    SendOffer {
        transfer: TransferId,
        files: u64,
        bytes: u64,
        names: Vec<String>,
    },
    /// A peer's update would delete `deletes` of the share's `files` files; held until answered.
    MassDelete {
        share: ShareId,
        label: String,
        deletes: u64,
        files: u64,
    },
}

/// A quick note, sent to or received from a paired device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteRecord {
    pub id: NoteId,
    /// The other device of the conversation.
    pub peer: DeviceId,
    /// True for a note this device sent.
    pub outgoing: bool,
    pub sent_at_ms: i64,
    pub text: String,
    pub state: NoteState,
    /// Received notes: read here, but the sender has not acknowledged the read receipt yet.
    pub receipt_pending: bool,
    /// Position in the conversation, set by the store.
    pub order: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoteState {
    /// Sent notes: waiting in the outbox.
    Queued,
    /// Sent notes: the receiver stored it.
    Delivered,
    /// Sent notes: the receiver's user opened it; received notes: opened here.
    Read,
    /// Received notes: not opened yet.
    Unread,
    /// Sent notes: the receiver refused it, with its reason.
    Refused(String),
}

impl NoteState {
    pub fn as_str(&self) -> &'static str {
        match self {
            NoteState::Queued => "queued",
            NoteState::Delivered => "delivered",
            NoteState::Read => "read",
            NoteState::Unread => "unread",
            NoteState::Refused(_) => "refused",
        }
    }
}

/// A one-shot file send, outgoing or incoming (schema v3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRecord {
    pub id: TransferId,
    /// The other device.
    pub peer: DeviceId,
    /// True on the sending side.
    pub outgoing: bool,
    pub created_ms: i64,
    /// What was offered, in offer order (block requests name files by their index here).
    pub files: Vec<SendFile>,
    /// Folders of the send, including empty ones, so the structure arrives whole.
    pub dirs: Vec<RelPath>,
    /// Sender only: the absolute source path of each file of `files`, same order.
    pub sources: Vec<String>,
    pub state: TransferState,
    /// Bytes the receiver holds, verified (last known).
    pub done_bytes: u64,
    /// Receiver only: the update the sender has not acknowledged yet (delivered on connect).
    pub notify: Option<ferry_proto::wire::SendUpdate>,
    /// Receiver only: top-level names already moved from the staging folder into the inbox,
    /// with the name each got there (collisions get ` (1)` suffixes).
    pub placed: Vec<(String, String)>,
    pub finished_ms: Option<i64>,
}

impl TransferRecord {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferState {
    /// Sender: the offer is stored but not yet delivered (the device is away).
    Queued,
    /// The offer is delivered; the receiver's user has not answered.
    Offered,
    /// Accepted: content is moving (or waits for the other device to come back).
    Active,
    Done,
    Rejected(String),
    Failed(String),
}

impl TransferState {
    pub fn as_str(&self) -> &'static str {
        match self {
            TransferState::Queued => "queued",
            TransferState::Offered => "offered",
            TransferState::Active => "active",
            TransferState::Done => "done",
            TransferState::Rejected(_) => "rejected",
            TransferState::Failed(_) => "failed",
        }
    }

    /// Done, rejected or failed: nothing more will happen.
    pub fn is_final(&self) -> bool {
        matches!(self, TransferState::Done | TransferState::Rejected(_) | TransferState::Failed(_))
    }
}

/// A share's history, conflict and safety settings, and its "needs attention" flag (schema v3).
/// Kept apart from [`ShareRecord`] so that record's encoding stays as it was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ShareSettings {
    pub conflict_policy: ConflictPolicy,
    pub retention: Retention,
    /// Percent of the share's files one peer update may delete before it is held; `None`: the
    /// node's configured default.
    pub mass_delete_percent: Option<u8>,
    /// Why the share needs the user's attention (e.g. a refused mass delete); shown by status.
    pub attention: Option<String>,
    /// The user allowed a held mass delete: the next pull applies it (and clears this).
    pub mass_delete_allowed: bool,
}
