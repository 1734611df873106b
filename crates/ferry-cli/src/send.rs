//! One-shot sends: `ferry send` (offer files, then follow the transfer with a progress bar until
//! the receiver has everything) and `ferry transfers` (active and recent sends, both ways).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use ferry_node::Event;
use ferry_node::api::{SendDto, TransferDto};
use ferry_node::client::{Client, EventStream};
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::{human_bytes, print_json};
use crate::{absolute, call, client_err};

/// How long the event stream may stay quiet before the transfer's state is asked for directly
/// (events can be missed when the stream lags, and a quiet send still needs its bar updated).
const QUIET: Duration = Duration::from_secs(2);

/// `ferry send DEVICE PATH... [--no-wait]`: offers the files, then follows the node's events
/// with a progress bar until the receiver has everything (exit 0) or the send is rejected or
/// fails (exit 1). With --no-wait it returns once the send is queued.
pub(crate) async fn send(
    c: &Client,
    json: bool,
    device: String,
    paths: Vec<PathBuf>,
    no_wait: bool,
    pin: Option<String>,
) -> Result<ExitCode> {
    let paths = paths.iter().map(|p| absolute(p).map(|p| p.display().to_string())).collect::<Result<_>>()?;
    let req = SendDto { device, paths, pin };
    // Subscribe first so no event of this transfer can be missed.
    let stream = if no_wait { None } else { Some(c.events(None).await.map_err(client_err)?) };
    let t: TransferDto = call(c.post("/v1/send", &req).await)?;
    let Some(stream) = stream else {
        if json {
            print_json(&t);
        } else {
            println!(
                "queued {} file(s), {} for {} (transfer {}); follow it with `ferry transfers`",
                t.files,
                human_bytes(t.bytes_total),
                t.device_name,
                &t.id[..8]
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    follow(c, json, &t, stream).await
}

/// Follows transfer `t` on `stream` until it ends: done (exit 0), rejected or failed (exit 1).
async fn follow(c: &Client, json: bool, t: &TransferDto, mut stream: EventStream) -> Result<ExitCode> {
    let bar = progress_bar(t.bytes_total);
    bar.set_message(format!("waiting for {} to connect", t.device_name));
    if !json {
        bar.println(format!(
            "sending {} file(s), {} to {} (transfer {})",
            t.files,
            human_bytes(t.bytes_total),
            t.device_name,
            &t.id[..8]
        ));
    }
    let path = "/v1/transfer";
    let arg = serde_json::json!({ "name": t.id });
    loop {
        let ev = tokio::time::timeout(QUIET, stream.next()).await.map(|e| e.map(|e| e.map(|s| s.event)));
        let state = match ev {
            Ok(Some(Ok(Event::SendProgress { id, done, .. }))) if id == t.id => {
                bar.set_position(done);
                continue;
            }
            Ok(Some(Ok(Event::SendState { id, state, .. }))) if id == t.id => state,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(client_err(e)),
            Ok(None) => anyhow::bail!("the node went away; the send continues when it is back (`ferry transfers`)"),
            // Quiet for a while (or events were missed): ask for the state.
            Err(_) => {
                let now: TransferDto = call(c.post(path, &arg).await)?;
                bar.set_position(now.bytes_done);
                now.state
            }
        };
        match state.as_str() {
            "offered" => bar.set_message(format!("waiting for {} to accept", t.device_name)),
            "active" => bar.set_message(format!("sending to {}", t.device_name)),
            "done" | "rejected" | "failed" => {
                let end: TransferDto = call(c.post(path, &arg).await)?;
                return Ok(finish(json, &state, end, bar));
            }
            _ => {}
        }
    }
}

/// The bar `ferry send` draws on stderr: bytes sent of the total, rate and time left.
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Reports a send that ended in `state` ("done", "rejected" or "failed"; `end` is its final
/// record) and picks the exit code.
fn finish(json: bool, state: &str, end: TransferDto, bar: ProgressBar) -> ExitCode {
    if state == "done" {
        bar.set_position(end.bytes_total);
        bar.finish_and_clear();
    } else {
        bar.abandon();
    }
    if json {
        print_json(&end);
    }
    match state {
        "done" => {
            if !json {
                println!("sent {} file(s), {} to {}", end.files, human_bytes(end.bytes_total), end.device_name);
            }
            ExitCode::SUCCESS
        }
        _ => {
            let why = end.message.unwrap_or_default();
            eprintln!("ferry: the send to {} was {state}: {why}", end.device_name);
            ExitCode::FAILURE
        }
    }
}

/// `ferry transfers`: active and recent sends, both directions.
pub(crate) async fn transfers(c: &Client, json: bool) -> Result<ExitCode> {
    let list: Vec<TransferDto> = call(c.get("/v1/transfers").await)?;
    if json {
        print_json(&list)
    } else if list.is_empty() {
        println!("no transfers yet: `ferry send DEVICE FILE...`");
    } else {
        for t in list {
            let arrow = if t.direction == "out" { "->" } else { "<-" };
            let rate = if t.rate > 0.0 { format!(" {}/s", human_bytes(t.rate as u64)) } else { String::new() };
            let why = t.message.map(|m| format!(" ({m})")).unwrap_or_default();
            println!(
                "{}  {arrow} {:<14} {:<8}{why} {} file(s) {}/{}{rate}  {}",
                &t.id[..8.min(t.id.len())],
                t.device_name,
                t.state,
                t.files,
                human_bytes(t.bytes_done),
                human_bytes(t.bytes_total),
                t.names.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
