//! The control API's data: what the CLI (and later the desktop app) sends and receives.
//! Field names are stable: scripts read them with `--json`.

use serde::{Deserialize, Serialize};

mod history;
pub use history::*;

/// Every failure crosses the API as `{code, message}`.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error, ts_rs::TS)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    NotFound,
    Ambiguous,
    Conflict,
    Unreachable,
    Rejected,
    Timeout,
    Internal,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into() }
    }
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::Internal, message.to_string())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct IdDto {
    pub device_id: String,
    pub name: String,
    pub owner: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct StatusDto {
    pub device_id: String,
    pub name: String,
    pub owner: String,
    pub listen: String,
    pub home: String,
    pub connected: usize,
    pub shares: Vec<ShareStatusDto>,
    /// True while syncing is paused for the whole node (`ferry pause`, the tray).
    #[serde(default)]
    pub paused: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct ShareStatusDto {
    pub id: String,
    pub label: String,
    pub path: String,
    pub mode: String,
    /// `idle`, `scanning`, `syncing`, `paused` or `error`.
    pub state: String,
    /// True only when every connected member has everything and this device needs nothing.
    pub in_sync: bool,
    pub files: u64,
    pub bytes: u64,
    /// Paths this device still has to fetch or apply.
    pub need: u64,
    pub last_error: Option<String>,
    /// Bytes fetched from peers since the node started (what crossed the network for content).
    pub fetched_bytes: u64,
    /// Bytes copied from content already on this device (renames, moved or repeated data).
    pub reused_bytes: u64,
    /// Bytes of this share's content this device served to other devices since the node
    /// started (from its files, or from downloads still in progress).
    #[serde(default)]
    pub served_bytes: u64,
    /// Chunks of this share's files that connected devices said they hold while still
    /// downloading them (they can serve them to this device already).
    #[serde(default)]
    pub peer_chunks: u64,
    /// `keep-both`, `newest-wins` or `this-device-wins`.
    #[serde(default)]
    pub conflict_policy: String,
    /// `staggered:DAYS:MAXBYTES`, `trash-can:DAYS` or `off`.
    #[serde(default)]
    pub retention: String,
    /// Changes made here that a receive-only share does not send (`ferry share revert` drops them).
    #[serde(default)]
    pub local_changes: u64,
    /// Why the share needs the user (a refused or held mass delete), if it does.
    #[serde(default)]
    pub attention: Option<String>,
    /// What syncing did: the last session and everything since the node started.
    #[serde(default)]
    pub summary: SummaryDto,
    /// Items that cannot be synced, with why (names not UTF-8 or too long, special files,
    /// files Ferry may not read, peers' changes this device could not apply), in path order;
    /// at most 100 per side (scan, pull). While there are any, `in_sync` is false.
    #[serde(default)]
    pub failed_items: Vec<FailedItemDto>,
    /// Items that cannot be synced beyond those listed (counted, not listed).
    #[serde(default)]
    pub failed_more: u64,
}

/// An item of a share that cannot be synced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct FailedItemDto {
    /// Share-relative; a name that is not UTF-8 is shown with U+FFFD for the bytes it cannot
    /// show.
    pub path: String,
    /// Why, for a person to read.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct DeviceDto {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub paired: bool,
    pub connected: bool,
    pub addresses: Vec<String>,
    pub last_seen_ms: Option<i64>,
    pub rtt_ms: Option<f64>,
    /// UDP bytes sent to / received from this device on the current connection.
    pub bytes_sent: Option<u64>,
    pub bytes_received: Option<u64>,
    /// Seen on the local network (mDNS) right now.
    pub nearby: bool,
    /// Where mDNS says it is (address hints; trust still comes from its TLS identity).
    pub nearby_addresses: Vec<String>,
    /// Its notes are refused (`ferry device mute`).
    #[serde(default)]
    pub muted: bool,
    /// Files it sends are accepted without a prompt (`ferry device auto-accept`).
    #[serde(default)]
    pub auto_accept: bool,
    /// This device removed it (`ferry devices remove`): not paired, its connections refused
    /// until this device pairs with it again.
    #[serde(default)]
    pub removed: bool,
    /// It removed this device, under this name: no longer dialed or synced with.
    #[serde(default)]
    pub removed_by: Option<String>,
    /// `ferry` (a Ferry device: shares, notes, sends), `kdeconnect` (a KDE Connect device,
    /// such as a phone: notes and sends only, never a share) or `localsend` (a LocalSend device:
    /// notes and sends only, no pairing).
    #[serde(default)]
    pub kind: String,
    /// What the device says it is: `phone`, `tablet`, `desktop`, `laptop` or `tv` (KDE Connect
    /// devices), `mobile`, `desktop`, `web`, `headless` or `server` (LocalSend devices); Ferry
    /// devices do not say.
    #[serde(default)]
    pub device_type: Option<String>,
    /// Something the user should know about this device now, e.g. that it came back with
    /// another certificate and was refused.
    #[serde(default)]
    pub warning: Option<String>,
    /// LocalSend devices: the model they announce (`Pixel 8`, `iPhone`, `Linux`).
    #[serde(default)]
    pub model: Option<String>,
    /// LocalSend devices: the SHA-256 of their certificate (upper-case hex), what identifies
    /// them (they have no pairing).
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// LocalSend devices: kept in the list while away (`ferry devices favorite`).
    #[serde(default)]
    pub favorite: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct PendingDto {
    pub id: u64,
    /// `pair` or `share`.
    pub kind: String,
    pub device: String,
    pub device_name: String,
    pub owner: String,
    /// The pairing code (pair prompts only).
    pub code: Option<String>,
    pub share_id: Option<String>,
    pub share_label: Option<String>,
    pub created_ms: i64,
    /// Send offers: the transfer id, how many files and bytes, and the top-level names.
    #[serde(default)]
    pub transfer: Option<String>,
    #[serde(default)]
    pub files: Option<u64>,
    #[serde(default)]
    pub bytes: Option<u64>,
    #[serde(default)]
    pub names: Vec<String>,
    /// Mass-delete prompts (`kind` = `mass-delete`): deletions held, of how many files (in
    /// `files`).
    #[serde(default)]
    pub deletes: Option<u64>,
    /// The device's kind (`ferry`, `kdeconnect`, `localsend`), and for a LocalSend device its
    /// certificate fingerprint: what tells it from another device of the same name.
    #[serde(default)]
    pub device_kind: String,
    #[serde(default)]
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct ShareDto {
    pub id: String,
    pub label: String,
    pub path: String,
    pub mode: String,
    pub devices: Vec<String>,
    pub paused: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct VersionDto {
    /// The archive time in nanoseconds: beyond the integers a JavaScript number holds exactly
    /// (2^53), so JavaScript clients use `id_text`.
    pub id: u64,
    /// `id` as decimal text (what the desktop UI reads and sends back to restore).
    #[serde(default)]
    pub id_text: String,
    pub share: String,
    pub path: String,
    pub archived_at_ms: i64,
    pub size: u64,
    pub hash: String,
    pub modified_by: String,
    pub replaced_by: String,
    pub reason: String,
    /// Absolute path of the archived copy; empty when this device has none (`kept_here`).
    pub file: String,
    /// Whether this device holds a copy. A version it does not hold (the file was rewritten in
    /// place) is fetched from a device of the share that archived it when it is restored.
    #[serde(default = "yes")]
    pub kept_here: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct PairRequestDto {
    /// `HOST:PORT`.
    pub address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct PairTicketDto {
    pub ticket: u64,
    pub device: String,
    pub device_name: String,
    pub code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct PairOutcomeDto {
    /// `accepted`, `rejected`, `failed` or `timeout`.
    pub state: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct AcceptDto {
    pub id: u64,
    pub path: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct ShareAddDto {
    pub path: String,
    pub label: Option<String>,
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct InviteDto {
    pub share: String,
    pub device: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct PingDto {
    pub device: String,
    pub rtt_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct VersionsQuery {
    /// A path inside a share (absolute, or relative to the current dir on the client).
    pub path: String,
}

/// One quick note, sent or received.
#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct NoteDto {
    /// 32 hex digits.
    pub id: String,
    /// Sender's device id.
    pub from: String,
    /// Receiver's device id.
    pub to: String,
    /// The other device of the conversation, and its name.
    pub peer: String,
    pub peer_name: String,
    /// True for a note this device sent.
    pub outgoing: bool,
    pub text: String,
    /// Milliseconds since the Unix epoch, on the sender's clock.
    pub sent_at: i64,
    /// Sent notes: `queued`, `delivered`, `read` or `refused`; received notes: `unread` or `read`.
    pub state: String,
    /// Why the receiver refused the note (state `refused` only).
    pub refused: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct NoteSendDto {
    pub device: String,
    pub text: String,
    /// The PIN a LocalSend device asks for (ignored for other devices).
    #[serde(default)]
    pub pin: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, ts_rs::TS)]
pub struct NotesQuery {
    /// Only the conversation with this device.
    pub device: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct NoteReadDto {
    /// A note id or unique prefix of one.
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct DeviceMuteDto {
    pub device: String,
    pub name: String,
    pub muted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct AddAddressDto {
    pub device: String,
    /// `HOST:PORT`.
    pub address: String,
}

/// `ferry doctor`: what a person needs to know when devices do not connect.
#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct DoctorDto {
    pub daemon_running: bool,
    pub control_socket: String,
    /// `answering`, `missing`, or `stale` (a socket file nobody answers on).
    pub control_socket_state: String,
    pub device_id: Option<String>,
    pub name: Option<String>,
    /// The configured (daemon not running) or bound (running) QUIC address.
    pub listen: String,
    pub mdns: MdnsDoctorDto,
    /// KDE Connect (phones): running, off, or not started and why.
    #[serde(default)]
    pub kdeconnect: KdeDoctorDto,
    /// LocalSend: running, off, or not started and why.
    #[serde(default)]
    pub localsend: LsDoctorDto,
    pub inotify: InotifyDto,
    /// One line per thing that needs attention, with what to do.
    pub problems: Vec<String>,
}

/// What `ferry devices scan` found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ts_rs::TS)]
pub struct LsScanDto {
    /// Addresses asked.
    pub probed: u32,
    /// The aliases of the LocalSend devices that answered (now in `ferry devices`).
    pub found: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ts_rs::TS)]
pub struct LsDoctorDto {
    /// Asked for by the configuration.
    pub enabled: bool,
    /// `running`, `off` (disabled), `failed` (asked for but not started: see `reason`), or
    /// `daemon not running`.
    pub state: String,
    pub reason: Option<String>,
    /// The TCP port its HTTPS server listens on (53317 unless configured).
    pub port: Option<u16>,
    /// Its certificate's fingerprint, as LocalSend devices show it.
    pub fingerprint: Option<String>,
    /// LocalSend devices heard on the network now.
    pub nearby: u32,
    /// A PIN is asked of senders.
    pub pin: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ts_rs::TS)]
pub struct KdeDoctorDto {
    /// Asked for by the configuration.
    pub enabled: bool,
    /// `running`, `off` (disabled), `failed` (asked for but not started: see `reason`), or
    /// `daemon not running`.
    pub state: String,
    pub reason: Option<String>,
    /// The TCP port it listens on (1716-1764).
    pub port: Option<u16>,
    /// KDE Connect devices heard on the network, and connected now.
    pub nearby: u32,
    pub connected: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct MdnsDoctorDto {
    pub enabled: bool,
    /// `running`, `off` (disabled), `failed` or `daemon not running`.
    pub state: String,
    pub error: Option<String>,
    /// The announced instance, e.g. `ABC…._ferry._udp.local.`.
    pub service: Option<String>,
    pub interfaces: Vec<InterfaceDto>,
    /// Devices seen on the network.
    pub nearby: Vec<NearbyDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct InterfaceDto {
    pub name: String,
    pub addresses: Vec<String>,
    /// Our record went out on this interface (announcements + answers), when known.
    pub sent: Option<u64>,
    /// Other Ferry devices answered on this interface, when known.
    pub answered: Option<bool>,
    pub peers: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct NearbyDto {
    pub id: String,
    pub name: String,
    pub addresses: Vec<String>,
    pub interfaces: Vec<String>,
    pub paired: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct InotifyDto {
    /// `fs.inotify.max_user_watches`.
    pub max_user_watches: Option<u64>,
    /// Watches this user's processes hold now.
    pub watches_in_use: Option<u64>,
    /// Directories in the configured shares (one watch each).
    pub watches_needed: u64,
    /// Close to or over the limit.
    pub near_limit: bool,
    /// The exact command to raise the limit, when it is needed.
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct SendDto {
    /// Id, unique id prefix or name of a paired device.
    pub device: String,
    /// Absolute paths of files and folders (folders are sent with everything in them).
    pub paths: Vec<String>,
    /// The PIN a LocalSend device asks for (ignored for other devices).
    #[serde(default)]
    pub pin: Option<String>,
}

/// One one-shot send, outgoing or incoming.
#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct TransferDto {
    /// 32 hex digits.
    pub id: String,
    /// The other device, and its name.
    pub device: String,
    pub device_name: String,
    /// `out` (this device sends) or `in`.
    pub direction: String,
    pub files: u64,
    /// Top-level names (the files and folders given to `ferry send`).
    pub names: Vec<String>,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// `queued`, `offered`, `active`, `done`, `rejected` or `failed`.
    pub state: String,
    /// Why it was rejected or failed.
    pub message: Option<String>,
    /// Bytes per second over the last few seconds (0 when not moving).
    pub rate: f64,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
    /// Content bytes that crossed the network for this transfer since the node started.
    pub wire_bytes: u64,
    /// Receiver: bytes already present and verified when the transfer last resumed.
    pub resumed_bytes: u64,
    /// Receiver: where the items landed in the inbox.
    pub placed: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct AutoAcceptDto {
    pub device: String,
    pub name: String,
    pub auto_accept: bool,
}

/// The result of every node operation that a client can see.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl From<ferry_store::StoreError> for ApiError {
    fn from(e: ferry_store::StoreError) -> Self {
        ApiError::internal(format!("store: {e}"))
    }
}
