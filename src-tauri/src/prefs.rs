//! The shell's own preferences (start hidden), beside the node's files in the home, and the
//! default folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const FILE: &str = "desktop.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Prefs {
    #[serde(default)]
    pub start_hidden: bool,
}

pub fn load(home: &Path) -> Prefs {
    std::fs::read(home.join(FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// Temp file + rename, so a crash leaves the old or the new file.
pub fn save(home: &Path, p: &Prefs) -> std::io::Result<()> {
    let tmp = home.join(format!("{FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(p).map_err(std::io::Error::other)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(tmp, home.join(FILE))
}

/// `~/Ferry`: the folder the first run shares.
pub fn default_folder() -> Option<PathBuf> {
    directories::UserDirs::new().map(|u| u.home_dir().join("Ferry"))
}
