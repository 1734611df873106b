//! `kde-peer`: a KDE Connect protocol 8 (or 7) device for scripts and tests (see
//! `ferry_e2e::kdepeer`). Commands are JSON lines on stdin, events JSON lines on stdout:
//!
//! ```text
//! kde-peer --name N --id ID [--protocol 8] [--type phone] --state DIR
//!          (--connect HOST:PORT | --listen [--announce IP] [--discover]) [--bind IP] [--timeout SECS]
//! {"cmd":"pair"} {"cmd":"accept_pair"} {"cmd":"decline_pair"} {"cmd":"ping","message":"..."}
//! {"cmd":"share_text","text":"..."} {"cmd":"send_file","path":"...", "name"?, "announce_size"?}
//! {"cmd":"unpair"} {"cmd":"rekey"} {"cmd":"reconnect","protocol"?:7} {"cmd":"disconnect"}
//! {"cmd":"raw","line":"..."} {"cmd":"raw_bytes","len":N} {"cmd":"quit"}
//! ```
//!
//! Events: `ready {id, tcp_port}`, `connected {key: null, id, name, version, opened, paired,
//! remote}`, `disconnected {reason}`, `pair {pair, key, request | answer | again}` (a request
//! from the other side, the answer to ours, or a repeat), `pair_sent {key}`, `paired {key}`,
//! `unpaired`, `ping {message}`, `text {text}`, `file {name, sha256, size, secs}` (received),
//! `sent {kind: file, name, sha256, size, secs}` (the other side read it all; `kind` ping and
//! text for those), `rekeyed`, `timeout`, `error {message}`.
//!
//! It ends on `quit`, when stdin closes (keep it open while the peer should live), or by itself
//! after `--timeout` seconds (default 120). Network safety is the caller's:
//! give it loopback or addresses inside a test namespace.

use std::io::{BufRead, Write};
use std::time::Duration;

use ferry_e2e::kdepeer::{Opts, run};

fn usage(why: &str) -> ! {
    eprintln!(
        "kde-peer: {why}\nusage: kde-peer --name N --id ID [--protocol 8] [--type phone] --state DIR (--connect HOST:PORT | --listen [--announce IP] [--discover]) [--bind IP] [--timeout SECS]"
    );
    std::process::exit(2)
}

fn parse() -> Opts {
    let mut o = Opts::new("kde-peer", "", std::env::temp_dir());
    let (mut id, mut state) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage(&format!("{a} needs a value")));
        match a.as_str() {
            "--name" => o.name = val(),
            "--id" => id = Some(val()),
            "--protocol" => o.protocol = val().parse().unwrap_or_else(|_| usage("--protocol: a number")),
            "--type" => o.device_type = val(),
            "--state" => state = Some(val()),
            "--connect" => o.connect = Some(val().parse().unwrap_or_else(|_| usage("--connect: HOST:PORT"))),
            "--listen" => o.listen = true,
            "--discover" => o.discover = true,
            "--announce" => o.announce = Some(val().parse().unwrap_or_else(|_| usage("--announce: an IP"))),
            "--bind" => o.bind = val().parse().unwrap_or_else(|_| usage("--bind: an IP")),
            "--timeout" => {
                o.timeout = Duration::from_secs(val().parse().unwrap_or_else(|_| usage("--timeout: seconds")))
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    o.id = id.unwrap_or_else(|| usage("--id is required"));
    o.state = state.unwrap_or_else(|| usage("--state is required")).into();
    if o.connect.is_none() && !o.listen && !o.discover {
        usage("give --connect HOST:PORT, --listen or --discover");
    }
    o
}

fn main() {
    let opts = parse();
    let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(v) => {
                    if cmd_tx.send(v).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    println!("{}", serde_json::json!({ "event": "error", "message": format!("bad command: {e}") }))
                }
            }
        }
        // stdin closed: the peer ends (the command channel closes with this thread).
    });
    let printer = std::thread::spawn(move || {
        let mut out = std::io::stdout().lock();
        for v in ev_rx {
            let _ = writeln!(out, "{v}");
            let _ = out.flush();
        }
    });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let code = match rt.block_on(run(opts, cmd_rx, ev_tx)) {
        Ok(()) => 0,
        Err(e) => {
            println!("{}", serde_json::json!({ "event": "error", "message": format!("{e:#}") }));
            1
        }
    };
    let _ = printer.join();
    rt.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}
