//! The tray icon: its image shows the node's state (up to date, syncing, needs attention,
//! paused); its menu has Open Ferry, a status line, Pause/Resume, Send note to > (paired
//! devices and the LocalSend devices listed, which need no pairing), Open folder > (shares) and Quit. It is rebuilt when the node's events say
//! something changed (debounced), never on a busy timer.

use std::sync::Arc;
use std::time::Duration;

use ferry_node::Node;
use tauri::image::Image;
use tauri::menu::{Menu, MenuBuilder, MenuEvent, MenuItemBuilder, SubmenuBuilder};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager};
use tauri_plugin_opener::OpenerExt;
use tokio::sync::Notify;

pub const TRAY_ID: &str = "ferry";
/// Events arrive in bursts (a scan, a transfer); one refresh per burst is enough.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// A slow safety net for state that changes without an event (a worker going idle).
const SAFETY_REFRESH: Duration = Duration::from_secs(15);

/// A handle that asks the tray to refresh (after a command changed shares or prompts).
#[derive(Clone, Default)]
pub struct TrayRefresh(pub Arc<Notify>);

impl TrayRefresh {
    pub fn poke(&self) {
        self.0.notify_one();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayState {
    UpToDate,
    Syncing,
    Attention,
    Paused,
}

impl TrayState {
    fn icon(self) -> Image<'static> {
        let bytes: &'static [u8] = match self {
            TrayState::UpToDate => include_bytes!("../icons/tray-ok.png"),
            TrayState::Syncing => include_bytes!("../icons/tray-syncing.png"),
            TrayState::Attention => include_bytes!("../icons/tray-attention.png"),
            TrayState::Paused => include_bytes!("../icons/tray-paused.png"),
        };
        Image::from_bytes(bytes).expect("tray icons are valid PNGs (checked in)")
    }
}

/// What the tray shows, computed from the node.
#[derive(Debug, Clone, PartialEq)]
struct View {
    state: TrayState,
    line: String,
    paused: bool,
    devices: Vec<(String, String)>,
    folders: Vec<(String, String)>,
}

async fn view(node: &Node) -> Option<View> {
    let status = node.status().await.ok()?;
    let pending = node.pending().await.map(|p| p.len()).unwrap_or(0);
    let devices = node.devices().await.ok()?;
    let errors = status.shares.iter().filter(|s| s.state == "error" || s.last_error.is_some()).count();
    // Items that cannot be synced (a FIFO, a name this system cannot hold): not up to date.
    let failed: u64 = status.shares.iter().map(|s| s.failed_items.len() as u64 + s.failed_more).sum();
    let syncing = status.shares.iter().any(|s| s.state == "scanning" || s.state == "syncing" || s.need > 0);
    let (state, line) = if status.paused {
        (TrayState::Paused, "Syncing paused".to_string())
    } else if pending > 0 || errors > 0 || failed > 0 {
        let what = if pending > 0 {
            plural(pending, "request")
        } else if errors > 0 {
            plural(errors, "folder error")
        } else {
            format!("{} cannot be synced", plural(failed as usize, "item"))
        };
        (TrayState::Attention, format!("Needs attention: {what}"))
    } else if syncing {
        (TrayState::Syncing, "Syncing…".to_string())
    } else {
        let folders = plural(status.shares.len(), "folder");
        (TrayState::UpToDate, format!("Up to date · {folders} · {} connected", status.connected))
    };
    Some(View {
        state,
        line,
        paused: status.paused,
        // LocalSend devices are never paired, yet take notes like a paired phone.
        devices: devices
            .into_iter()
            .filter(|d| d.paired || (d.kind == "localsend" && !d.removed))
            .map(|d| (d.id, d.name))
            .collect(),
        folders: status.shares.into_iter().map(|s| (s.path, s.label)).collect(),
    })
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

fn menu(app: &AppHandle, v: &View) -> tauri::Result<Menu<tauri::Wry>> {
    let mut notes = SubmenuBuilder::new(app, "Send note to");
    if v.devices.is_empty() {
        notes = notes.item(&MenuItemBuilder::with_id("none-devices", "No paired devices").enabled(false).build(app)?);
    }
    for (id, name) in &v.devices {
        notes = notes.item(&MenuItemBuilder::with_id(format!("note:{id}"), name).build(app)?);
    }
    let mut folders = SubmenuBuilder::new(app, "Open folder");
    if v.folders.is_empty() {
        folders = folders.item(&MenuItemBuilder::with_id("none-folders", "No folders").enabled(false).build(app)?);
    }
    for (path, label) in &v.folders {
        folders = folders.item(&MenuItemBuilder::with_id(format!("folder:{path}"), label).build(app)?);
    }
    MenuBuilder::new(app)
        .item(&MenuItemBuilder::with_id("open", "Open Ferry").build(app)?)
        .item(&MenuItemBuilder::with_id("status", &v.line).enabled(false).build(app)?)
        .separator()
        .item(&MenuItemBuilder::with_id("pause", if v.paused { "Resume syncing" } else { "Pause syncing" }).build(app)?)
        .item(&notes.build()?)
        .item(&folders.build()?)
        .separator()
        .item(&MenuItemBuilder::with_id("quit", "Quit Ferry").build(app)?)
        .build()
}

pub fn build(app: &AppHandle) -> tauri::Result<TrayIcon> {
    let initial =
        View {
            state: TrayState::UpToDate, line: "Starting…".into(), paused: false, devices: vec![], folders: vec![]
        };
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(initial.state.icon())
        .tooltip("Ferry")
        .menu(&menu(app, &initial)?)
        .on_menu_event(on_menu)
        .build(app)
}

/// Keeps the tray in step with the node until the app exits.
pub async fn run(app: AppHandle, node: Node, refresh: TrayRefresh) {
    let mut last: Option<View> = None;
    loop {
        if let Some(v) = view(&node).await
            && last.as_ref() != Some(&v)
            && let Some(tray) = app.tray_by_id(TRAY_ID)
        {
            let _ = tray.set_icon(Some(v.state.icon()));
            let _ = tray.set_tooltip(Some(format!("Ferry: {}", v.line)));
            if let Ok(m) = menu(&app, &v) {
                let _ = tray.set_menu(Some(m));
            }
            last = Some(v);
        }
        tokio::select! {
            _ = refresh.0.notified() => tokio::time::sleep(DEBOUNCE).await,
            _ = tokio::time::sleep(SAFETY_REFRESH) => {}
        }
    }
}

fn on_menu(app: &AppHandle, event: MenuEvent) {
    let id = event.id().as_ref().to_string();
    let node = app.state::<Node>().inner().clone();
    match id.as_str() {
        "open" => crate::show_main(app),
        "pause" => {
            let refresh = app.state::<TrayRefresh>().inner().clone();
            tauri::async_runtime::spawn(async move {
                let _ = node.set_paused(!node.paused()).await;
                refresh.poke();
            });
        }
        "quit" => crate::quit(app),
        _ => {
            if let Some(device) = id.strip_prefix("note:") {
                crate::child::open(app, Some(serde_json::json!({ "view": "notes", "device": device })));
            } else if let Some(path) = id.strip_prefix("folder:") {
                let _ = app.opener().open_path(path, None::<&str>);
            }
        }
    }
}
