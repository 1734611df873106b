//! The window process (`ferry-desktop --window`): the UI in a process of its own, so that
//! closing the window gives every byte of WebKit, its GL stack and the page back to the system
//! (in the tray process they stayed: 135-143 MiB closed to the tray; BENCHMARKS.md (5)).
//!
//! It holds no node: its commands go to the tray process's node over the control socket
//! (commands.rs, remote.rs), its live events come from `/v1/events`, and Activity replays the
//! events the node kept. It ends when its window closes, or when the node's event stream ends
//! (the tray's Quit stops the node). The tray process talks to it over its stdin, one line per
//! message (child.rs): `show`, or `navigate <json>`; a window started some other way (a test)
//! simply has no such messages.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferry_node::{ApiError, ErrorCode, Event};
use tauri::{AppHandle, Emitter, Manager, WebviewWindow, WebviewWindowBuilder, WindowEvent};
use tauri_plugin_notification::NotificationExt;

use crate::commands;
use crate::remote::Remote;

pub const MAIN: &str = "main";

/// A view asked for (Send note to > device), kept until the page takes it: a page that has
/// just started has no listener yet, so an event alone would be lost.
#[derive(Default)]
pub struct Navigation(Mutex<Option<serde_json::Value>>);

impl Navigation {
    pub fn take(&self) -> Option<serde_json::Value> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
    fn set(&self, to: serde_json::Value) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(to);
    }
}

/// How long the window process waits for the node's control socket: the tray process starts
/// serving it while it starts the window, and a page whose first calls failed would show
/// errors until its next refresh.
const NODE_WAIT: Duration = Duration::from_secs(10);
/// Between two tries while the node is not answering yet.
const NODE_RETRY: Duration = Duration::from_millis(50);

/// Waits (bounded) until the node answers on its control socket.
fn wait_for_node(remote: &Remote) -> Result<(), ApiError> {
    let deadline = Instant::now() + NODE_WAIT;
    loop {
        match tauri::async_runtime::block_on(remote.get::<serde_json::Value>("/v1/id")) {
            Ok(_) => return Ok(()),
            Err(e) if e.code == ErrorCode::Unreachable && Instant::now() < deadline => std::thread::sleep(NODE_RETRY),
            Err(e) => return Err(e),
        }
    }
}

/// Runs the window process until its window closes. `navigate`: the view to show first.
pub fn run(home: PathBuf, navigate: Option<serde_json::Value>) -> i32 {
    let remote = Remote::new(&home);
    if let Err(e) = wait_for_node(&remote) {
        eprintln!("ferry-desktop --window: {}", e.message);
        return 1;
    }
    let nav = Navigation::default();
    if let Some(to) = navigate {
        nav.set(to);
    }
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec!["--hidden"]),
        ))
        .manage(remote)
        .manage(nav)
        .setup(|app| {
            build(app.handle())?;
            show(app.handle());
            tauri::async_runtime::spawn(forward_events(app.handle().clone()));
            listen_to_host(app.handle().clone());
            Ok(())
        })
        .on_window_event(|window, event| {
            if let WindowEvent::Destroyed = event {
                window.app_handle().exit(0);
            }
        })
        .invoke_handler(tauri::generate_handler![
            commands::status,
            commands::devices,
            commands::pending,
            commands::pair,
            commands::pair_wait,
            commands::accept,
            commands::reject,
            commands::shares,
            commands::share_add,
            commands::share_invite,
            commands::share_remove,
            commands::share_ack,
            commands::versions,
            commands::restore,
            commands::rewind,
            commands::conflicts,
            commands::resolve,
            commands::send,
            commands::transfers,
            commands::device_mute,
            commands::device_auto_accept,
            commands::device_favorite,
            commands::device_add_address,
            commands::device_remove,
            commands::pick_files,
            commands::ping,
            commands::notes,
            commands::note_send,
            commands::note_read,
            commands::set_paused,
            commands::settings,
            commands::save_settings,
            commands::doctor,
            commands::first_run,
            commands::default_folder,
            commands::pick_folder,
            commands::open_path,
            commands::reveal_path,
            commands::app_prefs,
            commands::save_app_prefs,
            commands::recent_events,
            commands::take_navigation,
        ])
        .build(tauri::generate_context!());
    let app = match app {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ferry-desktop --window: {e}");
            return 1;
        }
    };
    // Runs until the window closes or the node goes away (both call `exit`): nothing else
    // keeps this process.
    app.run(|_, _| {});
    0
}

/// Builds the window from tauri.conf.json's "main" entry (`create: false` there: the tray
/// process never builds one).
fn build(app: &AppHandle) -> tauri::Result<WebviewWindow> {
    let t = std::time::Instant::now();
    let cfg = app.config().app.windows.iter().find(|w| w.label == MAIN).cloned();
    let cfg = cfg.ok_or(tauri::Error::WindowNotFound)?;
    let w = WebviewWindowBuilder::from_config(app, &cfg)?.build()?;
    tracing::debug!("window built in {:?}", t.elapsed());
    Ok(w)
}

fn show(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(MAIN) {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

/// Whether the window has the keyboard focus.
fn focused(app: &AppHandle) -> bool {
    app.get_webview_window(MAIN).and_then(|w| w.is_focused().ok()).unwrap_or(false)
}

/// The node's live events to the page (numbered: the page drops those its replay of the kept
/// ones already had), and the notifications that matter only while a window is open but not
/// looked at (the tray process gives them when no window is open). The stream's end is the
/// node's: the window goes with it.
async fn forward_events(app: AppHandle) {
    let remote = app.state::<Remote>();
    let mut stream = match remote.events().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ferry-desktop --window: {}", e.message);
            app.exit(1);
            return;
        }
    };
    while let Some(Ok(stamped)) = stream.next().await {
        if !focused(&app) {
            note_if_unseen(&app, &stamped.event);
        }
        let _ = app.emit("ferry-event", &stamped);
    }
    app.exit(0);
}

fn note_if_unseen(app: &AppHandle, ev: &Event) {
    let (title, body) = match ev {
        Event::NoteReceived { from_name, text, .. } => (crate::clip(from_name, 64), crate::clip(text, 200)),
        Event::SendState { direction, state, .. } if direction == "in" && state == "done" => {
            ("Files received".into(), "They are in your inbox (see Activity)".into())
        }
        _ => return,
    };
    if let Err(e) = app.notification().builder().title(title).body(body).show() {
        tracing::debug!("notification not shown: {e}");
    }
}

/// The tray process's messages on stdin, one per line (see the module's doc). End of input is
/// not an end for the window: a window started by hand has none.
fn listen_to_host(app: AppHandle) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let handle = app.clone();
            let (cmd, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            let to = match cmd {
                "show" => None,
                "navigate" => match serde_json::from_str::<serde_json::Value>(arg) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::warn!("bad navigation from the tray process: {e}");
                        continue;
                    }
                },
                other => {
                    tracing::warn!("unknown message from the tray process: {other:?}");
                    continue;
                }
            };
            let _ = app.run_on_main_thread(move || {
                show(&handle);
                if let Some(to) = to {
                    // The page takes it now (it listens) or when it starts.
                    handle.state::<Navigation>().set(to);
                    let _ = handle.emit("ferry-navigate", ());
                }
            });
        }
    });
}
