//! The tray process's side of the window: the window is a process of its own
//! (`ferry-desktop --window`, window.rs), started when it is wanted (tray "Open Ferry", a note
//! from the tray, a second launch, a prompt) and gone when it closes, with all of WebKit. At
//! most one is started from here at a time; a live one is told to show (or to show a view)
//! over its stdin.

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

use tauri::{AppHandle, Manager};

/// The window process this tray process started, while it runs.
#[derive(Default, Clone)]
pub struct WindowChild(Arc<Mutex<Option<Running>>>);

struct Running {
    pid: u32,
    stdin: ChildStdin,
}

impl WindowChild {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a window process started from here is running.
    pub fn is_open(&self) -> bool {
        self.lock().is_some()
    }

    /// Asks the window process to end (the tray's Quit): it also ends by itself when the node's
    /// event stream does.
    pub fn close(&self) {
        if let Some(r) = self.lock().take() {
            let _ = Command::new("kill").args(["-TERM", &r.pid.to_string()]).status();
        }
    }
}

/// Shows the window: starts the window process, or tells the running one to come forward.
pub fn show_main(app: &AppHandle) {
    open(app, None);
}

/// Shows the window on `to` (e.g. `{"view":"notes","device":...}`).
pub fn open(app: &AppHandle, to: Option<serde_json::Value>) {
    let child = app.state::<WindowChild>().inner().clone();
    let mut slot = child.lock();
    if let Some(r) = slot.as_mut() {
        let line = match &to {
            Some(v) => format!("navigate {v}\n"),
            None => "show\n".to_string(),
        };
        if r.stdin.write_all(line.as_bytes()).and_then(|_| r.stdin.flush()).is_ok() {
            return;
        }
        // Its stdin is closed: it is exiting. A new one is started.
        *slot = None;
    }
    match spawn(to) {
        Ok(mut c) => {
            let Some(stdin) = c.stdin.take() else { return };
            *slot = Some(Running { pid: c.id(), stdin });
            drop(slot);
            let watch = child.clone();
            std::thread::spawn(move || {
                let pid = c.id();
                let _ = c.wait();
                let mut s = watch.lock();
                if s.as_ref().is_some_and(|r| r.pid == pid) {
                    *s = None;
                }
            });
        }
        Err(e) => tracing::error!("cannot start the window process: {e}"),
    }
}

/// `ferry-desktop --window [--navigate JSON]`, with the tray process's environment (the same
/// home; under WebDriver, the automation variables that make its page the session's), except
/// `GDK_GL`, which the tray process sets for itself only (window.rs needs GL for its page).
fn spawn(to: Option<serde_json::Value>) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("--window");
    if let Some(v) = to {
        cmd.arg("--navigate").arg(v.to_string());
    }
    match crate::USER_GDK_GL.get().cloned().flatten() {
        Some(v) => cmd.env("GDK_GL", v),
        None => cmd.env_remove("GDK_GL"),
    };
    cmd.stdin(Stdio::piped()).stdout(Stdio::inherit()).stderr(Stdio::inherit()).spawn()
}
