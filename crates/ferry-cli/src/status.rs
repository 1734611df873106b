//! `ferry status` (each share's state and the sync summary table) and `ferry doctor` (why
//! devices do not find or reach each other; answers without a running node too).

use std::process::ExitCode;

use anyhow::Result;
use ferry_node::Overrides;
use ferry_node::api::{DoctorDto, ShareStatusDto, StatusDto};
use ferry_node::client::{Client, ClientError};

use crate::call;
use crate::output::{human_bytes, print_json};

/// `ferry status`: this device, its listen address and every share, then the summary table.
pub(crate) async fn status(c: &Client, json: bool) -> Result<ExitCode> {
    let s: StatusDto = call(c.get("/v1/status").await)?;
    if json {
        print_json(&s)
    } else {
        println!("{} ({}), owner {}", s.name, s.device_id, s.owner);
        println!("listening on {} (udp), {} device(s) connected", s.listen, s.connected);
        if s.shares.is_empty() {
            println!("no shares yet: `ferry share add PATH`");
        }
        for sh in &s.shares {
            let sync = if sh.in_sync { "in sync" } else { "not in sync" };
            println!(
                "  {:<16} {:<13} {:<9} {:<11} {} files, {} ({}) {}",
                sh.label,
                sh.mode,
                sh.state,
                sync,
                sh.files,
                human_bytes(sh.bytes),
                sh.id,
                sh.path
            );
            if sh.need > 0 {
                println!("    {} item(s) still to sync", sh.need);
            }
            print_failed(sh);
            if let Some(e) = &sh.last_error {
                println!("    last error: {e}");
            }
            if sh.local_changes > 0 {
                println!(
                    "    {} local change(s) not sent (receive-only; `ferry share revert` drops them)",
                    sh.local_changes
                );
            }
            if let Some(a) = &sh.attention {
                println!("    NEEDS ATTENTION: {a}");
            }
            println!("    conflicts: {}, versions: {}", sh.conflict_policy, sh.retention);
        }
        if !s.shares.is_empty() {
            print!("{}", summary_table(&s.shares));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A share's items that cannot be synced, one a line, with why (Syncthing's "Failed Items").
fn print_failed(sh: &ShareStatusDto) {
    let count = sh.failed_items.len() as u64 + sh.failed_more;
    if count == 0 {
        return;
    }
    println!("    {count} item(s) cannot be synced:");
    for item in &sh.failed_items {
        println!("      {}: {}", item.path, item.reason);
    }
    if sh.failed_more > 0 {
        println!("      ... and {} more", sh.failed_more);
    }
}

/// `ferry doctor`: the running node's report, or (no node, or one that does not answer) the
/// report built offline from the same config, so the command always answers.
pub(crate) async fn doctor(c: &Client, json: bool, overrides: &Overrides) -> Result<ExitCode> {
    let report = match c.get::<DoctorDto>("/v1/doctor").await {
        Ok(r) => r,
        Err(ClientError::NotRunning { .. }) => ferry_node::doctor::offline(overrides.clone()).await,
        Err(e) => {
            let mut r = ferry_node::doctor::offline(overrides.clone()).await;
            r.problems.insert(0, format!("the running node did not answer the doctor: {e}"));
            r
        }
    };
    if json {
        print_json(&report)
    } else {
        print_doctor(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The doctor report as text: node, listen address, mDNS per interface, devices seen,
/// inotify budget, then the problems found.
fn print_doctor(d: &DoctorDto) {
    let running = if d.daemon_running { "running" } else { "not running" };
    println!("node:            {running}{}", d.name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default());
    if let Some(id) = &d.device_id {
        println!("device id:       {id}");
    }
    println!("control socket:  {} ({})", d.control_socket, d.control_socket_state);
    println!("listen (QUIC):   {} udp", d.listen);
    let m = &d.mdns;
    println!(
        "mDNS:            {}{}",
        m.state,
        m.service.as_ref().map(|s| format!(", announcing {s}")).unwrap_or_default()
    );
    for i in &m.interfaces {
        let sent = match i.sent {
            Some(0) => "nothing sent yet".to_string(),
            Some(n) => format!("sent {n} packets"),
            None => "would be used".to_string(),
        };
        let answered = match i.answered {
            Some(true) => format!(", answered by {}", i.peers.join(", ")),
            Some(false) => ", no answer from another Ferry device".to_string(),
            None => String::new(),
        };
        println!("  {:<14} {:<28} {sent}{answered}", i.name, i.addresses.join(" "));
    }
    if !m.nearby.is_empty() {
        println!("devices seen:");
        for n in &m.nearby {
            let p = if n.paired { "paired" } else { "not paired" };
            println!("  {:<16} {:<10} {}  {}", n.name, p, n.id, n.addresses.join(", "));
        }
    }
    let k = &d.kdeconnect;
    let detail = match (k.port, &k.reason) {
        (Some(port), _) => format!(", tcp {port}, {} nearby, {} connected", k.nearby, k.connected),
        (None, Some(r)) if k.state != "off" => format!(": {r}"),
        _ => String::new(),
    };
    println!("KDE Connect:     {}{detail}", k.state);
    let ino = &d.inotify;
    println!(
        "inotify watches: {} in use of {} (shares need {})",
        ino.watches_in_use.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
        ino.max_user_watches.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
        ino.watches_needed
    );
    if d.problems.is_empty() {
        println!("no problems found");
    } else {
        println!("problems:");
        for p in &d.problems {
            println!("  - {p}");
        }
    }
}

/// The sync summary of every share as a table, like pysyncml's: one row for the last session
/// and one for everything since the node started.
fn summary_table(shares: &[ShareStatusDto]) -> String {
    let line = "+----------------------------+-----------------------+-----------------------+-----------+--------+\n";
    let mut out = String::new();
    out.push_str(line);
    out.push_str(
        "|                            |         Local         |        Remote         |           |        |\n",
    );
    out.push_str(
        "| Share                      |   Add   Mod   Del     |   Add   Mod   Del     | Conflicts | Errors |\n",
    );
    out.push_str(line);
    for sh in shares {
        let rows = [
            ("last session", sh.summary.last_session.clone().unwrap_or_default()),
            ("since start", sh.summary.since_start.clone()),
        ];
        for (what, c) in rows {
            let name: String = format!("{} ({what})", sh.label).chars().take(26).collect();
            out.push_str(&format!(
                "| {name:<26} | {:>5} {:>5} {:>5}     | {:>5} {:>5} {:>5}     | {:>9} | {:>6} |\n",
                c.local_adds,
                c.local_changes,
                c.local_deletes,
                c.remote_adds,
                c.remote_changes,
                c.remote_deletes,
                c.conflicts,
                c.errors
            ));
        }
    }
    out.push_str(line);
    out
}
