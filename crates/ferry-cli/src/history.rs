//! A file's history: `ferry versions`, `ferry restore`, `ferry rewind`, and the conflict copies
//! waiting to be settled (`ferry conflicts`, `ferry resolve`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use ferry_node::api::{
    ConflictDto, ConflictsQuery, ResolveDto, ResolvedDto, RestoreDto, RestoredDto, RewindDto, RewindReqDto, VersionDto,
    VersionsQuery,
};
use ferry_node::client::Client;

use crate::output::{fmt_ms, human_bytes, print_json};
use crate::{absolute, call};

/// `ferry versions PATH`: the archived versions of a file, or of a whole share given its folder.
pub(crate) async fn versions(c: &Client, json: bool, path: PathBuf) -> Result<ExitCode> {
    let path = absolute(&path)?.display().to_string();
    let list: Vec<VersionDto> = call(c.post("/v1/versions", &VersionsQuery { path }).await)?;
    if json {
        print_json(&list)
    } else if list.is_empty() {
        println!("no versions kept");
    } else {
        println!(
            "{:<19}  {:<20}  {:<8} {:>10}  {:<24} by -> replaced by  archived copy",
            "id", "archived", "reason", "size", "path"
        );
        for v in list {
            println!(
                "{:<19}  {}  {:<8} {:>10}  {:<24} {} -> {}  {}",
                v.id,
                fmt_ms(v.archived_at_ms),
                v.reason,
                human_bytes(v.size),
                v.path,
                &v.modified_by[..7.min(v.modified_by.len())],
                &v.replaced_by[..7.min(v.replaced_by.len())],
                if v.kept_here { v.file.as_str() } else { "(on another device: fetched when restored)" }
            );
        }
        println!("bring one back with `ferry restore PATH --version ID`");
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry restore PATH [--version ID | --at TIME]`: default the newest version.
pub(crate) async fn restore(
    c: &Client,
    json: bool,
    path: PathBuf,
    version: Option<u64>,
    at: Option<String>,
) -> Result<ExitCode> {
    let path = absolute(&path)?.display().to_string();
    let r: RestoredDto = call(c.post("/v1/restore", &RestoreDto { path, version, at }).await)?;
    if json {
        print_json(&r)
    } else {
        println!("restored {} from version {}", r.path, r.version);
        if let Some(a) = r.current_archived_as {
            println!("the content it replaced is kept as {a}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry rewind TARGET --to TIME [--dry-run]`: TARGET is a share (or SHARE/SUBDIR) by name, or
/// a folder path. The text form exits 1 when a step failed (the JSON form reports the errors
/// and exits 0).
pub(crate) async fn rewind(c: &Client, json: bool, target: String, to: String, dry_run: bool) -> Result<ExitCode> {
    // Path-like targets (absolute, starting with '.', or an existing folder named without a
    // '/') are made absolute for the node; anything else goes as a share name.
    let p = Path::new(&target);
    let target = if p.is_absolute() || target.starts_with('.') || (p.is_dir() && !target.contains('/')) {
        absolute(p)?.display().to_string()
    } else {
        target
    };
    let r: RewindDto = call(c.post("/v1/rewind", &RewindReqDto { target, to, dry_run }).await)?;
    if json {
        print_json(&r)
    } else {
        let verb = if r.dry_run { "would" } else { "did" };
        let changed = r.steps.iter().filter(|s| s.action != "keep").count();
        println!("rewind to {}: {verb} change {changed} file(s)", fmt_ms(r.to_ms));
        for st in &r.steps {
            let what = match st.action.as_str() {
                "restore" => "restore old content",
                "undelete" => "bring back         ",
                "keep" => "leave as it is     ",
                _ => "move to history    ",
            };
            let v = st.version.map(|v| format!("  (version {v})")).unwrap_or_default();
            let from = st.from.as_ref().map(|d| format!(", fetched from {d}")).unwrap_or_default();
            let note = st.note.as_ref().map(|n| format!(": {n}")).unwrap_or_default();
            println!("  {what} {}{v}{from}{note}", st.path);
        }
        for e in &r.errors {
            println!("  failed: {e}");
        }
        if !r.errors.is_empty() {
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry conflicts [SHARE]`: both sides of each conflict: device, time and size.
pub(crate) async fn conflicts(c: &Client, json: bool, share: Option<String>) -> Result<ExitCode> {
    let list: Vec<ConflictDto> = call(c.post("/v1/conflicts", &ConflictsQuery { share }).await)?;
    if json {
        print_json(&list)
    } else if list.is_empty() {
        println!("no conflicts");
    } else {
        for k in &list {
            println!("{} ({})", k.path, k.share_label);
            match (&k.current_device_name, k.current_time_ms, k.current_size) {
                (Some(d), Some(t), Some(sz)) => {
                    println!("  current: {:<28} {}  {:>10}", d, fmt_ms(t), human_bytes(sz))
                }
                _ => println!("  current: (deleted)"),
            }
            println!(
                "  copy:    {:<28} {}  {:>10}  {}",
                k.copy_device_name,
                fmt_ms(k.copy_time_ms),
                human_bytes(k.copy_size),
                k.copy
            );
        }
        println!("settle one with `ferry resolve PATH --keep local|remote|both|COPY`");
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry resolve PATH --keep local|remote|both|COPY`: the loser goes to the history.
pub(crate) async fn resolve(c: &Client, json: bool, path: PathBuf, keep: String) -> Result<ExitCode> {
    let path = absolute(&path)?.display().to_string();
    let r: ResolvedDto = call(c.post("/v1/resolve", &ResolveDto { path, keep }).await)?;
    if json {
        print_json(&r)
    } else {
        println!("{}: kept {}; {} losing version(s) moved to the history", r.path, r.kept, r.archived);
        for n in &r.renamed {
            println!("  copy renamed to {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
