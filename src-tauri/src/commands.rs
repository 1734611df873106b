//! The UI's commands, in the window process. Each is a line that calls one route of the
//! node's control API (the tray process hosts the node; remote.rs) or one plugin call for what
//! only the shell can do (folder picker, file manager, autostart); errors cross as the node's
//! `{code, message}`.

use ferry_node::api::*;
use ferry_node::settings::{FirstRunDto, SettingsDto, SettingsUpdateDto};
use ferry_node::{AutoAcceptArg, Empty, IdArg, MuteArg, NameArg, RecentDto};
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, State};
use tauri_plugin_autostart::ManagerExt;
use tauri_plugin_dialog::DialogExt;
use tauri_plugin_opener::OpenerExt;

use crate::prefs::{self, Prefs};
use crate::remote::Remote;
use crate::window::Navigation;

type R<T> = Result<T, ApiError>;

fn shell_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e)
}

#[tauri::command]
pub async fn status(node: State<'_, Remote>) -> R<StatusDto> {
    node.get("/v1/status").await
}

#[tauri::command]
pub async fn devices(node: State<'_, Remote>) -> R<Vec<DeviceDto>> {
    node.get("/v1/devices").await
}

#[tauri::command]
pub async fn pending(node: State<'_, Remote>) -> R<Vec<PendingDto>> {
    node.get("/v1/pending").await
}

#[tauri::command]
pub async fn pair(node: State<'_, Remote>, address: String) -> R<PairTicketDto> {
    node.post("/v1/pair", &PairRequestDto { address }).await
}

#[tauri::command]
pub async fn pair_wait(node: State<'_, Remote>, ticket: u64) -> R<PairOutcomeDto> {
    node.get(&format!("/v1/pair/{ticket}")).await
}

#[tauri::command]
pub async fn accept(node: State<'_, Remote>, id: u64, path: Option<String>) -> R<()> {
    node.post::<_, Empty>("/v1/accept", &AcceptDto { id, path }).await.map(|_| ())
}

#[tauri::command]
pub async fn reject(node: State<'_, Remote>, id: u64) -> R<()> {
    node.post::<_, Empty>("/v1/reject", &IdArg { id }).await.map(|_| ())
}

#[tauri::command]
pub async fn shares(node: State<'_, Remote>) -> R<Vec<ShareDto>> {
    node.get("/v1/shares").await
}

#[tauri::command]
pub async fn share_add(node: State<'_, Remote>, req: ShareAddDto) -> R<ShareDto> {
    node.post("/v1/shares/add", &req).await
}

#[tauri::command]
pub async fn share_invite(node: State<'_, Remote>, share: String, device: String) -> R<ShareDto> {
    node.post("/v1/shares/invite", &InviteDto { share, device }).await
}

#[tauri::command]
pub async fn share_remove(node: State<'_, Remote>, share: String) -> R<ShareDto> {
    node.post("/v1/shares/remove", &NameArg { name: share }).await
}

/// Clears a share's "needs attention" note (a refused mass delete) once the user has seen it.
#[tauri::command]
pub async fn share_ack(node: State<'_, Remote>, share: String) -> R<ShareSettingsDto> {
    node.post("/v1/shares/ack", &NameArg { name: share }).await
}

#[tauri::command]
pub async fn versions(node: State<'_, Remote>, path: String) -> R<Vec<VersionDto>> {
    node.post("/v1/versions", &VersionsQuery { path }).await
}

#[tauri::command]
pub async fn restore(node: State<'_, Remote>, req: RestoreDto) -> R<RestoredDto> {
    node.post("/v1/restore", &req).await
}

/// Plans (`dry_run`) or applies a rewind of a share or a folder in it.
#[tauri::command]
pub async fn rewind(node: State<'_, Remote>, req: RewindReqDto) -> R<RewindDto> {
    node.post("/v1/rewind", &req).await
}

#[tauri::command]
pub async fn conflicts(node: State<'_, Remote>, share: Option<String>) -> R<Vec<ConflictDto>> {
    node.post("/v1/conflicts", &ConflictsQuery { share }).await
}

#[tauri::command]
pub async fn resolve(node: State<'_, Remote>, path: String, keep: String) -> R<ResolvedDto> {
    node.post("/v1/resolve", &ResolveDto { path, keep }).await
}

#[tauri::command]
pub async fn send(node: State<'_, Remote>, device: String, paths: Vec<String>) -> R<TransferDto> {
    node.post("/v1/send", &SendDto { pin: None, device, paths }).await
}

#[tauri::command]
pub async fn transfers(node: State<'_, Remote>) -> R<Vec<TransferDto>> {
    node.get("/v1/transfers").await
}

#[tauri::command]
pub async fn device_mute(node: State<'_, Remote>, device: String, muted: bool) -> R<DeviceMuteDto> {
    node.post("/v1/devices/mute", &MuteArg { name: device, muted }).await
}

#[tauri::command]
pub async fn device_auto_accept(node: State<'_, Remote>, device: String, on: bool) -> R<AutoAcceptDto> {
    node.post("/v1/devices/auto-accept", &AutoAcceptArg { name: device, on }).await
}

/// A LocalSend device stays in the list while away when it is a favorite.
#[tauri::command]
pub async fn device_favorite(node: State<'_, Remote>, device: String, on: bool) -> R<DeviceDto> {
    node.post("/v1/devices/favorite", &AutoAcceptArg { name: device, on }).await
}

#[tauri::command]
pub async fn device_add_address(node: State<'_, Remote>, device: String, address: String) -> R<DeviceDto> {
    node.post("/v1/devices/add-address", &AddAddressDto { device, address }).await
}

#[tauri::command]
pub async fn device_remove(node: State<'_, Remote>, device: String) -> R<DeviceDto> {
    node.post("/v1/devices/remove", &NameArg { name: device }).await
}

#[tauri::command]
pub async fn ping(node: State<'_, Remote>, device: String) -> R<PingDto> {
    node.post("/v1/ping", &NameArg { name: device }).await
}

#[tauri::command]
pub async fn notes(node: State<'_, Remote>, device: Option<String>) -> R<Vec<NoteDto>> {
    node.post("/v1/notes", &NotesQuery { device }).await
}

#[tauri::command]
pub async fn note_send(node: State<'_, Remote>, device: String, text: String) -> R<NoteDto> {
    node.post("/v1/notes/send", &NoteSendDto { pin: None, device, text }).await
}

#[tauri::command]
pub async fn note_read(node: State<'_, Remote>, id: String) -> R<NoteDto> {
    node.post("/v1/notes/read", &NoteReadDto { id }).await
}

/// Pauses or resumes syncing; answers the state asked for.
#[tauri::command]
pub async fn set_paused(node: State<'_, Remote>, paused: bool) -> R<bool> {
    let path = if paused { "/v1/pause" } else { "/v1/resume" };
    node.post::<_, Empty>(path, &Empty {}).await.map(|_| paused)
}

#[tauri::command]
pub async fn settings(node: State<'_, Remote>) -> R<SettingsDto> {
    node.get("/v1/settings").await
}

/// Settings shows whether KDE Connect runs now and, if not, why (`kdeconnect.reason`).
#[tauri::command]
pub async fn doctor(node: State<'_, Remote>) -> R<DoctorDto> {
    node.get("/v1/doctor").await
}

#[tauri::command]
pub async fn save_settings(node: State<'_, Remote>, req: SettingsUpdateDto) -> R<SettingsDto> {
    node.post("/v1/settings", &req).await
}

#[tauri::command]
pub async fn first_run(node: State<'_, Remote>, req: FirstRunDto) -> R<ShareDto> {
    node.post("/v1/first-run", &req).await
}

/// Where new folders go by default: `~/Ferry` (and `~/Ferry <label>` for accepted shares).
#[tauri::command]
pub fn default_folder() -> R<String> {
    prefs::default_folder().map(|p| p.display().to_string()).ok_or_else(|| shell_err("no home directory"))
}

/// The native folder picker; `None` when the user cancels.
#[tauri::command]
pub async fn pick_folder(app: AppHandle) -> R<Option<String>> {
    let picked = app.dialog().file().set_title("Choose a folder").blocking_pick_folder();
    Ok(picked.and_then(|p| p.into_path().ok()).map(|p| p.display().to_string()))
}

/// The native file picker (several files); `None` when the user cancels.
#[tauri::command]
pub async fn pick_files(app: AppHandle) -> R<Option<Vec<String>>> {
    let picked = app.dialog().file().set_title("Choose files to send").blocking_pick_files();
    Ok(picked.map(|ps| ps.into_iter().filter_map(|p| p.into_path().ok()).map(|p| p.display().to_string()).collect()))
}

/// Opens a folder in the file manager.
#[tauri::command]
pub fn open_path(app: AppHandle, path: String) -> R<()> {
    app.opener().open_path(path, None::<&str>).map_err(shell_err)
}

/// Shows a file in the file manager, selected, without opening it (received files and archived
/// versions came from other devices: opening them is the user's choice there).
#[tauri::command]
pub fn reveal_path(app: AppHandle, path: String) -> R<()> {
    app.opener().reveal_item_in_dir(path).map_err(shell_err)
}

/// The shell's own preferences: start at login (autostart plugin) and start hidden.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppPrefsDto {
    pub start_at_login: bool,
    pub start_hidden: bool,
}

#[tauri::command]
pub fn app_prefs(app: AppHandle, node: State<'_, Remote>) -> R<AppPrefsDto> {
    let p = prefs::load(node.home());
    Ok(AppPrefsDto { start_at_login: app.autolaunch().is_enabled().unwrap_or(false), start_hidden: p.start_hidden })
}

#[tauri::command]
pub fn save_app_prefs(app: AppHandle, node: State<'_, Remote>, req: AppPrefsDto) -> R<AppPrefsDto> {
    let auto = app.autolaunch();
    let set = if req.start_at_login { auto.enable() } else { auto.disable() };
    set.map_err(shell_err)?;
    prefs::save(node.home(), &Prefs { start_hidden: req.start_hidden }).map_err(shell_err)?;
    app_prefs(app, node)
}

/// The events the node kept, for a new window's Activity feed (the page is new each time the
/// window opens: what happened while it was closed shows too).
#[tauri::command]
pub async fn recent_events(node: State<'_, Remote>) -> R<RecentDto> {
    node.get("/v1/events/recent").await
}

/// The view the tray asked for (`{view, device}`), once: a new window asks when it starts, a
/// live one when told by `ferry-navigate`.
#[tauri::command]
pub fn take_navigation(nav: State<'_, Navigation>) -> Option<serde_json::Value> {
    nav.take()
}
