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
    /// Do not announce or browse with mDNS (also FERRY_MDNS=0, or `mdns = false` in ferry.toml).
    #[arg(long)]
    no_mdns: bool,
    /// Use only this interface for mDNS (repeatable; default: every non-loopback, up,
    /// multicast-capable interface).
    #[arg(long = "mdns-interface", value_name = "IFACE", env = "FERRY_MDNS_INTERFACE", value_delimiter = ',')]
    mdns_interface: Vec<String>,
    /// Where accepted sends land (default ~/Downloads/Ferry).
    #[arg(long, env = "FERRY_INBOX")]
    inbox: Option<PathBuf>,
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
    /// Ask a device to pair: a nearby device's name, id or id prefix (see `ferry devices`), or
    /// HOST:PORT; both screens show the same code.
    Pair {
        #[arg(value_name = "DEVICE|HOST:PORT")]
        address: String,
    },
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
    /// Why devices do not find or reach each other: mDNS per interface, devices seen, listen
    /// address, inotify watch budget, control socket. Works without a running node too.
    Doctor,
    /// Send files or folders to a paired device (it gets a prompt unless auto-accept is on);
    /// shows progress and waits until the device has everything.
    Send {
        /// Id, unique id prefix or name of a paired device.
        device: String,
        /// Files and folders (folders with everything in them).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Queue the send and return at once (it continues in the node).
        #[arg(long)]
        no_wait: bool,
    },
    /// Active and recent one-shot sends, both directions.
    Transfers,
    /// Rescan every share (or one) now; --full re-hashes every file.
    Rescan {
        share: Option<String>,
        /// Re-hash every file instead of trusting size, mtime and inode (slow).
        #[arg(long)]
        full: bool,
    },
    /// Bring back an archived version of a file as a new change that syncs everywhere; the
    /// current content becomes a version itself. Default: the newest version.
    Restore {
        path: PathBuf,
        /// A version id from `ferry versions`.
        #[arg(long, conflicts_with = "at")]
        version: Option<u64>,
        /// The content the file had at TIME: RFC 3339 or an age like 10m, 2h, 3d.
        #[arg(long)]
        at: Option<String>,
    },
    /// Put a share (SHARE, SHARE/SUBDIR or a folder path) back as it was at TIME: deleted files
    /// come back, changed files get their old content, newer files move to the history.
    Rewind {
        target: String,
        /// RFC 3339 or an age like 10m, 2h, 3d.
        #[arg(long)]
        to: String,
        /// Only print the plan.
        #[arg(long)]
        dry_run: bool,
    },
    /// Conflict copies waiting to be settled, with both sides' device, time and size.
    Conflicts { share: Option<String> },
    /// Settle a conflict: keep this device's content (local), the other's (remote), both
    /// (the copy gets a normal name), or a given copy. The loser goes to the history.
    Resolve {
        path: PathBuf,
        #[arg(long)]
        keep: String,
    },
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
    /// Always try HOST:PORT for DEVICE (where multicast is blocked); kept across restarts.
    AddAddress {
        device: String,
        #[arg(value_name = "HOST:PORT")]
        address: String,
    },
    /// Accept sends from a device without a prompt (`on`), or ask each time (`off`).
    AutoAccept { device: String, state: OnOff },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
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
        /// keep-both (default), newest-wins or this-device-wins.
        #[arg(long)]
        conflict_policy: Option<String>,
        /// staggered[:DAYS[:MAXBYTES]] (default staggered:30:10GiB), trash-can[:DAYS] or off.
        #[arg(long)]
        retention: Option<String>,
        /// Hold a peer's update that deletes more than this percent of the files (default 50).
        #[arg(long)]
        mass_delete_percent: Option<u8>,
    },
    /// Offer a share to a paired device (it gets a prompt).
    Invite { share: String, device: String },
    /// List shares.
    List,
    /// Stop syncing a share (its files stay where they are).
    Remove { share: String },
    /// Show or set a share's conflict policy (keep-both, newest-wins, this-device-wins),
    /// version retention and mass-delete threshold.
    Policy {
        share: String,
        /// keep-both, newest-wins or this-device-wins.
        policy: Option<String>,
        #[arg(long)]
        retention: Option<String>,
        #[arg(long)]
        mass_delete_percent: Option<u8>,
    },
    /// Send-only share: make every other device match this one.
    Override { share: String },
    /// Receive-only share: drop this device's changes (kept as versions) and match the others.
    Revert { share: String },
    /// Clear a share's "needs attention" mark (e.g. after a refused mass delete).
    Ack { share: String },
}

fn main() -> ExitCode {
    ferry_node::one_malloc_arena();
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
        let mdns = if args.no_mdns { Some(false) } else { mdns_env()? };
        return daemon(Overrides {
            mdns,
            mdns_interfaces: args.mdns_interface,
            listen: args.listen,
            name: args.name,
            owner: args.owner,
            log: args.log,
            log_file: args.log_file,
            rescan_secs: args.rescan_secs,
            inbox: args.inbox.map(|p| absolute(&p)).transpose()?,
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
        }
        Cmd::Devices { cmd: Some(DevicesCmd::AddAddress { device, address }) } => {
            let d: DeviceDto = call(c.post("/v1/devices/add-address", &AddAddressDto { device, address }).await)?;
            if json {
                print_json(&d)
            } else {
                println!("{} ({}) will be dialed at: {}", d.name, d.id, d.addresses.join(", "));
            }
        }
        Cmd::Doctor => {
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
        }
        Cmd::Devices { cmd: Some(DevicesCmd::AutoAccept { device, state }) } => {
            let on = matches!(state, OnOff::On);
            let a: AutoAcceptDto =
                call(c.post("/v1/devices/auto-accept", &serde_json::json!({ "name": device, "on": on })).await)?;
            if json {
                print_json(&a)
            } else if a.auto_accept {
                println!("{}: sends are accepted without asking", a.name);
            } else {
                println!("{}: each send asks first", a.name);
            }
        }
        Cmd::Devices { cmd: Some(cmd) } => {
            let (device, muted) = match cmd {
                DevicesCmd::Mute { device } => (device, true),
                DevicesCmd::Unmute { device } => (device, false),
                DevicesCmd::AddAddress { .. } => unreachable!("handled above"),
                DevicesCmd::AutoAccept { .. } => unreachable!("handled above"),
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
                println!("no devices yet: `ferry pair DEVICE` (a nearby name) or `ferry pair HOST:PORT`");
            } else {
                for d in list {
                    let state = match (d.paired, d.connected, d.nearby) {
                        (true, true, _) => "connected",
                        (true, false, _) => "offline",
                        (false, _, true) => "nearby",
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
        Cmd::Share(ShareCmd::Add { path, label, mode, conflict_policy, retention, mass_delete_percent }) => {
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
                        v.file
                    );
                }
                println!("bring one back with `ferry restore PATH --version ID`");
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
        Cmd::Rescan { share, full } => {
            let _: serde_json::Value = call(c.post("/v1/rescan", &RescanDto { share, full }).await)?;
            if !json {
                println!("{} requested", if full { "full re-hash" } else { "rescan" });
            }
        }
        Cmd::Restore { path, version, at } => {
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
        }
        Cmd::Rewind { target, to, dry_run } => {
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
                println!("rewind to {}: {verb} change {} file(s)", fmt_ms(r.to_ms), r.steps.len());
                for st in &r.steps {
                    let what = match st.action.as_str() {
                        "restore" => "restore old content",
                        "undelete" => "bring back        ",
                        _ => "move to history   ",
                    };
                    let v = st.version.map(|v| format!("  (version {v})")).unwrap_or_default();
                    println!("  {what} {}{v}", st.path);
                }
                for e in &r.errors {
                    println!("  failed: {e}");
                }
                if !r.errors.is_empty() {
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Cmd::Conflicts { share } => {
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
        }
        Cmd::Resolve { path, keep } => {
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
        }
        Cmd::Share(ShareCmd::Policy { share, policy, retention, mass_delete_percent }) => {
            let req = SharePolicyDto { share, conflict_policy: policy, retention, mass_delete_percent };
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
        }
        Cmd::Share(ShareCmd::Override { share }) => {
            let r: ModeActionDto = call(c.post("/v1/shares/override", &serde_json::json!({ "name": share })).await)?;
            if json {
                print_json(&r)
            } else {
                println!("override: {} path(s) republished; the other devices will match this one", r.changed);
            }
        }
        Cmd::Share(ShareCmd::Revert { share }) => {
            let r: ModeActionDto = call(c.post("/v1/shares/revert", &serde_json::json!({ "name": share })).await)?;
            if json {
                print_json(&r)
            } else {
                println!("revert: {} local change(s) dropped (kept as versions); matching the others", r.changed);
            }
        }
        Cmd::Share(ShareCmd::Ack { share }) => {
            let st: ShareSettingsDto = call(c.post("/v1/shares/ack", &serde_json::json!({ "name": share })).await)?;
            if json {
                print_json(&st)
            } else {
                println!("{}: attention cleared", st.label);
            }
        }
        Cmd::Send { device, paths, no_wait } => {
            let paths = paths.iter().map(|p| absolute(p).map(|p| p.display().to_string())).collect::<Result<_>>()?;
            return send(c, json, SendDto { device, paths }, no_wait).await;
        }
        Cmd::Transfers => {
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

/// FERRY_MDNS: `0`/`false`/`off`/`no` turn mDNS off, `1`/`true`/`on`/`yes` on.
fn mdns_env() -> Result<Option<bool>> {
    match std::env::var("FERRY_MDNS") {
        Err(_) => Ok(None),
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "0" | "false" | "off" | "no" => Ok(Some(false)),
            "1" | "true" | "on" | "yes" => Ok(Some(true)),
            other => anyhow::bail!("FERRY_MDNS={other:?}: expected 0 or 1"),
        },
    }
}

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

/// `ferry send`: offers the files, then follows the node's events with a progress bar until the
/// receiver has everything (exit 0) or the send is rejected or fails (exit 1).
async fn send(c: &Client, json: bool, req: SendDto, no_wait: bool) -> Result<ExitCode> {
    // Subscribe first so no event of this transfer can be missed.
    let mut stream = if no_wait { None } else { Some(c.events().await.map_err(client_err)?) };
    let t: TransferDto = call(c.post("/v1/send", &req).await)?;
    if no_wait {
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
    }
    let Some(stream) = stream.as_mut() else { unreachable!("subscribed above") };
    let bar = indicatif::ProgressBar::new(t.bytes_total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
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
        let ev = tokio::time::timeout(std::time::Duration::from_secs(2), stream.next()).await;
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
                if state == "done" {
                    bar.set_position(end.bytes_total);
                    bar.finish_and_clear();
                } else {
                    bar.abandon();
                }
                if json {
                    print_json(&end);
                }
                return match state.as_str() {
                    "done" => {
                        if !json {
                            println!(
                                "sent {} file(s), {} to {}",
                                end.files,
                                human_bytes(end.bytes_total),
                                end.device_name
                            );
                        }
                        Ok(ExitCode::SUCCESS)
                    }
                    _ => {
                        let why = end.message.unwrap_or_default();
                        eprintln!("ferry: the send to {} was {state}: {why}", end.device_name);
                        Ok(ExitCode::FAILURE)
                    }
                };
            }
            _ => {}
        }
    }
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
