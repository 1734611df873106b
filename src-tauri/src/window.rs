//! The main window's life. Closing it (its close button) destroys it instead of hiding it:
//! WebKit's web process exits and its memory goes back to the system while Ferry sits in the
//! tray (a hidden window kept ~300 MiB of WebKit alive). Opening it again (tray "Open Ferry",
//! a note from the tray, a second launch, a prompt) builds it afresh from tauri.conf.json's
//! "main" entry (`create: false` there: nothing is built until it is wanted, so `--hidden`
//! starts without a webview); the page then loads its state from the node, and Activity
//! replays the events the node kept (ferry-node event_log.rs).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tauri::{AppHandle, Emitter, Manager, WebviewWindow, WebviewWindowBuilder};

pub const MAIN: &str = "main";
/// After the window is destroyed, GTK and WebKit finish freeing in idle callbacks: trim the
/// allocator once they have run.
const TRIM_AFTER: Duration = Duration::from_secs(3);

/// A view the tray asked for (Send note to > device), kept until the page takes it: a window
/// built just now has no listener yet, so an event alone would be lost.
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

/// Shows, raises and focuses the main window, building it if it was closed.
pub fn show_main(app: &AppHandle) {
    open(app, None);
}

/// Shows the main window, then asks the page to show `to` (e.g. `{"view":"notes"}`).
pub fn open(app: &AppHandle, to: Option<serde_json::Value>) {
    let handle = app.clone();
    // Built and shown on the main thread only: callers run on tokio, D-Bus and GTK threads, and
    // one thread in turn means a prompt and a tray click together build one window, not two.
    if let Err(e) = app.run_on_main_thread(move || open_now(&handle, to)) {
        tracing::warn!("cannot open the window: {e}");
    }
}

/// `open`, on the main thread already (the app's setup).
pub fn open_now(app: &AppHandle, to: Option<serde_json::Value>) {
    let w = match app.get_webview_window(MAIN) {
        Some(w) => w,
        None => match build(app) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!("cannot build the window: {e}");
                return;
            }
        },
    };
    let _ = w.unminimize();
    let _ = w.show();
    let _ = w.set_focus();
    if let Some(to) = to {
        // The page takes it now (it listens) or when it starts (a window built just now).
        app.state::<Navigation>().set(to);
        let _ = w.emit("ferry-navigate", ());
    }
}

fn build(app: &AppHandle) -> tauri::Result<WebviewWindow> {
    let t = Instant::now();
    let cfg = app.config().app.windows.iter().find(|w| w.label == MAIN).cloned();
    let cfg = cfg.ok_or_else(|| tauri::Error::WindowNotFound)?;
    let w = WebviewWindowBuilder::from_config(app, &cfg)?.build()?;
    tracing::debug!("window built in {:?}", t.elapsed());
    Ok(w)
}

/// Whether the main window exists and has the keyboard focus.
pub fn focused(app: &AppHandle) -> bool {
    app.get_webview_window(MAIN).and_then(|w| w.is_focused().ok()).unwrap_or(false)
}

/// The main window is gone (closed to the tray): once GTK and WebKit have freed what it held,
/// stop WebKit's network process, give the freed heap back to the system and page out the
/// libraries only a window runs.
pub fn destroyed(app: &AppHandle, label: &str) {
    if label != MAIN {
        return;
    }
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(TRIM_AFTER).await;
        let handle = app.clone();
        // On the main thread, where windows are built: none can appear between the check and
        // the stop.
        let _ = app.run_on_main_thread(move || {
            // Not under WebDriver (the e2e flows): WebKit ends the automation session with the
            // network process, as if the page had crashed.
            let automated = std::env::var("TAURI_WEBVIEW_AUTOMATION").as_deref() == Ok("true");
            let closed = handle.webview_windows().is_empty();
            if closed && !automated {
                stop_network_process();
            }
            ferry_node::release_free_memory();
            if closed {
                let bytes = ferry_node::page_out_libraries(WINDOW_LIBRARIES);
                tracing::debug!("paged out {} MiB of mappings the window brought", bytes >> 20);
            }
        });
    });
}

/// The libraries a window brings into the app and leaves mapped after it is gone (file-name
/// parts): WebKit and its JavaScript engine, the GL stack its page display loads (Mesa's
/// drivers, `*_dri.so` or `libgallium`, with the LLVM and Z3 they link: 43 MiB resident under
/// Xvfb's software driver), and the speech and media libraries WebKit links. Nothing in the
/// tray runs them; a window opened again faults back what it uses.
const WINDOW_LIBRARIES: &[&str] =
    &["libwebkit2gtk", "libjavascriptcoregtk", "libLLVM", "_dri.so", "libgallium", "libz3", "libflite", "libgst"];

/// WebKit keeps its network process (~60 MiB resident) after the last page closes, and Tauri
/// keeps the web context alive on Linux so that a new window reuses it (tauri#14626). With no
/// page left it serves nothing: it is stopped, and WebKit starts a new one for the next page.
fn stop_network_process() {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else { return };
    for pid in dir.flatten().filter_map(|e| e.file_name().into_string().ok()) {
        // /proc/PID/stat: "PID (COMM) STATE PPID ..."; COMM is cut at 15 characters.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
        let ours = rest.split(' ').nth(1) == Some(me.as_str());
        if ours && head.ends_with("(WebKitNetworkPr") {
            tracing::debug!("stopping WebKit's network process {pid}: no page left");
            let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
        }
    }
}
