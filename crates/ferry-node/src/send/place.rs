//! Placing received items in the Inbox: each top-level file or folder of a transfer moves from
//! its staging folder to the first free name, never replacing anything, and exactly once even
//! when Ferry stops between the move and its record (Ferry's sends, KDE Connect's and
//! LocalSend's files all come through here).
//!
//! A placed file is recognised after a stop by its staging copy: a second link to the same
//! inode. A folder is moved whole and leaves no staging copy, so before it moves, its claimed
//! name is noted in the staging folder (`<staging>/.ferry-tmp-claims/<name>`, a symlink to the
//! Inbox name, made durable first); `placed_before` reads it back. Received names never start
//! with `TEMP_PREFIX` (`RelPath` refuses them), so the claims folder is never one of them.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use ferry_proto::TEMP_PREFIX;

/// Candidate names tried before giving up: `name (9999)` means something is wrong with the Inbox.
const MAX_CANDIDATES: u32 = 10_000;

fn io(what: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", what.display())
}

/// `name`, then `stem (1).ext`, `stem (2).ext`... (folders and dotfiles: `name (1)`).
pub(crate) fn candidate(name: &str, n: u32, is_dir: bool) -> String {
    if n == 0 {
        return name.to_string();
    }
    match name.rfind('.') {
        Some(dot) if !is_dir && dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

/// Moves `src` (a file or folder in the staging folder) into `inbox` under the first free
/// candidate name, atomically and without replacing anything; returns the name it got.
pub(crate) fn place(src: &Path, inbox: &Path, name: &str) -> Result<String, String> {
    let meta = std::fs::symlink_metadata(src).map_err(io(src))?;
    if meta.is_dir() {
        return place_dir(src, inbox, name);
    }
    for n in 0..MAX_CANDIDATES {
        let cand = candidate(name, n, false);
        let target = inbox.join(&cand);
        match std::fs::hard_link(src, &target) {
            Ok(()) => return Ok(cand),
            // Our own earlier placement, made before a crash that came before it was
            // recorded: the staging copy is still a link to it (same inode), so it is
            // placed already, not placed again under the next name.
            Err(e) if e.kind() == ErrorKind::AlreadyExists && same_file(&meta, &target) => return Ok(cand),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: {e}", target.display())),
        }
    }
    Err(format!("no free name for {name} in {}", inbox.display()))
}

/// A folder: claims a free name with an empty folder (fails if anything is there), notes the
/// claim, then renames over it (rename replaces only an empty folder). A stop between the claim
/// and its note leaves an empty folder under the claimed name, nothing else.
fn place_dir(src: &Path, inbox: &Path, name: &str) -> Result<String, String> {
    let claims = claims_dir(src.parent().unwrap_or(src));
    // An earlier run's claim that it stopped before using: the claimed folder is ours and
    // empty (or not on disk, if the claim outlived it). Someone else's files there make the
    // rename fail, and a new name is claimed below.
    if let Some(cand) = claimed(&claims, name)
        && std::fs::rename(src, inbox.join(&cand)).is_ok()
    {
        return Ok(cand);
    }
    for n in 0..MAX_CANDIDATES {
        let cand = candidate(name, n, true);
        let target = inbox.join(&cand);
        match std::fs::create_dir(&target) {
            Ok(()) => {
                note_claim(&claims, name, &cand)?;
                std::fs::rename(src, &target).map_err(io(&target))?;
                return Ok(cand);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: {e}", target.display())),
        }
    }
    Err(format!("no free name for {name} in {}", inbox.display()))
}

/// Where an earlier `place` moved folder `name` out of `staging`, if it did: its staging copy
/// is gone and its claim names a folder in `inbox`. (A file placed before a stop needs no
/// such help: `place` finds it by its inode.)
pub(crate) fn placed_before(staging: &Path, inbox: &Path, name: &str) -> Option<String> {
    if staging.join(name).symlink_metadata().is_ok() {
        return None;
    }
    let cand = claimed(&claims_dir(staging), name)?;
    inbox.join(&cand).symlink_metadata().is_ok_and(|m| m.is_dir()).then_some(cand)
}

fn claims_dir(staging: &Path) -> PathBuf {
    staging.join(format!("{TEMP_PREFIX}claims"))
}

/// The Inbox name noted for folder `name`, if one is; a note that is not one plain name (a
/// damaged or foreign file) counts as none.
fn claimed(claims: &Path, name: &str) -> Option<String> {
    let to = std::fs::read_link(claims.join(name)).ok()?;
    let to = to.to_str()?;
    (!to.is_empty() && !to.contains('/') && to != "." && to != "..").then(|| to.to_string())
}

/// Notes durably that folder `name` goes to `cand` in the Inbox, replacing an older note.
fn note_claim(claims: &Path, name: &str, cand: &str) -> Result<(), String> {
    ferry_fs::create_dirs_durable(claims).map_err(io(claims))?;
    let link = claims.join(name);
    match std::fs::remove_file(&link) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", link.display())),
    }
    std::os::unix::fs::symlink(cand, &link).map_err(io(&link))?;
    ferry_fs::fsync_dir(claims).map_err(|e| format!("{}: {e}", claims.display()))
}

/// Whether `path` is the file `meta` describes (the same inode on the same device).
fn same_file(meta: &std::fs::Metadata, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.ino() == meta.ino() && m.dev() == meta.dev())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A staging folder holding folder `d` (with one file) and an Inbox, in a temp dir.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (st, inbox) = (dir.path().join("st"), dir.path().join("in"));
        std::fs::create_dir_all(st.join("d")).unwrap();
        std::fs::write(st.join("d/x"), b"x").unwrap();
        std::fs::create_dir_all(&inbox).unwrap();
        (dir, st, inbox)
    }

    #[test]
    fn a_moved_folder_is_found_by_its_claim() {
        let (_dir, st, inbox) = setup();
        std::fs::create_dir(inbox.join("d")).unwrap();
        assert_eq!(placed_before(&st, &inbox, "d"), None, "not placed yet");
        assert_eq!(place(&st.join("d"), &inbox, "d").unwrap(), "d (1)");
        assert_eq!(std::fs::read(inbox.join("d (1)/x")).unwrap(), b"x");
        // What a run after a stop before the record sees: the staging copy gone, the claim there.
        assert_eq!(placed_before(&st, &inbox, "d").as_deref(), Some("d (1)"));
        assert_eq!(placed_before(&st, &inbox, "other"), None);
    }

    #[test]
    fn a_claim_a_stopped_run_did_not_use_is_used_by_the_next() {
        let (_dir, st, inbox) = setup();
        // Stopped between the claim and the move: an empty claimed folder and its note.
        std::fs::create_dir(inbox.join("d")).unwrap();
        note_claim(&claims_dir(&st), "d", "d").unwrap();
        assert_eq!(placed_before(&st, &inbox, "d"), None, "the staging copy is still there");
        assert_eq!(place(&st.join("d"), &inbox, "d").unwrap(), "d");
        assert_eq!(std::fs::read(inbox.join("d/x")).unwrap(), b"x");
        assert!(!inbox.join("d (1)").exists(), "placed once, under the claimed name");
    }

    #[test]
    fn a_claimed_name_someone_filled_is_not_taken() {
        let (_dir, st, inbox) = setup();
        std::fs::create_dir(inbox.join("d")).unwrap();
        std::fs::write(inbox.join("d/mine"), b"the user's").unwrap();
        note_claim(&claims_dir(&st), "d", "d").unwrap();
        assert_eq!(place(&st.join("d"), &inbox, "d").unwrap(), "d (1)");
        assert_eq!(std::fs::read(inbox.join("d/mine")).unwrap(), b"the user's");
        assert!(!inbox.join("d/x").exists());
    }

    #[test]
    fn a_damaged_claim_counts_as_none() {
        let (_dir, st, inbox) = setup();
        std::fs::create_dir_all(claims_dir(&st)).unwrap();
        std::os::unix::fs::symlink("../elsewhere", claims_dir(&st).join("d")).unwrap();
        std::fs::remove_dir_all(st.join("d")).unwrap();
        assert_eq!(placed_before(&st, &inbox, "d"), None);
        // A claim naming nothing in the Inbox is none either.
        std::fs::remove_file(claims_dir(&st).join("d")).unwrap();
        note_claim(&claims_dir(&st), "d", "gone").unwrap();
        assert_eq!(placed_before(&st, &inbox, "d"), None);
    }
}
