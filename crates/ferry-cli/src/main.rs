//! `ferry`: `ferry daemon` runs a node in the foreground; every other command talks to a
//! running node over its control socket and fails with a clear message when none runs.
//!
//! This file owns the entry point, the dispatch from a parsed command to the module of its
//! group, and the few helpers every command shares (client errors, absolute paths). The
//! command line itself is in `args`; each command group has its own module.

mod args;
mod daemon;
mod devices;
mod events;
mod history;
mod notes;
mod output;
mod prompts;
mod send;
mod shares;
mod status;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use ferry_node::client::{Client, ClientError};
use ferry_node::{Config, Overrides};

use crate::args::{Cli, Cmd};

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

/// Runs one command: `daemon` starts a node; everything else is a client of the node whose
/// home `--home` (or FERRY_HOME, or the default) names. An error is printed by `main` and
/// exits 1; commands that end badly without an error return `ExitCode::FAILURE` themselves.
async fn run(cli: Cli) -> Result<ExitCode> {
    let overrides = Overrides { home: cli.home.clone(), ..Default::default() };
    let cmd = match cli.cmd {
        Cmd::Daemon(args) => return daemon::run(args, overrides).await,
        cmd => cmd,
    };
    let client = Client::new(&Config::home_from(&overrides));
    let (c, json) = (&client, cli.json);
    match cmd {
        Cmd::Daemon(_) => unreachable!("handled above"),
        Cmd::Id => devices::id(c, json).await,
        Cmd::Devices { cmd } => devices::devices(c, json, cmd).await,
        Cmd::Pair { address } => devices::pair(c, json, address).await,
        Cmd::Ping { device } => devices::ping(c, json, device).await,
        Cmd::Status => status::status(c, json).await,
        Cmd::Doctor => status::doctor(c, json, &overrides).await,
        Cmd::Note(cmd) => notes::note(c, json, cmd).await,
        Cmd::Notes { device, cmd } => notes::notes(c, json, device, cmd).await,
        Cmd::Pending => prompts::pending(c, json).await,
        Cmd::Accept { id, path } => prompts::accept(c, json, id, path).await,
        Cmd::Reject { id } => prompts::reject(c, json, id).await,
        Cmd::Share(cmd) => shares::share(c, json, cmd).await,
        Cmd::Rescan { share, full } => shares::rescan(c, json, share, full).await,
        Cmd::Pause => shares::pause(c, json, true).await,
        Cmd::Resume => shares::pause(c, json, false).await,
        Cmd::Versions { path } => history::versions(c, json, path).await,
        Cmd::Restore { path, version, at } => history::restore(c, json, path, version, at).await,
        Cmd::Rewind { target, to, dry_run } => history::rewind(c, json, target, to, dry_run).await,
        Cmd::Conflicts { share } => history::conflicts(c, json, share).await,
        Cmd::Resolve { path, keep } => history::resolve(c, json, path, keep).await,
        Cmd::Send { device, paths, no_wait, pin } => send::send(c, json, device, paths, no_wait, pin).await,
        Cmd::Transfers => send::transfers(c, json).await,
        Cmd::Events { since } => events::events(c, json, since).await,
    }
}

/// A control-API error as the CLI prints it: the client error's own message, nothing added.
fn client_err(e: ClientError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// The answer of one control-API call, its error turned into the CLI's.
fn call<T>(r: Result<T, ClientError>) -> Result<T> {
    r.map_err(client_err)
}

/// `p` made absolute against the current directory: the node runs elsewhere, so a relative
/// path would mean something else there.
fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir().context("no current directory")?.join(p))
    }
}
