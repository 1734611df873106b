//! `ferry`: `ferry daemon` runs a node in the foreground; every other command talks to a
//! running node over its control socket and fails with a clear message when none runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use ferry_node::api::*;
use ferry_node::client::{Client, ClientError};
use ferry_node::{Config, Event, Node, Overrides};
use serde::Serialize;

#[derive(Parser)]
#[command(name = "ferry", version, about = "Keep folders in sync across your own computers, peer to peer.")]
struct Cli {
    /// Ferry's home: identity, database, control socket, ferry.toml.
    #[arg(long, env = "FERRY_HOME", global = true)]
    home: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
struct DaemonArgs {
    /// UDP address for QUIC, IP:PORT.
    #[arg(long, env = "FERRY_LISTEN")]
    listen: Option<String>,
    /// This device's name as others see it (default: host name).
    #[arg(long, env = "FERRY_NAME")]
    name: Option<String>,
    /// Whose device this is (default: login name).
    #[arg(long, env = "FERRY_OWNER")]
    owner: Option<String>,
    /// Log filter, e.g. `info` or `ferry_node=debug`.
    #[arg(long, env = "FERRY_LOG")]
    log: Option<String>,
    /// Write logs to this file instead of stderr.
    #[arg(long, env = "FERRY_LOG_FILE")]
    log_file: Option<PathBuf>,
    /// Seconds between full safety-net rescans.
    #[arg(long, env = "FERRY_RESCAN_SECS")]
    rescan_secs: Option<u64>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the node in the foreground (Ctrl-C or SIGTERM stops it in order).
    Daemon(DaemonArgs),
    /// This device's id, name and owner.
    Id,
    /// Device, listen address and the state of each share.
    Status,
    /// Known devices: paired, connected, addresses; `mute`/`unmute` one.
    Devices {
        #[command(subcommand)]
        cmd: Option<DevicesCmd>,
    },
    /// Send a quick note to a paired device.
    #[command(subcommand)]
    Note(NoteCmd),
    /// Notes sent and received, by conversation; `read ID` marks one read.
    Notes {
        /// Only the conversation with this device.
        #[arg(long)]
        device: Option<String>,
        #[command(subcommand)]
        cmd: Option<NotesCmd>,
    },
    /// Ask the device at HOST:PORT to pair; both screens show the same code.
    Pair { address: String },
    /// Prompts waiting for an answer: pairing requests and share offers.
    Pending,
    /// Accept a pending prompt (share offers need --path).
    Accept {
        id: u64,
        /// Folder for an accepted share (created if missing; existing files are kept).
        #[arg(long)]
        path: Option<PathBuf>,
    },
    /// Reject a pending prompt.
    Reject { id: u64 },
    /// Manage shared folders.
    #[command(subcommand)]
    Share(ShareCmd),
    /// The archived versions of a file (or of a whole share, given its folder).
    Versions { path: PathBuf },
    /// Round-trip time to a connected device.
    Ping { device: String },
    /// Follow the node's live events (scans, transfers, prompts, errors).
    Events,
    /// Rescan every share now.
    Rescan,
    /// Pause syncing (no scans, no transfers, no new connections; notes still go). Persisted.
    Pause,
    /// Resume syncing after `ferry pause`.
    Resume,
}

#[derive(Subcommand)]
enum DevicesCmd {
    /// Refuse notes from a device.
    Mute { device: String },
    /// Accept notes from a device again.
    Unmute { device: String },
}

#[derive(Subcommand)]
enum NoteCmd {
    /// Send TEXT (`-` reads stdin) to DEVICE (id, unique prefix or name); queued if offline.
    Send { device: String, text: String },
}

#[derive(Subcommand)]
enum NotesCmd {
    /// Mark a received note read (ID or unique prefix) and tell its sender.
    Read { id: String },
}

#[derive(Subcommand)]
enum ShareCmd {
    /// Share a folder.
    Add {
        path: PathBuf,
        #[arg(long)]
        label: Option<String>,
        /// send-receive (default), send-only or receive-only.
        #[arg(long)]
        mode: Option<String>,
    },
    /// Offer a share to a paired device (it gets a prompt).
    Invite { share: String, device: String },
    /// List shares.
    List,
    /// Stop syncing a share (its files stay where they are).
    Remove { share: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ferry: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let overrides = Overrides { home: cli.home.clone(), ..Default::default() };
    if let Cmd::Daemon(args) = cli.cmd {
        return daemon(Overrides {
            listen: args.listen,
            name: args.name,
            owner: args.owner,
            log: args.log,
            log_file: args.log_file,
            rescan_secs: args.rescan_secs,
            ..overrides
        })
        .await;
    }
    let client = Client::new(&Config::home_from(&overrides));
    let json = cli.json;
    let c = &client;
    match cli.cmd {
        Cmd::Daemon(_) => unreachable!("handled above"),
        Cmd::Id => {
            let id: IdDto = call(c.get("/v1/id").await)?;
            if json {
                print_json(&id)
            } else {
                println!("{}\nname:  {}\nowner: {}", id.device_id, id.name, id.owner);
            }
        }
        Cmd::Status => {
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
                    if let Some(e) = &sh.last_error {
                        println!("    last error: {e}");
                    }
                }
            }
        }
        Cmd::Devices { cmd: Some(cmd) } => {
            let (device, muted) = match cmd {
                DevicesCmd::Mute { device } => (device, true),
                DevicesCmd::Unmute { device } => (device, false),
            };
            let m: DeviceMuteDto =
                call(c.post("/v1/devices/mute", &serde_json::json!({ "name": device, "muted": muted })).await)?;
            if json {
                print_json(&m)
            } else {
                println!("{} {}", m.name, if m.muted { "muted: its notes are refused" } else { "unmuted" });
            }
        }
        Cmd::Note(NoteCmd::Send { device, text }) => {
            let text = if text == "-" {
                let mut buf = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut buf)
                    .context("reading the note from stdin")?;
                buf
            } else {
                text
            };
            let n: NoteDto = call(c.post("/v1/notes/send", &NoteSendDto { device, text }).await)?;
            if json {
                print_json(&n)
            } else {
                println!("note {} to {}: {}", n.id, n.peer_name, n.state);
            }
        }
        Cmd::Notes { cmd: Some(NotesCmd::Read { id }), .. } => {
            let n: NoteDto = call(c.post("/v1/notes/read", &NoteReadDto { id }).await)?;
            if json {
                print_json(&n)
            } else {
                println!("{}  from {}: {}", n.id, n.peer_name, n.text);
            }
        }
        Cmd::Notes { device, cmd: None } => {
            let list: Vec<NoteDto> = call(c.post("/v1/notes", &NotesQuery { device }).await)?;
            if json {
                print_json(&list)
            } else if list.is_empty() {
                println!("no notes yet: `ferry note send DEVICE TEXT`");
            } else {
                let mut peer = String::new();
                for n in list.iter() {
                    if n.peer != peer {
                        peer = n.peer.clone();
                        println!("== {} ({})", n.peer_name, n.peer);
                    }
                    let dir = if n.outgoing { "->" } else { "<-" };
                    let why = n.refused.as_ref().map(|r| format!(" ({r})")).unwrap_or_default();
                    println!(
                        "{}  {}  {dir} {:<9}{why} {}",
                        &n.id[..8.min(n.id.len())],
                        fmt_ms(n.sent_at),
                        n.state,
                        n.text
                    );
                }
            }
        }
        Cmd::Devices { cmd: None } => {
            let list: Vec<DeviceDto> = call(c.get("/v1/devices").await)?;
            if json {
                print_json(&list)
            } else if list.is_empty() {
                println!("no devices yet: `ferry pair HOST:PORT` on one device, `ferry accept` on the other");
            } else {
                for d in list {
                    let state = match (d.paired, d.connected) {
                        (true, true) => "connected",
                        (true, false) => "offline",
                        _ => "not paired",
                    };
                    let rtt = d.rtt_ms.map(|r| format!(" rtt {r:.1} ms")).unwrap_or_default();
                    println!(
                        "{:<16} {:<10} owner {:<10} {}{}  {}",
                        d.name,
                        state,
                        d.owner,
                        d.id,
                        rtt,
                        d.addresses.join(", ")
                    );
                }
            }
        }
        Cmd::Pair { address } => {
            let t: PairTicketDto = call(c.post("/v1/pair", &PairRequestDto { address }).await)?;
            if !json {
                println!("Pairing with {} ({})", t.device_name, t.device);
                println!("Code: {}", t.code);
                println!(
                    "Check that {} shows the same code, then accept there (`ferry pending`, `ferry accept`).",
                    t.device_name
                );
            }
            let o: PairOutcomeDto = call(c.get(&format!("/v1/pair/{}", t.ticket)).await)?;
            if json {
                print_json(
                    &serde_json::json!({"device": t.device, "code": t.code, "state": o.state, "message": o.message}),
                );
            } else {
                println!("{}: {}", o.state, o.message);
            }
            if o.state != "accepted" {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Pending => {
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
        }
        Cmd::Accept { id, path } => {
            let path = path.map(|p| absolute(&p)).transpose()?.map(|p| p.display().to_string());
            let _: serde_json::Value = call(c.post("/v1/accept", &AcceptDto { id, path }).await)?;
            if !json {
                println!("accepted {id}");
            }
        }
        Cmd::Reject { id } => {
            let _: serde_json::Value = call(c.post("/v1/reject", &serde_json::json!({ "id": id })).await)?;
            if !json {
                println!("rejected {id}");
            }
        }
        Cmd::Share(ShareCmd::Add { path, label, mode }) => {
            let path = absolute(&path)?.display().to_string();
            let s: ShareDto = call(c.post("/v1/shares/add", &ShareAddDto { path, label, mode }).await)?;
            if json {
                print_json(&s)
            } else {
                println!("sharing {} as {:?} ({}, {})", s.path, s.label, s.id, s.mode);
            }
        }
        Cmd::Share(ShareCmd::Invite { share, device }) => {
            let s: ShareDto = call(c.post("/v1/shares/invite", &InviteDto { share, device }).await)?;
            if json {
                print_json(&s)
            } else {
                println!("offered {:?}; the other device accepts it with `ferry accept`", s.label);
            }
        }
        Cmd::Share(ShareCmd::List) => {
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
        }
        Cmd::Share(ShareCmd::Remove { share }) => {
            let s: ShareDto = call(c.post("/v1/shares/remove", &serde_json::json!({ "name": share })).await)?;
            if json {
                print_json(&s)
            } else {
                println!("stopped sharing {} (files left in place)", s.path);
            }
        }
        Cmd::Versions { path } => {
            let path = absolute(&path)?.display().to_string();
            let list: Vec<VersionDto> = call(c.post("/v1/versions", &VersionsQuery { path }).await)?;
            if json {
                print_json(&list)
            } else if list.is_empty() {
                println!("no versions kept");
            } else {
                for v in list {
                    println!(
                        "{}  {:<8} {:>10}  {}  replaced by {}  {}",
                        fmt_ms(v.archived_at_ms),
                        v.reason,
                        human_bytes(v.size),
                        v.path,
                        &v.replaced_by[..7.min(v.replaced_by.len())],
                        v.file
                    );
                }
            }
        }
        Cmd::Ping { device } => {
            let p: PingDto = call(c.post("/v1/ping", &serde_json::json!({ "name": device })).await)?;
            if json {
                print_json(&p)
            } else {
                println!("{}: {:.2} ms", p.device, p.rtt_ms);
            }
        }
        Cmd::Events => {
            let mut stream = client.events().await.map_err(client_err)?;
            while let Some(ev) = stream.next().await {
                let ev = ev.map_err(client_err)?;
                if json {
                    println!("{}", serde_json::to_string(&ev)?);
                } else {
                    println!("{}", describe(&ev));
                }
            }
        }
        Cmd::Rescan => {
            let _: serde_json::Value = call(c.post("/v1/rescan", &serde_json::json!({})).await)?;
            if !json {
                println!("rescan requested");
            }
        }
        Cmd::Pause => {
            let _: serde_json::Value = call(c.post("/v1/pause", &serde_json::json!({})).await)?;
            if !json {
                println!("syncing paused");
            }
        }
        Cmd::Resume => {
            let _: serde_json::Value = call(c.post("/v1/resume", &serde_json::json!({})).await)?;
            if !json {
                println!("syncing resumed");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn daemon(overrides: Overrides) -> Result<ExitCode> {
    let cfg = Config::load(overrides)?;
    let _guard = init_logging(&cfg)?;
    let node = Node::start(cfg).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("Ferry {} listening on {} (udp)", node.device_id(), node.listen_addr());
    println!("control socket: {}", node.home().join("ferry.sock").display());
    let serve = {
        let n = node.clone();
        tokio::spawn(async move { n.serve_control().await })
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let result = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
        r = serve => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::anyhow!("{e}")),
            Err(e) => Err(anyhow::anyhow!("control API task: {e}")),
        },
    };
    node.shutdown().await;
    result.map(|_| ExitCode::SUCCESS)
}

fn init_logging(cfg: &Config) -> Result<Option<tracing_appender::non_blocking::WorkerGuard>> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(&cfg.log).with_context(|| format!("bad log filter {:?}", cfg.log))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match &cfg.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open log file {}", path.display()))?;
            let (writer, guard) = tracing_appender::non_blocking(file);
            builder.with_writer(writer).with_ansi(false).init();
            Ok(Some(guard))
        }
        None => {
            builder.with_writer(std::io::stderr).init();
            Ok(None)
        }
    }
}

fn client_err(e: ClientError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn call<T>(r: Result<T, ClientError>) -> Result<T> {
    r.map_err(client_err)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir().context("no current directory")?.join(p))
    }
}

fn print_json<T: Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")));
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

fn fmt_ms(ms: i64) -> String {
    let secs = ms / 1000;
    let (d, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm), UTC.
    let z = d + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn describe(ev: &Event) -> String {
    match ev {
        Event::DeviceConnected { name, address, .. } => format!("connected     {name} at {address}"),
        Event::DeviceDisconnected { name, reason, .. } => format!("disconnected  {name}: {reason}"),
        Event::PromptAdded { id, kind, device_name, code, label, .. } => match kind.as_str() {
            "pair" => format!("prompt {id}     {device_name} wants to pair, code {}", code.clone().unwrap_or_default()),
            _ => format!("prompt {id}     {device_name} offers the share {:?}", label.clone().unwrap_or_default()),
        },
        Event::PromptResolved { id, accepted } => {
            format!("prompt {id}     {}", if *accepted { "accepted" } else { "rejected" })
        }
        Event::Paired { name, .. } => format!("paired        {name}"),
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
        Event::Error { message, .. } => format!("error         {message}"),
        Event::NoteReceived { from_name, text, id, .. } => {
            format!("note          from {from_name} ({}): {text}", &id[..8.min(id.len())])
        }
        Event::NoteState { id, state } => format!("note {}  {state}", &id[..8.min(id.len())]),
        Event::Lagged { missed } => format!("(missed {missed} events)"),
        Event::SyncPaused { paused } => format!("syncing       {}", if *paused { "paused" } else { "resumed" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_sizes_format() {
        assert_eq!(fmt_ms(0), "1970-01-01 00:00:00Z");
        assert_eq!(fmt_ms(1_767_225_600_000), "2026-01-01 00:00:00Z");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        assert!(Cli::try_parse_from(["ferry", "accept", "notanumber"]).is_err());
    }
}
