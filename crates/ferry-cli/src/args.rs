//! The command line as clap types: every command, flag and environment variable `ferry`
//! accepts. Parsing only; what each command does lives in the module named after its group.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ferry", version, about = "Keep folders in sync across your own computers, peer to peer.")]
pub(crate) struct Cli {
    /// Ferry's home: identity, database, control socket, ferry.toml.
    #[arg(long, env = "FERRY_HOME", global = true)]
    pub(crate) home: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Args)]
pub(crate) struct DaemonArgs {
    /// UDP address for QUIC, IP:PORT.
    #[arg(long, env = "FERRY_LISTEN")]
    pub(crate) listen: Option<String>,
    /// This device's name as others see it (default: host name).
    #[arg(long, env = "FERRY_NAME")]
    pub(crate) name: Option<String>,
    /// Whose device this is (default: login name).
    #[arg(long, env = "FERRY_OWNER")]
    pub(crate) owner: Option<String>,
    /// Log filter, e.g. `info` or `ferry_node=debug`.
    #[arg(long, env = "FERRY_LOG")]
    pub(crate) log: Option<String>,
    /// Write logs to this file instead of stderr.
    #[arg(long, env = "FERRY_LOG_FILE")]
    pub(crate) log_file: Option<PathBuf>,
    /// Seconds between full safety-net rescans.
    #[arg(long, env = "FERRY_RESCAN_SECS")]
    pub(crate) rescan_secs: Option<u64>,
    /// Do not announce or browse with mDNS (also FERRY_MDNS=0, or `mdns = false` in ferry.toml).
    #[arg(long)]
    pub(crate) no_mdns: bool,
    /// Use only this interface for mDNS (repeatable; default: every non-loopback, up,
    /// multicast-capable interface).
    #[arg(long = "mdns-interface", value_name = "IFACE", env = "FERRY_MDNS_INTERFACE", value_delimiter = ',')]
    pub(crate) mdns_interface: Vec<String>,
    /// Do not talk to KDE Connect devices (phones) (also FERRY_KDECONNECT=0, or `kdeconnect =
    /// false` in ferry.toml).
    #[arg(long)]
    pub(crate) no_kdeconnect: bool,
    /// Listen for KDE Connect on this address only (no broadcast announcements); default: every
    /// address, announced by broadcast on UDP 1716.
    #[arg(long, value_name = "IP", env = "FERRY_KDECONNECT_BIND")]
    pub(crate) kdeconnect_bind: Option<std::net::IpAddr>,
    /// Do not talk to LocalSend devices (also FERRY_LOCALSEND=0, or `localsend = false` in
    /// ferry.toml).
    #[arg(long)]
    pub(crate) no_localsend: bool,
    /// Listen for LocalSend on this address only (no multicast announcements); default: every
    /// address, announced by multicast to 224.0.0.167.
    #[arg(long, value_name = "IP", env = "FERRY_LOCALSEND_BIND")]
    pub(crate) localsend_bind: Option<std::net::IpAddr>,
    /// LocalSend's port, TCP and UDP (default 53317, what LocalSend devices use).
    #[arg(long, value_name = "PORT", env = "FERRY_LOCALSEND_PORT")]
    pub(crate) localsend_port: Option<u16>,
    /// A PIN LocalSend devices must give to send here (prefer `localsend_pin` in ferry.toml: a
    /// flag is visible to every user in `ps`).
    #[arg(long, value_name = "PIN", env = "FERRY_LOCALSEND_PIN", hide_env_values = true)]
    pub(crate) localsend_pin: Option<String>,
    /// Where accepted sends land (default ~/Downloads/Ferry).
    #[arg(long, env = "FERRY_INBOX")]
    pub(crate) inbox: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
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
    Events {
        /// First show the events the node kept (its last 300, progress left out) numbered
        /// after N (each line with `--json` carries its number, `seq`); 0 for all it kept.
        #[arg(long, value_name = "N")]
        since: Option<u64>,
    },
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
        /// The PIN a LocalSend device asks for.
        #[arg(long)]
        pin: Option<String>,
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
pub(crate) enum DevicesCmd {
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
    /// Remove a device (lost or stolen): unpaired, out of every share, its connections refused
    /// from now on; it is told when reachable. No file is deleted on either side. `ferry pair`
    /// toward it pairs again.
    Remove { device: String },
    /// Keep a LocalSend device in the list while it is away (`on`), or list it only when
    /// nearby (`off`).
    Favorite { device: String, state: OnOff },
    /// Ask every address of this computer's networks for LocalSend devices (where multicast
    /// does not reach; it knocks on every address, so only when asked).
    Scan,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum OnOff {
    On,
    Off,
}

#[derive(Subcommand)]
pub(crate) enum NoteCmd {
    /// Send TEXT (`-` reads stdin) to DEVICE (id, unique prefix or name); queued if offline.
    Send {
        device: String,
        text: String,
        /// The PIN a LocalSend device asks for.
        #[arg(long)]
        pin: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum NotesCmd {
    /// Mark a received note read (ID or unique prefix) and tell its sender.
    Read { id: String },
}

#[derive(Subcommand)]
pub(crate) enum ShareCmd {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        assert!(Cli::try_parse_from(["ferry", "accept", "notanumber"]).is_err());
    }
}
