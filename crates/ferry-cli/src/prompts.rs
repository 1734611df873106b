//! Prompts waiting for this device's answer (pairing requests, share offers, incoming sends,
//! held mass deletes): `ferry pending`, `ferry accept` and `ferry reject`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use ferry_node::api::{AcceptDto, PendingDto};
use ferry_node::client::Client;

use crate::output::{human_bytes, print_json};
use crate::{absolute, call};

/// `ferry pending`: one line per prompt, by kind.
pub(crate) async fn pending(c: &Client, json: bool) -> Result<ExitCode> {
    let list: Vec<PendingDto> = call(c.get("/v1/pending").await)?;
    if json {
        print_json(&list)
    } else if list.is_empty() {
        println!("nothing pending");
    } else {
        for p in list {
            match p.kind.as_str() {
                "pair" => println!(
                    "{:>4}  pair   {} (owner {}) wants to pair, code {}  [{}]",
                    p.id,
                    p.device_name,
                    p.owner,
                    p.code.unwrap_or_default(),
                    p.device
                ),
                "send" => println!(
                    "{:>4}  send   {} sends {} file(s), {}: {}",
                    p.id,
                    p.device_name,
                    p.files.unwrap_or(0),
                    human_bytes(p.bytes.unwrap_or(0)),
                    p.names.join(", ")
                ),
                "mass-delete" => println!(
                    "{:>4}  delete {} would delete {} of {} files in {:?}: held until you answer",
                    p.id,
                    p.device_name,
                    p.deletes.unwrap_or_default(),
                    p.files.unwrap_or_default(),
                    p.share_label.clone().unwrap_or_default()
                ),
                _ => println!(
                    "{:>4}  share  {} offers the share {:?} ({})",
                    p.id,
                    p.device_name,
                    p.share_label.unwrap_or_default(),
                    p.share_id.unwrap_or_default()
                ),
            }
        }
        println!("answer with `ferry accept ID [--path DIR]` or `ferry reject ID`");
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry accept ID [--path DIR]`: a share offer needs the folder it lands in.
pub(crate) async fn accept(c: &Client, json: bool, id: u64, path: Option<PathBuf>) -> Result<ExitCode> {
    let path = path.map(|p| absolute(&p)).transpose()?.map(|p| p.display().to_string());
    let _: serde_json::Value = call(c.post("/v1/accept", &AcceptDto { id, path }).await)?;
    if !json {
        println!("accepted {id}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferry reject ID`.
pub(crate) async fn reject(c: &Client, json: bool, id: u64) -> Result<ExitCode> {
    let _: serde_json::Value = call(c.post("/v1/reject", &serde_json::json!({ "id": id })).await)?;
    if !json {
        println!("rejected {id}");
    }
    Ok(ExitCode::SUCCESS)
}
