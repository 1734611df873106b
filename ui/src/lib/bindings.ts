// Generated from the Rust DTOs in crates/ferry-node (src/bindings.rs). Do not edit:
// FERRY_UPDATE_BINDINGS=1 cargo test -p ferry-node bindings

export type ApiError = { code: ErrorCode, message: string, };

export type ErrorCode = "bad_request" | "not_found" | "ambiguous" | "conflict" | "unreachable" | "rejected" | "timeout" | "internal";

export type IdDto = { device_id: string, name: string, owner: string, };

export type StatusDto = { device_id: string, name: string, owner: string, listen: string, home: string, connected: number, shares: Array<ShareStatusDto>, 
/**
 * True while syncing is paused for the whole node (`ferry pause`, the tray).
 */
paused: boolean, };

export type ShareStatusDto = { id: string, label: string, path: string, mode: string, 
/**
 * `idle`, `scanning`, `syncing`, `paused` or `error`.
 */
state: string, 
/**
 * True only when every connected member has everything and this device needs nothing.
 */
in_sync: boolean, files: number, bytes: number, 
/**
 * Paths this device still has to fetch or apply.
 */
need: number, last_error: string | null, 
/**
 * Bytes fetched from peers since the node started (what crossed the network for content).
 */
fetched_bytes: number, 
/**
 * Bytes copied from content already on this device (renames, moved or repeated data).
 */
reused_bytes: number, };

export type DeviceDto = { id: string, name: string, owner: string, paired: boolean, connected: boolean, addresses: Array<string>, last_seen_ms: number | null, rtt_ms: number | null, 
/**
 * UDP bytes sent to / received from this device on the current connection.
 */
bytes_sent: number | null, bytes_received: number | null, };

export type PendingDto = { id: number, 
/**
 * `pair` or `share`.
 */
kind: string, device: string, device_name: string, owner: string, 
/**
 * The pairing code (pair prompts only).
 */
code: string | null, share_id: string | null, share_label: string | null, created_ms: number, };

export type ShareDto = { id: string, label: string, path: string, mode: string, devices: Array<string>, paused: boolean, };

export type VersionDto = { id: number, share: string, path: string, archived_at_ms: number, size: number, hash: string, modified_by: string, replaced_by: string, reason: string, 
/**
 * Absolute path of the archived copy.
 */
file: string, };

export type PairTicketDto = { ticket: number, device: string, device_name: string, code: string, };

export type PairOutcomeDto = { 
/**
 * `accepted`, `rejected`, `failed` or `timeout`.
 */
state: string, message: string, };

export type AcceptDto = { id: number, path: string | null, };

export type ShareAddDto = { path: string, label: string | null, mode: string | null, };

export type InviteDto = { share: string, device: string, };

export type PingDto = { device: string, rtt_ms: number, };

export type NoteDto = { 
/**
 * 32 hex digits.
 */
id: string, 
/**
 * Sender's device id.
 */
from: string, 
/**
 * Receiver's device id.
 */
to: string, 
/**
 * The other device of the conversation, and its name.
 */
peer: string, peer_name: string, 
/**
 * True for a note this device sent.
 */
outgoing: boolean, text: string, 
/**
 * Milliseconds since the Unix epoch, on the sender's clock.
 */
sent_at: number, 
/**
 * Sent notes: `queued`, `delivered`, `read` or `refused`; received notes: `unread` or `read`.
 */
state: string, 
/**
 * Why the receiver refused the note (state `refused` only).
 */
refused: string | null, };

export type NoteSendDto = { device: string, text: string, };

export type DeviceMuteDto = { device: string, name: string, muted: boolean, };

export type SettingsDto = { name: string, owner: string, 
/**
 * The configured listen address (IP:PORT) and the one bound now (they differ for port 0).
 */
listen: string, listening_on: string, 
/**
 * False until name and owner were saved once (first run).
 */
configured: boolean, config_file: string, };

export type SettingsUpdateDto = { name: string, owner: string, 
/**
 * IP:PORT; `None` keeps the current one.
 */
listen: string | null, };

export type FirstRunDto = { name: string, owner: string, 
/**
 * The default shared folder, created if missing and shared unless a share already uses it.
 */
folder: string, };

export type Event = { "type": "device_connected", device: string, name: string, address: string, } | { "type": "device_disconnected", device: string, name: string, reason: string, } | { "type": "prompt_added", id: number, kind: string, device: string, device_name: string, code: string | null, label: string | null, } | { "type": "prompt_resolved", id: number, accepted: boolean, } | { "type": "paired", device: string, name: string, } | { "type": "scan_finished", share: string, changes: number, seen: number, hashed_bytes: number, millis: number, } | { "type": "index_sent", share: string, device: string, records: number, } | { "type": "index_received", share: string, device: string, records: number, } | { "type": "transfer_progress", share: string, path: string, done: number, total: number, bytes_per_sec: number, } | { "type": "applied", share: string, path: string, action: string, from: string, } | { "type": "conflict", share: string, path: string, copy: string, winner: string, } | { "type": "in_sync", share: string, } | { "type": "error", share: string | null, device: string | null, message: string, } | { "type": "note_received", id: string, from: string, from_name: string, text: string, } | { "type": "note_state", id: string, state: string, } | { "type": "lagged", missed: number, } | { "type": "sync_paused", paused: boolean, };
