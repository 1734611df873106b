//! `ferry events`: the node's live event stream, one line per event (as JSON with `--json`),
//! and the human wording of each event.

use std::process::ExitCode;

use anyhow::Result;
use ferry_node::Event;
use ferry_node::client::Client;

use crate::client_err;
use crate::output::{fmt_ms, human_bytes};

/// `ferry events [--since N]`: the kept events after N if asked, then the live ones until the
/// node goes away. Human lines start with the time of day (UTC) the node emitted them.
pub(crate) async fn events(client: &Client, json: bool, since: Option<u64>) -> Result<ExitCode> {
    let mut stream = client.events(since).await.map_err(client_err)?;
    while let Some(ev) = stream.next().await {
        let ev = ev.map_err(client_err)?;
        if json {
            println!("{}", serde_json::to_string(&ev)?);
        } else {
            println!("{}  {}", clock(ev.at_ms), describe(&ev.event));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `HH:MM:SSZ`: the time of day in UTC, as the CLI's other dates.
fn clock(at_ms: u64) -> String {
    let full = fmt_ms(at_ms as i64);
    full.split_once(' ').map_or(full.clone(), |(_, time)| time.to_string())
}

/// One event as one line of text; the padded first word keeps the lines in columns.
fn describe(ev: &Event) -> String {
    match ev {
        Event::DeviceConnected { name, address, .. } => format!("connected     {name} at {address}"),
        Event::DeviceDisconnected { name, reason, .. } => format!("disconnected  {name}: {reason}"),
        Event::PromptAdded { id, kind, device_name, code, label, .. } => match kind.as_str() {
            "pair" => format!("prompt {id}     {device_name} wants to pair, code {}", code.clone().unwrap_or_default()),
            "mass-delete" => format!(
                "prompt {id}     {device_name} would delete most of {:?}: held (`ferry pending`)",
                label.clone().unwrap_or_default()
            ),
            _ => format!("prompt {id}     {device_name} offers the share {:?}", label.clone().unwrap_or_default()),
        },
        Event::PromptResolved { id, accepted } => {
            format!("prompt {id}     {}", if *accepted { "accepted" } else { "rejected" })
        }
        Event::Paired { name, .. } => format!("paired        {name}"),
        Event::DeviceRemoved { name, by: None, .. } => format!("removed       {name}: its connections are refused"),
        Event::DeviceRemoved { by: Some(by), .. } => format!("removed by    {by}: no longer syncing with it"),
        Event::DeviceRefused { reason, .. } => format!("refused       {reason}"),
        Event::ScanFinished { share, changes, seen, millis, .. } => {
            format!("scanned       {share}: {seen} entries, {changes} changed, {millis} ms")
        }
        Event::IndexSent { share, records, .. } => format!("index sent    {share}: {records} records"),
        Event::IndexReceived { share, records, .. } => format!("index in      {share}: {records} records"),
        Event::TransferProgress { path, done, total, bytes_per_sec, .. } => {
            let pct = if *total == 0 { 100.0 } else { *done as f64 * 100.0 / *total as f64 };
            let eta = if *bytes_per_sec > 0.0 { (*total - *done) as f64 / bytes_per_sec } else { 0.0 };
            format!(
                "transfer      {path}: {pct:5.1}% of {} at {}/s, eta {eta:.0}s",
                human_bytes(*total),
                human_bytes(*bytes_per_sec as u64)
            )
        }
        Event::Applied { path, action, .. } => format!("{action:<13} {path}"),
        Event::Conflict { path, copy, .. } => format!("conflict      {path}: this device's version kept as {copy}"),
        Event::InSync { share } => format!("in sync       {share}"),
        Event::FailedItems { label, count, new, .. } => {
            let shown: Vec<String> = new.iter().map(|i| format!("{} ({})", i.path, i.reason)).collect();
            format!("cannot sync   {label}: {count} item(s); new: {}", shown.join("; "))
        }
        Event::Error { message, .. } => format!("error         {message}"),
        Event::NoteReceived { from_name, text, id, .. } => {
            format!("note          from {from_name} ({}): {text}", &id[..8.min(id.len())])
        }
        Event::NoteState { id, state } => format!("note {}  {state}", &id[..8.min(id.len())]),
        Event::Lagged { missed } => format!("(missed {missed} events)"),
        Event::SendOffered { id, device_name, direction, files, bytes, names, .. } => {
            let (verb, prep) = if direction == "out" { ("offered", "to") } else { ("offer", "from") };
            format!(
                "send {}  {verb} {prep} {device_name}: {files} file(s), {} ({})",
                &id[..8.min(id.len())],
                human_bytes(*bytes),
                names.join(", ")
            )
        }
        Event::SendState { id, state, message, .. } => {
            let why = message.as_ref().map(|m| format!(": {m}")).unwrap_or_default();
            format!("send {}  {state}{why}", &id[..8.min(id.len())])
        }
        Event::SendProgress { id, done, total, bytes_per_sec, .. } => {
            let pct = if *total == 0 { 100.0 } else { *done as f64 * 100.0 / *total as f64 };
            format!(
                "send {}  {pct:5.1}% of {} at {}/s",
                &id[..8.min(id.len())],
                human_bytes(*total),
                human_bytes(*bytes_per_sec as u64)
            )
        }
        Event::SyncSummary { label, counts: c, .. } => format!(
            "summary       {label}: local +{} ~{} -{}, remote +{} ~{} -{}, {} conflict(s), {} error(s)",
            c.local_adds,
            c.local_changes,
            c.local_deletes,
            c.remote_adds,
            c.remote_changes,
            c.remote_deletes,
            c.conflicts,
            c.errors
        ),
        Event::SyncPaused { paused } => format!("syncing       {}", if *paused { "paused" } else { "resumed" }),
    }
}
