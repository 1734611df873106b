//! `ferry daemon`: turns the daemon flags and environment into config overrides, installs the
//! log subscriber, runs the node in the foreground and stops it in order on Ctrl-C or SIGTERM.

use std::process::ExitCode;

use anyhow::{Context, Result};
use ferry_node::{Config, Node, Overrides};

use crate::absolute;
use crate::args::DaemonArgs;

/// `ferry daemon`: the flags (or their FERRY_* variables) override ferry.toml; `base` carries
/// the global `--home`.
pub(crate) async fn run(args: DaemonArgs, base: Overrides) -> Result<ExitCode> {
    let mdns = if args.no_mdns { Some(false) } else { switch_env("FERRY_MDNS")? };
    let kdeconnect = if args.no_kdeconnect { Some(false) } else { switch_env("FERRY_KDECONNECT")? };
    let localsend = if args.no_localsend { Some(false) } else { switch_env("FERRY_LOCALSEND")? };
    daemon(Overrides {
        mdns,
        kdeconnect,
        kdeconnect_bind: args.kdeconnect_bind,
        localsend,
        localsend_bind: args.localsend_bind,
        localsend_port: args.localsend_port,
        localsend_pin: args.localsend_pin,
        mdns_interfaces: args.mdns_interface,
        listen: args.listen,
        name: args.name,
        owner: args.owner,
        log: args.log,
        log_file: args.log_file,
        rescan_secs: args.rescan_secs,
        inbox: args.inbox.map(|p| absolute(&p)).transpose()?,
        ..base
    })
    .await
}

/// An on/off variable (FERRY_MDNS, FERRY_KDECONNECT, FERRY_LOCALSEND): `0`/`false`/`off`/`no` turn it off,
/// `1`/`true`/`on`/`yes` on.
fn switch_env(var: &str) -> Result<Option<bool>> {
    match std::env::var(var) {
        Err(_) => Ok(None),
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "0" | "false" | "off" | "no" => Ok(Some(false)),
            "1" | "true" | "on" | "yes" => Ok(Some(true)),
            other => anyhow::bail!("{var}={other:?}: expected 0 or 1"),
        },
    }
}

/// Starts the node and serves its control socket until Ctrl-C, SIGTERM or a control-API
/// failure, then shuts the node down in order.
async fn daemon(overrides: Overrides) -> Result<ExitCode> {
    let cfg = Config::load(overrides)?;
    // Held until the node has stopped so the last log lines are flushed to the file.
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

/// Installs the tracing subscriber with the `log` filter, on stderr or appended to `log_file`;
/// returns the guard that flushes the non-blocking file writer.
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
