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
    pub inotify: InotifyDto,
    /// One line per thing that needs attention, with what to do.
    pub problems: Vec<String>,
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

/// Counts of one sync session (or of all sessions since start).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq, ts_rs::TS)]
pub struct SummaryCountsDto {
    pub local_adds: u64,
    pub local_changes: u64,
    pub local_deletes: u64,
    pub remote_adds: u64,
    pub remote_changes: u64,
    pub remote_deletes: u64,
    pub errors: u64,
    pub conflicts: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, ts_rs::TS)]
pub struct SummaryDto {
    pub last_session: Option<SummaryCountsDto>,
    pub last_session_started_ms: Option<i64>,
    pub last_session_ended_ms: Option<i64>,
    pub since_start: SummaryCountsDto,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct RestoreDto {
    /// A file inside a share (absolute), live or deleted.
    pub path: String,
    /// A version id from `ferry versions`: a number, or its decimal text (`id_text`, for
    /// clients whose numbers cannot hold it exactly).
    #[serde(default, deserialize_with = "number_or_text")]
    #[ts(type = "number | string | null")]
    pub version: Option<u64>,
    /// RFC 3339, or an age like `10m`, `2h`, `3d`.
    pub at: Option<String>,
}

/// An optional u64 given as a JSON number or as decimal text.
fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u64),
        Text(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(None),
        Some(N::Num(n)) => Ok(Some(n)),
        Some(N::Text(t)) => t
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("version {t:?} is not a version id"))),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct RestoredDto {
    pub share: String,
    pub path: String,
    /// The version whose content is back.
    pub version: u64,
    /// Where the content it replaced was archived (none if the file did not exist).
    pub current_archived_as: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct RewindReqDto {
    /// `SHARE`, `SHARE/SUBDIR` or an absolute folder inside a share.
    pub target: String,
    /// RFC 3339, or an age like `10m`, `2h`, `3d`.
    pub to: String,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct RewindStepDto {
    /// `restore` (changed since), `undelete` (deleted since) or `remove` (created since: moved
    /// to the history).
    pub action: String,
    pub path: String,
    pub version: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct RewindDto {
    pub share: String,
    pub to_ms: i64,
    pub dry_run: bool,
    pub steps: Vec<RewindStepDto>,
    /// Steps that failed (path: reason); the others were done.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct PruneDto {
    pub share: String,
    pub removed: u64,
    pub freed_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct ModeActionDto {
    pub share: String,
    pub mode: String,
    /// Paths republished (override) or reset (revert).
    pub changed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct ConflictDto {
    pub share: String,
    pub share_label: String,
    /// The conflicted file.
    pub path: String,
    /// The conflict copy (the losing content), relative to the share.
    pub copy: String,
    /// Device that wrote the copy's content (full id when known, else the short id) and its name.
    pub copy_device: String,
    pub copy_device_name: String,
    pub copy_time_ms: i64,
    pub copy_size: u64,
    /// Device that wrote the current content of `path` (none if it is gone).
    pub current_device: Option<String>,
    pub current_device_name: Option<String>,
    pub current_time_ms: Option<i64>,
    pub current_size: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, ts_rs::TS)]
pub struct ConflictsQuery {
    pub share: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct ResolveDto {
    /// The conflicted file or one of its copies (absolute).
    pub path: String,
    /// `local`, `remote`, `both`, or a copy's name or path.
    pub keep: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct ResolvedDto {
    pub share: String,
    pub path: String,
    /// `both`, the file itself, or the copy whose content now has its name.
    pub kept: String,
    /// Losing contents archived as versions of `path`.
    pub archived: u64,
    /// Keep both: the copies' new names.
    pub renamed: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, ts_rs::TS)]
pub struct SharePolicyDto {
    pub share: String,
    pub conflict_policy: Option<String>,
    pub retention: Option<String>,
    pub mass_delete_percent: Option<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct ShareSettingsDto {
    pub share: String,
    pub label: String,
    pub conflict_policy: String,
    pub retention: String,
    pub mass_delete_percent: u8,
    pub attention: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, ts_rs::TS)]
pub struct RescanDto {
    /// Only this share (default: all).
    #[serde(default)]
    pub share: Option<String>,
    /// Re-hash every file instead of trusting size, mtime and inode.
    #[serde(default)]
    pub full: bool,
}

/// Checks share policy arguments before anything is created (the node checks them again).
pub fn check_share_policy(
    conflict_policy: Option<&str>,
    retention: Option<&str>,
    mass_delete_percent: Option<u8>,
) -> Result<(), ApiError> {
    if let Some(p) = conflict_policy {
        p.parse::<ferry_proto::ConflictPolicy>().map_err(ApiError::bad)?;
    }
    if let Some(r) = retention {
        ferry_proto::Retention::parse(r).map_err(ApiError::bad)?;
    }
    if mass_delete_percent.is_some_and(|p| !(1..=100).contains(&p)) {
        return Err(ApiError::bad("the mass-delete threshold is a percent, 1 to 100"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_takes_the_version_as_number_or_text() {
        let big = 1_795_465_472_354_762_123u64;
        let r: RestoreDto = serde_json::from_str(&format!(r#"{{"path":"/a","version":{big},"at":null}}"#)).unwrap();
        assert_eq!(r.version, Some(big));
        let r: RestoreDto = serde_json::from_str(&format!(r#"{{"path":"/a","version":"{big}","at":null}}"#)).unwrap();
        assert_eq!(r.version, Some(big), "text keeps every digit");
        let r: RestoreDto = serde_json::from_str(r#"{"path":"/a","at":"10m"}"#).unwrap();
        assert_eq!(r.version, None);
        let r: RestoreDto = serde_json::from_str(r#"{"path":"/a","version":null,"at":null}"#).unwrap();
        assert_eq!(r.version, None);
        let e = serde_json::from_str::<RestoreDto>(r#"{"path":"/a","version":"12x","at":null}"#).unwrap_err();
        assert!(e.to_string().contains("not a version id"), "{e}");
    }
}

/// The result of every node operation that a client can see.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl From<ferry_store::StoreError> for ApiError {
    fn from(e: ferry_store::StoreError) -> Self {
        ApiError::internal(format!("store: {e}"))
    }
}
