//! The UI's commands. Each is a line or two that calls one node method (or one plugin call
//! for what only the shell can do: folder picker, file manager, autostart); errors cross as
//! the node's `{code, message}`.

use ferry_node::api::*;
use ferry_node::settings::{FirstRunDto, SettingsDto, SettingsUpdateDto};
use ferry_node::{Node, RecentDto};
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, State};
use tauri_plugin_autostart::ManagerExt;
use tauri_plugin_dialog::DialogExt;
use tauri_plugin_opener::OpenerExt;

use crate::prefs::{self, Prefs};
use crate::tray::TrayRefresh;
use crate::window::Navigation;

type R<T> = Result<T, ApiError>;

fn shell_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e)
}

#[tauri::command]
pub async fn status(node: State<'_, Node>) -> R<StatusDto> {
    node.status().await
}

#[tauri::command]
pub async fn devices(node: State<'_, Node>) -> R<Vec<DeviceDto>> {
    node.devices().await
}

#[tauri::command]
pub async fn pending(node: State<'_, Node>) -> R<Vec<PendingDto>> {
    node.pending().await
}

#[tauri::command]
pub async fn pair(node: State<'_, Node>, address: String) -> R<PairTicketDto> {
    node.pair(&address).await
}

#[tauri::command]
pub async fn pair_wait(node: State<'_, Node>, ticket: u64) -> R<PairOutcomeDto> {
    node.pair_wait(ticket).await
}

#[tauri::command]
pub async fn accept(node: State<'_, Node>, tray: State<'_, TrayRefresh>, id: u64, path: Option<String>) -> R<()> {
    let r = node.accept(AcceptDto { id, path }).await;
    tray.poke();
    r
}

#[tauri::command]
pub async fn reject(node: State<'_, Node>, tray: State<'_, TrayRefresh>, id: u64) -> R<()> {
    let r = node.reject(id).await;
    tray.poke();
    r
}

#[tauri::command]
pub async fn shares(node: State<'_, Node>) -> R<Vec<ShareDto>> {
    node.share_list().await
}

#[tauri::command]
pub async fn share_add(node: State<'_, Node>, tray: State<'_, TrayRefresh>, req: ShareAddDto) -> R<ShareDto> {
    let r = node.share_add(req).await;
    tray.poke();
    r
}

#[tauri::command]
pub async fn share_invite(node: State<'_, Node>, share: String, device: String) -> R<ShareDto> {
    node.share_invite(InviteDto { share, device }).await
}

#[tauri::command]
pub async fn share_remove(node: State<'_, Node>, tray: State<'_, TrayRefresh>, share: String) -> R<ShareDto> {
    let r = node.share_remove(&share).await;
    tray.poke();
    r
}

/// Clears a share's "needs attention" note (a refused mass delete) once the user has seen it.
#[tauri::command]
pub async fn share_ack(node: State<'_, Node>, share: String) -> R<ShareSettingsDto> {
    node.share_ack(&share).await
}

#[tauri::command]
pub async fn versions(node: State<'_, Node>, path: String) -> R<Vec<VersionDto>> {
    node.versions(&path).await
}

#[tauri::command]
pub async fn restore(node: State<'_, Node>, req: RestoreDto) -> R<RestoredDto> {
    node.restore(req).await
}

/// Plans (`dry_run`) or applies a rewind of a share or a folder in it.
#[tauri::command]
pub async fn rewind(node: State<'_, Node>, req: RewindReqDto) -> R<RewindDto> {
    node.rewind(req).await
}

#[tauri::command]
pub async fn conflicts(node: State<'_, Node>, share: Option<String>) -> R<Vec<ConflictDto>> {
    node.conflicts(ConflictsQuery { share }).await
}

#[tauri::command]
pub async fn resolve(node: State<'_, Node>, path: String, keep: String) -> R<ResolvedDto> {
    node.resolve(ResolveDto { path, keep }).await
}

#[tauri::command]
pub async fn send(node: State<'_, Node>, device: String, paths: Vec<String>) -> R<TransferDto> {
    node.send(SendDto { pin: None, device, paths }).await
}

#[tauri::command]
pub async fn transfers(node: State<'_, Node>) -> R<Vec<TransferDto>> {
    node.transfers().await
}

#[tauri::command]
pub async fn device_mute(node: State<'_, Node>, device: String, muted: bool) -> R<DeviceMuteDto> {
    node.device_mute(&device, muted).await
}

#[tauri::command]
pub async fn device_auto_accept(node: State<'_, Node>, device: String, on: bool) -> R<AutoAcceptDto> {
    node.device_auto_accept(&device, on).await
}

/// A LocalSend device stays in the list while away when it is a favorite.
#[tauri::command]
pub async fn device_favorite(node: State<'_, Node>, device: String, on: bool) -> R<DeviceDto> {
    node.device_favorite(&device, on).await
}

#[tauri::command]
pub async fn device_add_address(node: State<'_, Node>, device: String, address: String) -> R<DeviceDto> {
    node.device_add_address(AddAddressDto { device, address }).await
}

#[tauri::command]
pub async fn device_remove(node: State<'_, Node>, device: String) -> R<DeviceDto> {
    node.device_remove(&device).await
}

#[tauri::command]
pub async fn ping(node: State<'_, Node>, device: String) -> R<PingDto> {
    node.ping(&device).await
}

#[tauri::command]
pub async fn notes(node: State<'_, Node>, device: Option<String>) -> R<Vec<NoteDto>> {
    node.notes(NotesQuery { device }).await
}

#[tauri::command]
pub async fn note_send(node: State<'_, Node>, device: String, text: String) -> R<NoteDto> {
    node.note_send(NoteSendDto { pin: None, device, text }).await
}

#[tauri::command]
pub async fn note_read(node: State<'_, Node>, id: String) -> R<NoteDto> {
    node.note_read(&id).await
}

#[tauri::command]
pub async fn set_paused(node: State<'_, Node>, paused: bool) -> R<bool> {
    node.set_paused(paused).await
}

#[tauri::command]
pub async fn settings(node: State<'_, Node>) -> R<SettingsDto> {
    node.settings().await
}

/// Settings shows whether KDE Connect runs now and, if not, why (`kdeconnect.reason`).
#[tauri::command]
pub async fn doctor(node: State<'_, Node>) -> R<DoctorDto> {
    node.doctor().await
}

#[tauri::command]
pub async fn save_settings(node: State<'_, Node>, req: SettingsUpdateDto) -> R<SettingsDto> {
    node.save_settings(req).await
}

#[tauri::command]
pub async fn first_run(node: State<'_, Node>, tray: State<'_, TrayRefresh>, req: FirstRunDto) -> R<ShareDto> {
    let r = node.first_run(req).await;
    tray.poke();
    r
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
pub fn app_prefs(app: AppHandle, node: State<'_, Node>) -> R<AppPrefsDto> {
    let p = prefs::load(node.home());
    Ok(AppPrefsDto { start_at_login: app.autolaunch().is_enabled().unwrap_or(false), start_hidden: p.start_hidden })
}

#[tauri::command]
pub fn save_app_prefs(app: AppHandle, node: State<'_, Node>, req: AppPrefsDto) -> R<AppPrefsDto> {
    let auto = app.autolaunch();
    let set = if req.start_at_login { auto.enable() } else { auto.disable() };
    set.map_err(shell_err)?;
    prefs::save(node.home(), &Prefs { start_hidden: req.start_hidden }).map_err(shell_err)?;
    app_prefs(app, node)
}

/// The events the node kept, for a new window's Activity feed (the page is new each time the
/// window opens: what happened while it was closed shows too).
#[tauri::command]
pub fn recent_events(node: State<'_, Node>) -> RecentDto {
    node.recent_events()
}

/// The view the tray asked for (`{view, device}`), once: a new window asks when it starts, a
/// live one when told by `ferry-navigate`.
#[tauri::command]
pub fn take_navigation(nav: State<'_, Navigation>) -> Option<serde_json::Value> {
    nav.take()
}
