//! Ferry's desktop app: a thin Tauri 2 shell around an in-process node.
//!
//! The node runs inside this process and also serves its control socket, so the `ferry` CLI
//! works against the app exactly as against `ferry daemon`. Commands (commands.rs) each call
//! one node method; node events are forwarded to the window as `ferry-event` and drive the
//! tray (tray.rs), notifications and the raising of the window for prompts. Closing the
//! window keeps Ferry in the tray with the window destroyed, its webview's memory released
//! (window.rs); Quit shuts the node down in order, then exits.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod prefs;
mod tray;
mod window;

use ferry_node::{Config, Event, Node, Overrides};
use tauri::{AppHandle, Emitter, Manager, RunEvent, WindowEvent};
use tauri_plugin_notification::NotificationExt;
pub use window::show_main;

/// Ordered exit: the node stops (workers, connections, endpoint, socket), then the app.
pub fn quit(app: &AppHandle) {
    let app = app.clone();
    let node = app.state::<Node>().inner().clone();
    tauri::async_runtime::spawn(async move {
        node.shutdown().await;
        app.exit(0);
    });
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The same environment variables as `ferry daemon` (FERRY_HOME, FERRY_LISTEN, ...).
fn config() -> anyhow::Result<Config> {
    Ok(Config::load(Overrides {
        home: env("FERRY_HOME").map(Into::into),
        listen: env("FERRY_LISTEN"),
        name: env("FERRY_NAME"),
        owner: env("FERRY_OWNER"),
        log: env("FERRY_LOG"),
        log_file: None,
        rescan_secs: env("FERRY_RESCAN_SECS").map(|s| s.parse()).transpose()?,
        mdns: switch("FERRY_MDNS")?,
        mdns_interfaces: env("FERRY_MDNS_INTERFACE")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default(),
        inbox: env("FERRY_INBOX").map(Into::into),
        kdeconnect: switch("FERRY_KDECONNECT")?,
        kdeconnect_bind: env("FERRY_KDECONNECT_BIND")
            .map(|v| v.parse().map_err(|_| anyhow::anyhow!("FERRY_KDECONNECT_BIND={v:?}: expected an IP address")))
            .transpose()?,
        localsend: switch("FERRY_LOCALSEND")?,
        localsend_bind: env("FERRY_LOCALSEND_BIND")
            .map(|v| v.parse().map_err(|_| anyhow::anyhow!("FERRY_LOCALSEND_BIND={v:?}: expected an IP address")))
            .transpose()?,
        localsend_port: env("FERRY_LOCALSEND_PORT")
            .map(|v| v.parse().map_err(|_| anyhow::anyhow!("FERRY_LOCALSEND_PORT={v:?}: expected a port number")))
            .transpose()?,
        localsend_pin: env("FERRY_LOCALSEND_PIN"),
    })?)
}

/// An on/off variable: `0`/`false`/`off`/`no` or `1`/`true`/`on`/`yes`; unset or empty: None.
fn switch(var: &str) -> anyhow::Result<Option<bool>> {
    match env(var).map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") => Ok(None),
        Some("0" | "false" | "off" | "no") => Ok(Some(false)),
        Some("1" | "true" | "on" | "yes") => Ok(Some(true)),
        Some(other) => anyhow::bail!("{var}={other:?}: expected 0 or 1"),
    }
}

fn notify(app: &AppHandle, title: &str, body: &str) {
    // No notification daemon (a bare session) is not an error worth more than a log line.
    if let Err(e) = app.notification().builder().title(title).body(body).show() {
        tracing::debug!("notification not shown: {e}");
    }
}

/// At most `n` characters of text a peer chose (names, labels), for a notification.
fn clip(s: &str, n: usize) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    if s.chars().count() <= n { s } else { format!("{}…", s.chars().take(n).collect::<String>()) }
}

/// Error notifications: at most one per this interval (a failing disk can emit many).
const ERROR_NOTIFY_GAP: std::time::Duration = std::time::Duration::from_secs(30);

/// What the shell itself does with an event besides forwarding it to the window.
fn on_event(app: &AppHandle, ev: &Event, last_error: &mut Option<std::time::Instant>) {
    match ev {
        Event::PromptAdded { kind, device_name, code, label, .. } => {
            let who = clip(device_name, 64);
            let what = clip(label.as_deref().unwrap_or(""), 120);
            let (title, body) = match kind.as_str() {
                "pair" => ("Pairing request", format!("{who} wants to pair. Code {}", code.as_deref().unwrap_or(""))),
                "send" => ("Files offered", format!("{who} wants to send you {what}")),
                "mass-delete" => {
                    ("Many deletions held", format!("{what}: {who} deleted many files; Ferry waits for you"))
                }
                _ => ("Folder offered", format!("{who} offers the folder “{what}”")),
            };
            notify(app, title, &body);
            show_main(app);
        }
        Event::NoteReceived { from_name, text, .. } if !window::focused(app) => {
            notify(app, &clip(from_name, 64), &clip(text, 200))
        }
        Event::DeviceRemoved { by: Some(by), .. } => notify(
            app,
            "Removed from a device",
            &format!("{} removed this computer; Ferry no longer syncs with it. Your files stay.", clip(by, 64)),
        ),
        Event::DeviceRefused { reason, .. } => notify(app, "Device refused", &clip(reason, 200)),
        Event::Conflict { path, .. } => {
            notify(app, "Conflict", &format!("{}: both sides changed; a copy was kept", clip(path, 120)))
        }
        // The node sends this once per new set of items (not at every scan or retry).
        Event::FailedItems { label, new, .. } => {
            let title = format!("Cannot sync in “{}”", clip(label, 64));
            let body = match new.as_slice() {
                [one] => format!("{}: {}", clip(&one.path, 120), clip(&one.reason, 160)),
                many => format!("{} items (see Folders), e.g. {}", many.len(), clip(&many[0].path, 120)),
            };
            notify(app, &title, &body);
        }
        Event::SendState { direction, state, message, .. } if state == "failed" => {
            let what = if direction == "in" { "Receiving files failed" } else { "Sending files failed" };
            notify(app, what, &clip(message.as_deref().unwrap_or("see Activity"), 200));
        }
        Event::SendState { direction, state, .. } if direction == "in" && state == "done" && !window::focused(app) => {
            notify(app, "Files received", "They are in your inbox (see Activity)");
        }
        Event::SendState { direction, state, message, .. } if direction == "out" && state == "rejected" => {
            notify(app, "Files declined", &clip(message.as_deref().unwrap_or("the other device declined them"), 200));
        }
        // Share errors (a folder that cannot be watched, read or written) need the user; a
        // connection's errors show in Activity only.
        Event::Error { share: Some(_), message, .. } => {
            let now = std::time::Instant::now();
            if last_error.is_none_or(|t| now.duration_since(t) >= ERROR_NOTIFY_GAP) {
                *last_error = Some(now);
                notify(app, "Ferry needs attention", &clip(message, 200));
            }
        }
        _ => {}
    }
}

/// Starts the node inside the app, serves its control socket (so the `ferry` CLI works while
/// the app runs), forwards its events, builds the tray and shows the window unless told to
/// start hidden.
fn setup(
    app: &mut tauri::App,
    cfg: Config,
    refresh: tray::TrayRefresh,
    start_hidden_arg: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let handle = app.handle().clone();
    let node = tauri::async_runtime::block_on(Node::start(cfg)).map_err(|e| {
        eprintln!("ferry-desktop: {e}");
        e
    })?;
    app.manage(node.clone());
    let control = node.clone();
    tauri::async_runtime::spawn(async move {
        if let Err(e) = control.serve_control().await {
            tracing::error!("control socket: {e}");
        }
    });
    tauri::async_runtime::spawn(forward_events(handle.clone(), node.clone(), refresh.clone()));
    tray::build(&handle)?;
    tauri::async_runtime::spawn(tray::run(handle.clone(), node.clone(), refresh.clone()));
    let prefs = prefs::load(node.home());
    if !(start_hidden_arg || prefs.start_hidden) {
        window::open_now(&handle, None);
    }
    Ok(())
}

/// The node's events: to the window (as the node numbered them: the page drops those its
/// replay of the kept ones already had), to the tray, to notifications.
async fn forward_events(h: tauri::AppHandle, node: Node, r: tray::TrayRefresh) {
    let mut events = node.subscribe();
    let mut last_error = None;
    while let Some(stamped) = events.next().await {
        on_event(&h, &stamped.event, &mut last_error);
        // No window (closed to the tray): nobody listens; the node keeps what Activity needs.
        let _ = h.emit("ferry-event", &stamped);
        r.poke();
    }
}

fn main() {
    ferry_node::one_malloc_arena();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| "info,tao=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cfg = match config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferry-desktop: {e:#}");
            std::process::exit(2);
        }
    };
    let start_hidden_arg = std::env::args().any(|a| a == "--hidden");
    let refresh = tray::TrayRefresh::default();

    let app = tauri::Builder::default()
        // First: a second launch focuses the running window and exits before starting a node.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| show_main(app)))
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec!["--hidden"]),
        ))
        .manage(refresh.clone())
        .manage(window::Navigation::default())
        .setup(move |app| setup(app, cfg, refresh, start_hidden_arg))
        .on_window_event(|window, event| {
            // Closing the window is let through (the run loop below keeps the app in the tray):
            // a destroyed window frees its webview, a hidden one would keep it.
            if let WindowEvent::Destroyed = event {
                window::destroyed(window.app_handle(), window.label());
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
            eprintln!("ferry-desktop: {e}");
            std::process::exit(1);
        }
    };
    app.run(|app, event| {
        // Only Quit (which stops the node first) ends the app; the last window closing does not.
        match event {
            RunEvent::ExitRequested { code: None, api, .. } => api.prevent_exit(),
            RunEvent::Exit => {
                if let Some(node) = app.try_state::<Node>() {
                    tauri::async_runtime::block_on(node.inner().clone().shutdown());
                }
            }
            _ => {}
        }
    });
}
