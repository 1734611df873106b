//! `ls-peer`: a LocalSend device for scripts and tests (see `ferry_e2e::lspeer`). Commands are
//! JSON lines on stdin, events JSON lines on stdout:
//!
//! ```text
//! ls-peer --alias A --dir DOWNLOADS [--model M] [--type mobile] [--version 2.2] [--bind IP]
//!         [--port 53317] [--case upper|lower] [--multicast] [--pin P] [--ask] [--key ecdsa|rsa]
//!         [--timeout SECS]
//! ```
//!
//! Commands (`to` is "ip:port"; `fingerprint` pins the receiver, default: the one heard there):
//! - `{"cmd":"register","to",fingerprint?,as_fingerprint?}` POST /register; `as_fingerprint`
//!   announces another fingerprint than our certificate's.
//! - `{"cmd":"send","to",files:[{path,name?}],pin?,fingerprint?,as_fingerprint?,sha256?:bool,
//!   stall_after?:N,mode?:"wrong-token"|"wrong-session"|"extra-bytes"|"bad-sha",extra?:N}`
//!   (`name` may be anything: "../x", "/etc/x").
//! - `{"cmd":"send_text","to",text,pin?,...}` one text/plain file, the text as its preview.
//! - `{"cmd":"cancel"}` POST /cancel and drop the running send's connection.
//! - `{"cmd":"raw_prepare","to",size}` a prepare-upload body of `size` bytes.
//! - `{"cmd":"accept"}` / `{"cmd":"decline"}` answer the waiting offer or text (with --ask).
//! - `{"cmd":"close"}` end the receive session (a sender that gave up leaves it open: 409).
//! - `{"cmd":"announce"}` (multicast), `{"cmd":"devices"}`, `{"cmd":"quit"}`.
//!
//! Events: `ready {alias, fingerprint, port, multicast}`; `device {via: multicast | register |
//! register-answer, alias, fingerprint, address, version, deviceType, deviceModel, protocol}`;
//! `answered {to, via, status?}` (our answer to an announcement); `registered {to, status,
//! fingerprint, cert_fingerprint, matches}`; receiving: `offer {session, alias, fingerprint,
//! cert_fingerprint, files: [{id, fileName, size, fileType, sha256, preview}]}`, `text
//! {session, alias, fingerprint, cert_fingerprint, text}`, `received {session, id, name, path,
//! size, sha256, announced_sha256}`, `session_done {session}`, `closed {session}`, `cancelled {session, by: sender
//! | receiver}`, `refused {path, status, reason}` (every non-2xx answer the server gives, and
//! `path: "tls"` for a failed handshake); sending: `accepted {status, session}`, `progress
//! {name, bytes, size}`, `stalled {name, bytes}`, `uploaded {name, size, sha256, status}`, `sent
//! {status: 200 | 204, session?, files: [{name, size, sha256, status}]}`, `declined`,
//! `pin-required`, `busy`, `too-many-attempts`, `send-failed {status, body?, error?}`,
//! `cancel_sent {session, status}`, `raw_prepare {bytes, status}`; `timeout`, `error {message}`,
//! `devices {devices}`.
//!
//! It ends on `quit`, when stdin closes (keep it open while the peer should live), or by itself
//! after `--timeout` seconds (default 120). Network safety is the caller's: give it loopback
//! (no --multicast) or addresses inside a test namespace.

use std::io::{BufRead, Write};
use std::time::Duration;

use ferry_e2e::lspeer::{KeyKind, Opts, run};

const USAGE: &str = "usage: ls-peer --alias A --dir DOWNLOADS [--model M] [--type mobile] [--version 2.2] [--bind IP] [--port 53317] [--case upper|lower] [--multicast] [--pin P] [--ask] [--key ecdsa|rsa] [--timeout SECS]";

fn usage(why: &str) -> ! {
    eprintln!("ls-peer: {why}\n{USAGE}");
    std::process::exit(2)
}

fn parse() -> Opts {
    let mut o = Opts::new("ls-peer", std::path::PathBuf::new());
    let mut dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage(&format!("{a} needs a value")));
        match a.as_str() {
            "--alias" => o.alias = val(),
            "--dir" => dir = Some(val()),
            "--model" => o.device_model = val(),
            "--type" => o.device_type = val(),
            "--version" => o.version = val(),
            "--bind" => o.bind = val().parse().unwrap_or_else(|_| usage("--bind: an IP")),
            "--port" => o.port = val().parse().unwrap_or_else(|_| usage("--port: a number")),
            "--case" => {
                o.upper = match val().as_str() {
                    "upper" => true,
                    "lower" => false,
                    _ => usage("--case: upper or lower"),
                }
            }
            "--multicast" => o.multicast = true,
            "--pin" => o.pin = Some(val()),
            "--ask" => o.auto_accept = false,
            "--key" => {
                o.key = match val().as_str() {
                    "ecdsa" => KeyKind::Ecdsa,
                    "rsa" => KeyKind::Rsa,
                    _ => usage("--key: ecdsa or rsa"),
                }
            }
            "--timeout" => {
                o.timeout = Duration::from_secs(val().parse().unwrap_or_else(|_| usage("--timeout: seconds")))
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    o.download_dir = dir.unwrap_or_else(|| usage("--dir is required")).into();
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
    rt.shutdown_timeout(Duration::from_secs(1));
    let _ = printer.join();
    std::process::exit(code);
}
