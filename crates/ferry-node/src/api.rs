//! The control API's data: what the CLI (and later the desktop app) sends and receives.
//! Field names are stable: scripts read them with `--json`.

use serde::{Deserialize, Serialize};

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
    pub id: u64,
    pub share: String,
    pub path: String,
    pub archived_at_ms: i64,
    pub size: u64,
    pub hash: String,
    pub modified_by: String,
    pub replaced_by: String,
    pub reason: String,
    /// Absolute path of the archived copy.
    pub file: String,
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
