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
reused_bytes: number, 
/**
 * Bytes of this share's content this device served to other devices since the node
 * started (from its files, or from downloads still in progress).
 */
served_bytes: number, 
/**
 * Chunks of this share's files that connected devices said they hold while still
 * downloading them (they can serve them to this device already).
 */
peer_chunks: number, 
/**
 * `keep-both`, `newest-wins` or `this-device-wins`.
 */
conflict_policy: string, 
/**
 * `staggered:DAYS:MAXBYTES`, `trash-can:DAYS` or `off`.
 */
retention: string, 
/**
 * Changes made here that a receive-only share does not send (`ferry share revert` drops them).
 */
local_changes: number, 
/**
 * Why the share needs the user (a refused or held mass delete), if it does.
 */
attention: string | null, 
/**
 * What syncing did: the last session and everything since the node started.
 */
summary: SummaryDto, 
/**
 * Items that cannot be synced, with why (names not UTF-8 or too long, special files,
 * files Ferry may not read, peers' changes this device could not apply), in path order;
 * at most 100 per side (scan, pull). While there are any, `in_sync` is false.
 */
failed_items: Array<FailedItemDto>, 
/**
 * Items that cannot be synced beyond those listed (counted, not listed).
 */
failed_more: number, };

export type FailedItemDto = { 
/**
 * Share-relative; a name that is not UTF-8 is shown with U+FFFD for the bytes it cannot
 * show.
 */
path: string, 
/**
 * Why, for a person to read.
 */
reason: string, };

export type DeviceDto = { id: string, name: string, owner: string, paired: boolean, connected: boolean, addresses: Array<string>, last_seen_ms: number | null, rtt_ms: number | null, 
/**
 * UDP bytes sent to / received from this device on the current connection.
 */
bytes_sent: number | null, bytes_received: number | null, 
/**
 * Seen on the local network (mDNS) right now.
 */
nearby: boolean, 
/**
 * Where mDNS says it is (address hints; trust still comes from its TLS identity).
 */
nearby_addresses: Array<string>, 
/**
 * Its notes are refused (`ferry device mute`).
 */
muted: boolean, 
/**
 * Files it sends are accepted without a prompt (`ferry device auto-accept`).
 */
auto_accept: boolean, 
/**
 * This device removed it (`ferry devices remove`): not paired, its connections refused
 * until this device pairs with it again.
 */
removed: boolean, 
/**
 * It removed this device, under this name: no longer dialed or synced with.
 */
removed_by: string | null, 
/**
 * `ferry` (a Ferry device: shares, notes, sends), `kdeconnect` (a KDE Connect device,
 * such as a phone: notes and sends only, never a share) or `localsend` (a LocalSend device:
 * notes and sends only, no pairing).
 */
kind: string, 
/**
 * What the device says it is: `phone`, `tablet`, `desktop`, `laptop` or `tv` (KDE Connect
 * devices), `mobile`, `desktop`, `web`, `headless` or `server` (LocalSend devices); Ferry
 * devices do not say.
 */
device_type: string | null, 
/**
 * Something the user should know about this device now, e.g. that it came back with
 * another certificate and was refused.
 */
warning: string | null, 
/**
 * LocalSend devices: the model they announce (`Pixel 8`, `iPhone`, `Linux`).
 */
model: string | null, 
/**
 * LocalSend devices: the SHA-256 of their certificate (upper-case hex), what identifies
 * them (they have no pairing).
 */
fingerprint: string | null, 
/**
 * LocalSend devices: kept in the list while away (`ferry devices favorite`).
 */
favorite: boolean, };

export type PendingDto = { id: number, 
/**
 * `pair` or `share`.
 */
kind: string, device: string, device_name: string, owner: string, 
/**
 * The pairing code (pair prompts only).
 */
code: string | null, share_id: string | null, share_label: string | null, created_ms: number, 
/**
 * Send offers: the transfer id, how many files and bytes, and the top-level names.
 */
transfer: string | null, files: number | null, bytes: number | null, names: Array<string>, 
/**
 * Mass-delete prompts (`kind` = `mass-delete`): deletions held, of how many files (in
 * `files`).
 */
deletes: number | null, 
/**
 * The device's kind (`ferry`, `kdeconnect`, `localsend`), and for a LocalSend device its
 * certificate fingerprint: what tells it from another device of the same name.
 */
device_kind: string, fingerprint: string | null, };

export type ShareDto = { id: string, label: string, path: string, mode: string, devices: Array<string>, paused: boolean, };

export type VersionDto = { 
/**
 * The archive time in nanoseconds: beyond the integers a JavaScript number holds exactly
 * (2^53), so JavaScript clients use `id_text`.
 */
id: number, 
/**
 * `id` as decimal text (what the desktop UI reads and sends back to restore).
 */
id_text: string, share: string, path: string, archived_at_ms: number, size: number, hash: string, modified_by: string, replaced_by: string, reason: string, 
/**
 * Absolute path of the archived copy; empty when this device has none (`kept_here`).
 */
file: string, 
/**
 * Whether this device holds a copy. A version it does not hold (the file was rewritten in
 * place) is fetched from a device of the share that archived it when it is restored.
 */
kept_here: boolean, };

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

export type NoteSendDto = { device: string, text: string, 
/**
 * The PIN a LocalSend device asks for (ignored for other devices).
 */
pin: string | null, };

export type DeviceMuteDto = { device: string, name: string, muted: boolean, };

export type AddAddressDto = { device: string, 
/**
 * `HOST:PORT`.
 */
address: string, };

export type DoctorDto = { daemon_running: boolean, control_socket: string, 
/**
 * `answering`, `missing`, or `stale` (a socket file nobody answers on).
 */
control_socket_state: string, device_id: string | null, name: string | null, 
/**
 * The configured (daemon not running) or bound (running) QUIC address.
 */
listen: string, mdns: MdnsDoctorDto, 
/**
 * KDE Connect (phones): running, off, or not started and why.
 */
kdeconnect: KdeDoctorDto, 
/**
 * LocalSend: running, off, or not started and why.
 */
localsend: LsDoctorDto, inotify: InotifyDto, 
/**
 * One line per thing that needs attention, with what to do.
 */
problems: Array<string>, };

export type MdnsDoctorDto = { enabled: boolean, 
/**
 * `running`, `off` (disabled), `failed` or `daemon not running`.
 */
state: string, error: string | null, 
/**
 * The announced instance, e.g. `ABC…._ferry._udp.local.`.
 */
service: string | null, interfaces: Array<InterfaceDto>, 
/**
 * Devices seen on the network.
 */
nearby: Array<NearbyDto>, };

export type KdeDoctorDto = { 
/**
 * Asked for by the configuration.
 */
enabled: boolean, 
/**
 * `running`, `off` (disabled), `failed` (asked for but not started: see `reason`), or
 * `daemon not running`.
 */
state: string, reason: string | null, 
/**
 * The TCP port it listens on (1716-1764).
 */
port: number | null, 
/**
 * KDE Connect devices heard on the network, and connected now.
 */
nearby: number, connected: number, };

export type LsDoctorDto = { 
/**
 * Asked for by the configuration.
 */
enabled: boolean, 
/**
 * `running`, `off` (disabled), `failed` (asked for but not started: see `reason`), or
 * `daemon not running`.
 */
state: string, reason: string | null, 
/**
 * The TCP port its HTTPS server listens on (53317 unless configured).
 */
port: number | null, 
/**
 * Its certificate's fingerprint, as LocalSend devices show it.
 */
fingerprint: string | null, 
/**
 * LocalSend devices heard on the network now.
 */
nearby: number, 
/**
 * A PIN is asked of senders.
 */
pin: boolean, };

export type InterfaceDto = { name: string, addresses: Array<string>, 
/**
 * Our record went out on this interface (announcements + answers), when known.
 */
sent: number | null, 
/**
 * Other Ferry devices answered on this interface, when known.
 */
answered: boolean | null, peers: Array<string>, };

export type NearbyDto = { id: string, name: string, addresses: Array<string>, interfaces: Array<string>, paired: boolean, };

export type InotifyDto = { 
/**
 * `fs.inotify.max_user_watches`.
 */
max_user_watches: number | null, 
/**
 * Watches this user's processes hold now.
 */
watches_in_use: number | null, 
/**
 * Directories in the configured shares (one watch each).
 */
watches_needed: number, 
/**
 * Close to or over the limit.
 */
near_limit: boolean, 
/**
 * The exact command to raise the limit, when it is needed.
 */
fix: string | null, };

export type SendDto = { 
/**
 * Id, unique id prefix or name of a paired device.
 */
device: string, 
/**
 * Absolute paths of files and folders (folders are sent with everything in them).
 */
paths: Array<string>, 
/**
 * The PIN a LocalSend device asks for (ignored for other devices).
 */
pin: string | null, };

export type TransferDto = { 
/**
 * 32 hex digits.
 */
id: string, 
/**
 * The other device, and its name.
 */
device: string, device_name: string, 
/**
 * `out` (this device sends) or `in`.
 */
direction: string, files: number, 
/**
 * Top-level names (the files and folders given to `ferry send`).
 */
names: Array<string>, bytes_done: number, bytes_total: number, 
/**
 * `queued`, `offered`, `active`, `done`, `rejected` or `failed`.
 */
state: string, 
/**
 * Why it was rejected or failed.
 */
message: string | null, 
/**
 * Bytes per second over the last few seconds (0 when not moving).
 */
rate: number, created_ms: number, finished_ms: number | null, 
/**
 * Content bytes that crossed the network for this transfer since the node started.
 */
wire_bytes: number, 
/**
 * Receiver: bytes already present and verified when the transfer last resumed.
 */
resumed_bytes: number, 
/**
 * Receiver: where the items landed in the inbox.
 */
placed: Array<string>, };

export type AutoAcceptDto = { device: string, name: string, auto_accept: boolean, };

export type SummaryCountsDto = { local_adds: number, local_changes: number, local_deletes: number, remote_adds: number, remote_changes: number, remote_deletes: number, errors: number, conflicts: number, };

export type SummaryDto = { last_session: SummaryCountsDto | null, last_session_started_ms: number | null, last_session_ended_ms: number | null, since_start: SummaryCountsDto, };

export type RestoreDto = { 
/**
 * A file inside a share (absolute), live or deleted.
 */
path: string, 
/**
 * A version id from `ferry versions`: a number, or its decimal text (`id_text`, for
 * clients whose numbers cannot hold it exactly).
 */
version: number | string | null, 
/**
 * RFC 3339, or an age like `10m`, `2h`, `3d`.
 */
at: string | null, };

export type RestoredDto = { share: string, path: string, 
/**
 * The version whose content is back.
 */
version: number, 
/**
 * Where the content it replaced was archived (none if the file did not exist).
 */
current_archived_as: string | null, };

export type RewindReqDto = { 
/**
 * `SHARE`, `SHARE/SUBDIR` or an absolute folder inside a share.
 */
target: string, 
/**
 * RFC 3339, or an age like `10m`, `2h`, `3d`.
 */
to: string, dry_run: boolean, };

export type RewindStepDto = { 
/**
 * `restore` (changed since), `undelete` (deleted since), `remove` (created since: moved
 * to the history) or `keep` (its content then cannot be produced: left as it is, see
 * `note`).
 */
action: string, path: string, version: number | null, 
/**
 * The device the old content comes from, when this device has no copy of it.
 */
from: string | null, 
/**
 * Why a `keep` step is left as it is.
 */
note: string | null, };

export type RewindDto = { share: string, to_ms: number, dry_run: boolean, steps: Array<RewindStepDto>, 
/**
 * Steps that failed (path: reason); the others were done.
 */
errors: Array<string>, };

export type PruneDto = { share: string, removed: number, freed_bytes: number, };

export type ModeActionDto = { share: string, mode: string, 
/**
 * Paths republished (override) or reset (revert).
 */
changed: number, };

export type ConflictDto = { share: string, share_label: string, 
/**
 * The conflicted file.
 */
path: string, 
/**
 * The conflict copy (the losing content), relative to the share.
 */
copy: string, 
/**
 * Device that wrote the copy's content (full id when known, else the short id) and its name.
 */
copy_device: string, copy_device_name: string, copy_time_ms: number, copy_size: number, 
/**
 * Device that wrote the current content of `path` (none if it is gone).
 */
current_device: string | null, current_device_name: string | null, current_time_ms: number | null, current_size: number | null, };

export type ConflictsQuery = { share: string | null, };

export type ResolveDto = { 
/**
 * The conflicted file or one of its copies (absolute).
 */
path: string, 
/**
 * `local`, `remote`, `both`, or a copy's name or path.
 */
keep: string, };

export type ResolvedDto = { share: string, path: string, 
/**
 * `both`, the file itself, or the copy whose content now has its name.
 */
kept: string, 
/**
 * Losing contents archived as versions of `path`.
 */
archived: number, 
/**
 * Keep both: the copies' new names.
 */
renamed: Array<string>, };

export type SharePolicyDto = { share: string, conflict_policy: string | null, retention: string | null, mass_delete_percent: number | null, };

export type ShareSettingsDto = { share: string, label: string, conflict_policy: string, retention: string, mass_delete_percent: number, attention: string | null, };

export type RescanDto = { 
/**
 * Only this share (default: all).
 */
share: string | null, 
/**
 * Re-hash every file instead of trusting size, mtime and inode.
 */
full: boolean, };

export type SettingsDto = { name: string, owner: string, 
/**
 * The configured listen address (IP:PORT) and the one bound now (they differ for port 0).
 */
listen: string, listening_on: string, 
/**
 * False until name and owner were saved once (first run).
 */
configured: boolean, config_file: string, 
/**
 * mDNS discovery as saved (used from the next start) and as running now (an environment
 * override such as `FERRY_MDNS=0` wins over the file).
 */
mdns: boolean, mdns_now: boolean, 
/**
 * KDE Connect (phones) as saved (next start) and as running now.
 */
kdeconnect: boolean, kdeconnect_now: boolean, 
/**
 * LocalSend as saved (next start) and as running now, and whether a PIN is asked of
 * LocalSend senders (saved).
 */
localsend: boolean, localsend_now: boolean, localsend_pin: boolean, 
/**
 * Where received files land, as saved (absolute path) and as used now.
 */
inbox: string, inbox_now: string, };

export type SettingsUpdateDto = { name: string, owner: string, 
/**
 * IP:PORT; `None` keeps the current one.
 */
listen: string | null, 
/**
 * mDNS discovery on or off (next start); `None` keeps it.
 */
mdns: boolean | null, 
/**
 * KDE Connect on or off (next start); `None` keeps it.
 */
kdeconnect: boolean | null, 
/**
 * LocalSend on or off (next start); `None` keeps it.
 */
localsend: boolean | null, 
/**
 * The PIN LocalSend senders must give (next start): `Some("")` removes it; `None` keeps it.
 */
localsend_pin: string | null, 
/**
 * The inbox for received files, an absolute path (next start); `None` keeps it.
 */
inbox: string | null, };

export type FirstRunDto = { name: string, owner: string, 
/**
 * The default shared folder, created if missing and shared unless a share already uses it.
 */
folder: string, };

export type Event = { "type": "device_connected", device: string, name: string, address: string, } | { "type": "device_disconnected", device: string, name: string, reason: string, } | { "type": "prompt_added", id: number, kind: string, device: string, device_name: string, code: string | null, label: string | null, } | { "type": "prompt_resolved", id: number, accepted: boolean, } | { "type": "paired", device: string, name: string, } | { "type": "device_refused", device: string, name: string, reason: string, } | { "type": "device_removed", device: string, name: string, by: string | null, } | { "type": "scan_finished", share: string, changes: number, seen: number, hashed_bytes: number, millis: number, } | { "type": "index_sent", share: string, device: string, records: number, } | { "type": "index_received", share: string, device: string, records: number, } | { "type": "transfer_progress", share: string, path: string, done: number, total: number, bytes_per_sec: number, } | { "type": "applied", share: string, path: string, action: string, from: string, } | { "type": "conflict", share: string, path: string, copy: string, winner: string, } | { "type": "in_sync", share: string, } | { "type": "failed_items", share: string, label: string, count: number, new: Array<FailedItemDto>, } | { "type": "error", share: string | null, device: string | null, message: string, } | { "type": "note_received", id: string, from: string, from_name: string, text: string, } | { "type": "note_state", id: string, state: string, } | { "type": "lagged", missed: number, } | { "type": "send_offered", id: string, device: string, device_name: string, direction: string, files: number, bytes: number, names: Array<string>, } | { "type": "send_state", id: string, device: string, direction: string, state: string, message: string | null, } | { "type": "send_progress", id: string, device: string, direction: string, done: number, total: number, bytes_per_sec: number, } | { "type": "sync_summary", share: string, label: string, started_ms: number, ended_ms: number, counts: SummaryCountsDto, } | { "type": "sync_paused", paused: boolean, };
