//! Shared folders and syncing over them: `ferry share` (add, invite, list, remove, policy,
//! override, revert, ack), `ferry rescan`, and `ferry pause` / `ferry resume`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use ferry_node::api::{
    InviteDto, ModeActionDto, RescanDto, ShareAddDto, ShareDto, SharePolicyDto, ShareSettingsDto, check_share_policy,
};
use ferry_node::client::Client;

use crate::args::ShareCmd;
use crate::output::print_json;
use crate::{absolute, call};

/// `ferry share SUBCOMMAND`.
pub(crate) async fn share(c: &Client, json: bool, cmd: ShareCmd) -> Result<ExitCode> {
    match cmd {
        ShareCmd::Add { path, label, mode, conflict_policy, retention, mass_delete_percent } => {
            add(c, json, path, ShareAddOptions { label, mode, conflict_policy, retention, mass_delete_percent }).await
        }
        ShareCmd::Invite { share, device } => invite(c, json, share, device).await,
        ShareCmd::List => list(c, json).await,
        ShareCmd::Remove { share } => remove(c, json, share).await,
        ShareCmd::Policy { share, policy, retention, mass_delete_percent } => {
            let req = SharePolicyDto { share, conflict_policy: policy, retention, mass_delete_percent };
            set_policy(c, json, req).await
        }
        ShareCmd::Override { share } => override_others(c, json, share).await,
        ShareCmd::Revert { share } => revert(c, json, share).await,
        ShareCmd::Ack { share } => ack(c, json, share).await,
    }
}

/// The optional flags of `ferry share add`.
struct ShareAddOptions {
    label: Option<String>,
    mode: Option<String>,
    conflict_policy: Option<String>,
    retention: Option<String>,
    mass_delete_percent: Option<u8>,
}

/// `ferry share add PATH`: the policy flags are validated before the share is created (a bad
/// one creates nothing), then set on the new share.
async fn add(c: &Client, json: bool, path: PathBuf, o: ShareAddOptions) -> Result<ExitCode> {
    let ShareAddOptions { label, mode, conflict_policy, retention, mass_delete_percent } = o;
    // Check the policies before creating anything.
    check_share_policy(conflict_policy.as_deref(), retention.as_deref(), mass_delete_percent)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = absolute(&path)?.display().to_string();
    let s: ShareDto = call(c.post("/v1/shares/add", &ShareAddDto { path, label, mode }).await)?;
    if conflict_policy.is_some() || retention.is_some() || mass_delete_percent.is_some() {
        let req = SharePolicyDto { share: s.id.clone(), conflict_policy, retention, mass_delete_percent };
        let _: ShareSettingsDto = call(c.post("/v1/shares/policy", &req).await)?;
    }
    if json {
        print_json(&s)
    } else {
        println!("sharing {} as {:?} ({}, {})", s.path, s.label, s.id, s.mode);
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry share invite SHARE DEVICE`: the device gets a prompt.
async fn invite(c: &Client, json: bool, share: String, device: String) -> Result<ExitCode> {
    let s: ShareDto = call(c.post("/v1/shares/invite", &InviteDto { share, device }).await)?;
    if json {
        print_json(&s)
    } else {
        println!("offered {:?}; the other device accepts it with `ferry accept`", s.label);
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry share list`.
async fn list(c: &Client, json: bool) -> Result<ExitCode> {
    let list: Vec<ShareDto> = call(c.get("/v1/shares").await)?;
    if json {
        print_json(&list)
    } else if list.is_empty() {
        println!("no shares yet: `ferry share add PATH`");
    } else {
        for s in list {
            println!("{:<16} {}  {:<13} {}  {} device(s)", s.label, s.id, s.mode, s.path, s.devices.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry share remove SHARE`: stop syncing; the files stay.
async fn remove(c: &Client, json: bool, share: String) -> Result<ExitCode> {
    let s: ShareDto = call(c.post("/v1/shares/remove", &serde_json::json!({ "name": share })).await)?;
    if json {
        print_json(&s)
    } else {
        println!("stopped sharing {} (files left in place)", s.path);
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry share policy SHARE [POLICY] [--retention R] [--mass-delete-percent N]`: with no
/// setting given it only shows the current ones.
async fn set_policy(c: &Client, json: bool, req: SharePolicyDto) -> Result<ExitCode> {
    let st: ShareSettingsDto = call(c.post("/v1/shares/policy", &req).await)?;
    if json {
        print_json(&st)
    } else {
        println!(
            "{}: conflicts {}, retention {}, mass-delete guard at {}%",
            st.label, st.conflict_policy, st.retention, st.mass_delete_percent
        );
        if let Some(a) = st.attention {
            println!("needs attention: {a}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry share override SHARE` (send-only): make every other device match this one.
async fn override_others(c: &Client, json: bool, share: String) -> Result<ExitCode> {
    let r: ModeActionDto = call(c.post("/v1/shares/override", &serde_json::json!({ "name": share })).await)?;
    if json {
        print_json(&r)
    } else {
        println!("override: {} path(s) republished; the other devices will match this one", r.changed);
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry share revert SHARE` (receive-only): drop this device's changes, kept as versions.
async fn revert(c: &Client, json: bool, share: String) -> Result<ExitCode> {
    let r: ModeActionDto = call(c.post("/v1/shares/revert", &serde_json::json!({ "name": share })).await)?;
    if json {
        print_json(&r)
    } else {
        println!("revert: {} local change(s) dropped (kept as versions); matching the others", r.changed);
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry share ack SHARE`: clear the "needs attention" mark.
async fn ack(c: &Client, json: bool, share: String) -> Result<ExitCode> {
    let st: ShareSettingsDto = call(c.post("/v1/shares/ack", &serde_json::json!({ "name": share })).await)?;
    if json {
        print_json(&st)
    } else {
        println!("{}: attention cleared", st.label);
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry rescan [SHARE] [--full]`: asks the node; the scan itself runs there.
pub(crate) async fn rescan(c: &Client, json: bool, share: Option<String>, full: bool) -> Result<ExitCode> {
    let _: serde_json::Value = call(c.post("/v1/rescan", &RescanDto { share, full }).await)?;
    if !json {
        println!("{} requested", if full { "full re-hash" } else { "rescan" });
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry pause` / `ferry resume`: the node persists the state.
pub(crate) async fn pause(c: &Client, json: bool, paused: bool) -> Result<ExitCode> {
    if paused {
        let _: serde_json::Value = call(c.post("/v1/pause", &serde_json::json!({})).await)?;
        if !json {
            println!("syncing paused");
        }
    } else {
        let _: serde_json::Value = call(c.post("/v1/resume", &serde_json::json!({})).await)?;
        if !json {
            println!("syncing resumed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
