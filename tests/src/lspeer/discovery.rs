//! Multicast discovery as the app's common/lib/src/task/discovery/multicast_discovery.dart:
//! join 224.0.0.167 on the LocalSend port; announce (`announce` and `announcement` true) three
//! times, after 100, 500 and 2000 ms; on hearing another device's announcement, answer with
//! `POST /register` to it (its announced fingerprint pinned) and, when that fails, with a
//! multicast message whose `announce` is false. Messages carrying our own fingerprint are
//! ignored. Only ever started inside a test's network namespace.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::UdpSocket;

use super::client::{full, request};
use super::{GROUP, PORT, STEP, Shared, tls};

/// The app's announcement schedule (`sendAnnouncement`: waits of 100, 500, 2000 ms).
const ANNOUNCE_WAITS_MS: [u64; 3] = [100, 500, 2000];
/// A discovery message is a few hundred bytes; a datagram cannot exceed 64 KiB.
const MAX_DATAGRAM: usize = 65536;

pub struct Multicast {
    shared: Arc<Shared>,
    sock: Arc<UdpSocket>,
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Multicast {
    /// Announces ourselves (the three messages), in the background.
    pub fn announce(&self) {
        let (shared, sock, port) = (self.shared.clone(), self.sock.clone(), self.port);
        tokio::spawn(async move {
            for wait in ANNOUNCE_WAITS_MS {
                tokio::time::sleep(Duration::from_millis(wait)).await;
                send(&shared, &sock, port, true).await;
            }
        });
    }

    pub fn abort(&self) {
        self.task.abort();
    }
}

async fn send(shared: &Shared, sock: &UdpSocket, port: u16, announce: bool) {
    let mut msg = shared.info();
    msg["announce"] = json!(announce);
    msg["announcement"] = json!(announce);
    if let Err(e) = sock.send_to(msg.to_string().as_bytes(), (GROUP, port)).await {
        shared.error(format!("multicast send: {e}"));
    }
}

pub async fn start(shared: Arc<Shared>) -> anyhow::Result<Multicast> {
    let port = if shared.opts.port == 0 { PORT } else { shared.opts.port };
    let iface = match shared.opts.bind {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    let std = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
    std.join_multicast_v4(&GROUP, &iface)?;
    std.set_nonblocking(true)?;
    let sock = Arc::new(UdpSocket::from_std(std)?);
    let (sh, rx) = (shared.clone(), sock.clone());
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while let Ok((n, from)) = rx.recv_from(&mut buf).await {
            let Ok(msg) = serde_json::from_slice::<Value>(&buf[..n]) else { continue };
            heard(&sh, &rx, port, msg, from);
        }
    });
    let m = Multicast { shared, sock, port, task };
    m.announce();
    Ok(m)
}

fn heard(shared: &Arc<Shared>, sock: &Arc<UdpSocket>, port: u16, msg: Value, from: SocketAddr) {
    let (Some(alias), Some(fp)) = (msg["alias"].as_str(), msg["fingerprint"].as_str()) else { return };
    if tls::same_fingerprint(fp, &shared.fp) {
        return;
    }
    let their_port = msg["port"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or(port);
    let addr = SocketAddr::new(from.ip(), their_port);
    shared.heard(super::Device { alias: alias.into(), fingerprint: fp.into(), addr }, "multicast", &msg);
    if msg["announce"] != true && msg["announcement"] != true {
        return;
    }
    let (shared, sock, fp) = (shared.clone(), sock.clone(), fp.to_string());
    tokio::spawn(async move {
        let body = full(shared.info().to_string());
        let r = request(&shared, addr, Some(fp), "register", body, None, STEP).await;
        let status = r.as_ref().map(|(s, _, _)| *s).unwrap_or(0);
        shared.emit(json!({ "event": "answered", "to": addr.to_string(), "via": "register", "status": status }));
        if status != 200 {
            send(&shared, &sock, port, false).await;
            shared.emit(json!({ "event": "answered", "to": addr.to_string(), "via": "multicast" }));
        }
    });
}
