//! Payloads: the sender serves the file over TLS (as the server) on a port of 1739-1764 named
//! in the share packet, to the certificate of the device it is for; the receiver connects,
//! reads `payloadSize` bytes and checks that nothing follows. The peer serves the whole file
//! whatever size it announced, so a test can make it lie in either direction.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Events;
use super::proto::{self, Local};

/// The receiver fetches at once; a minute is KDE's own wait for it.
const WAIT: Duration = Duration::from_secs(60);
/// No progress for this long on a LAN is a stall.
const STALL: Duration = Duration::from_secs(30);
const CHUNK: usize = 256 * 1024;

pub struct Serve {
    pub local: Arc<Local>,
    pub path: PathBuf,
    pub name: String,
    /// Only the device showing this certificate gets the bytes.
    pub cert: Vec<u8>,
    pub events: Events,
}

impl Serve {
    /// Binds a payload port and serves in the background; returns the port.
    pub async fn start(self, bind: IpAddr, ports: std::ops::RangeInclusive<u16>) -> anyhow::Result<u16> {
        let listener = super::bind_first(bind, ports).await?;
        let port = listener.local_addr()?.port();
        tokio::spawn(async move {
            let r = self.serve(listener).await;
            match r {
                Ok((bytes, sha, secs)) => {
                    let _ = self.events.send(json!({
                        "event": "sent", "kind": "file", "name": self.name, "sha256": sha, "size": bytes, "secs": secs,
                    }));
                }
                Err(e) => {
                    let msg = format!("serving {}: {e:#}", self.name);
                    let _ = self.events.send(json!({ "event": "error", "message": msg, "name": self.name }));
                }
            }
        });
        Ok(port)
    }

    async fn serve(&self, listener: tokio::net::TcpListener) -> anyhow::Result<(u64, String, f64)> {
        let (tcp, _) = tokio::time::timeout(WAIT, listener.accept()).await??;
        let (mut tls, cert) = proto::tls_server(&self.local, tcp).await?;
        anyhow::ensure!(cert == self.cert, "the fetcher showed another certificate");
        let t0 = Instant::now();
        let mut file = tokio::fs::File::open(&self.path).await?;
        let (mut buf, mut sent, mut h) = (vec![0u8; CHUNK], 0u64, Sha256::new());
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            // The receiver may close early (it took what was announced): not our error.
            if tokio::time::timeout(STALL, tls.write_all(&buf[..n])).await?.is_err() {
                break;
            }
            sent += n as u64;
        }
        let _ = tokio::time::timeout(STALL, tls.shutdown()).await;
        Ok((sent, proto::hex(&h.finalize()), t0.elapsed().as_secs_f64()))
    }
}

pub struct Fetch {
    pub local: Arc<Local>,
    pub addr: SocketAddr,
    pub cert: Vec<u8>,
    pub size: u64,
    pub name: String,
    pub dir: PathBuf,
    pub events: Events,
}

impl Fetch {
    pub fn fail(&self, e: impl std::fmt::Display) {
        let msg = format!("fetching {}: {e}", self.name);
        let _ = self.events.send(json!({ "event": "error", "message": msg, "name": self.name }));
    }

    pub async fn run(self) {
        match self.fetch(&self.local).await {
            Ok((sha, secs)) => {
                let _ = self.events.send(json!({
                    "event": "file", "name": self.name, "sha256": sha, "size": self.size, "secs": secs,
                }));
            }
            Err(e) => self.fail(format!("{e:#}")),
        }
    }

    async fn fetch(&self, local: &Local) -> anyhow::Result<(String, f64)> {
        let t0 = Instant::now();
        let tcp = tokio::time::timeout(proto::STEP, TcpStream::connect(self.addr)).await??;
        let (mut tls, cert) = proto::tls_client(local, tcp).await?;
        anyhow::ensure!(cert == self.cert, "the payload server showed another certificate");
        // Kept on disk (not in memory) under a plain name, for a test to look at.
        std::fs::create_dir_all(&self.dir)?;
        let plain = self.name.rsplit(['/', '\\']).next().unwrap_or("unnamed").replace("..", "_");
        let mut out = tokio::fs::File::create(self.dir.join(plain)).await?;
        let (mut buf, mut got, mut h) = (vec![0u8; CHUNK], 0u64, Sha256::new());
        while got < self.size {
            let want = (self.size - got).min(CHUNK as u64) as usize;
            let n = tokio::time::timeout(STALL, tls.read(&mut buf[..want])).await??;
            anyhow::ensure!(n > 0, "the payload ended after {got} of {} bytes", self.size);
            h.update(&buf[..n]);
            out.write_all(&buf[..n]).await?;
            got += n as u64;
        }
        out.sync_all().await?;
        // The sender closes after the last byte: anything more is a lie about the size.
        match tokio::time::timeout(proto::STEP, tls.read(&mut buf[..1])).await {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(_)) => anyhow::bail!("the payload is longer than announced"),
            Err(_) => anyhow::bail!("the sender did not close after the payload"),
        }
        Ok((proto::hex(&h.finalize()), t0.elapsed().as_secs_f64()))
    }
}
