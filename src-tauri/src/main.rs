//! Ferry's desktop app: a thin Tauri 2 shell around a node, in two processes.
//!
//! The launched process hosts the node and the tray: it serves the node's control socket (the
//! `ferry` CLI works against the app exactly as against `ferry daemon`), turns node events into
//! the tray's state (tray.rs), notifications and the window for prompts, and never builds a
//! webview. The window is a process of its own (`--window`, window.rs), started when wanted
//! (child.rs) and ended when closed: WebKit, its GL stack and the page go with it, and the tray
//! process holds only the node and GTK. Quit shuts the node down in order, then exits.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod child;
mod commands;
mod prefs;
mod remote;
mod tray;
mod window;

use std::ffi::OsString;
use std::sync::OnceLock;

pub use child::show_main;
use ferry_node::{Config, Event, Node, Overrides};
use tauri::{AppHandle, Manager, RunEvent};
use tauri_plugin_notification::NotificationExt;

/// `GDK_GL` as the user had it: the tray process turns GL off for itself (GDK would load the
/// GL driver, and with Mesa's software driver 43 MiB of LLVM, only to pick visuals), and gives
/// the window process the user's setting back.
pub static USER_GDK_GL: OnceLock<Option<OsString>> = OnceLock::new();

/// Ordered exit: the node stops (workers, connections, endpoint, socket), then the app.
pub fn quit(app: &AppHandle) {
    let app = app.clone();
    app.state::<child::WindowChild>().close();
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
        // With a window open, the window process tells of these when it is not looked at.
        Event::NoteReceived { from_name, text, .. } if !app.state::<child::WindowChild>().is_open() => {
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
        Event::SendState { direction, state, .. }
            if direction == "in" && state == "done" && !app.state::<child::WindowChild>().is_open() =>
        {
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
        child::open(&handle, None);
    }
    Ok(())
}

/// The node's events: to the tray and to notifications (the window process has its own
/// subscription, over the control socket).
async fn forward_events(h: tauri::AppHandle, node: Node, r: tray::TrayRefresh) {
    let mut events = node.subscribe();
    let mut last_error = None;
    while let Some(stamped) = events.next().await {
        on_event(&h, &stamped.event, &mut last_error);
        r.poke();
    }
}

/// `--window [--navigate JSON]`: the window process (window.rs); anything else: the tray
/// process.
enum Mode {
    Window(Option<serde_json::Value>),
    Tray { start_hidden: bool },
}

fn mode() -> anyhow::Result<Mode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--window") {
        return Ok(Mode::Tray { start_hidden: args.iter().any(|a| a == "--hidden") });
    }
    let nav = match args.iter().position(|a| a == "--navigate") {
        Some(i) => {
            let v = args.get(i + 1).ok_or_else(|| anyhow::anyhow!("--navigate needs a JSON value"))?;
            Some(serde_json::from_str(v).map_err(|e| anyhow::anyhow!("--navigate {v:?}: {e}"))?)
        }
        None => None,
    };
    Ok(Mode::Window(nav))
}

fn main() {
    // Before GTK (and any thread) starts: the tray process needs no GL (USER_GDK_GL's doc).
    let mode = mode();
    let user_gl = std::env::var_os("GDK_GL");
    if matches!(mode, Ok(Mode::Tray { .. })) {
        // SAFETY: no other thread runs yet (main's first statements), so nothing reads the
        // environment while it changes.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("GDK_GL", "disable")
        };
    }
    let _ = USER_GDK_GL.set(user_gl);
    ferry_node::one_malloc_arena();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| "info,tao=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let (mode, cfg) = match mode.and_then(|m| Ok((m, config()?))) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("ferry-desktop: {e:#}");
            std::process::exit(2);
        }
    };
    let start_hidden_arg = match mode {
        Mode::Window(nav) => std::process::exit(window::run(cfg.home.clone(), nav)),
        Mode::Tray { start_hidden } => start_hidden,
    };
    let refresh = tray::TrayRefresh::default();

    let app = tauri::Builder::default()
        // First: a second launch shows the window and exits before starting a node.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| show_main(app)))
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_opener::init())
        .manage(refresh.clone())
        .manage(child::WindowChild::default())
        .setup(move |app| setup(app, cfg, refresh, start_hidden_arg))
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
