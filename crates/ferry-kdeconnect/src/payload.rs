//! Payloads (files): the sender serves the bytes over TLS on a port of 1739-1764 and names the
//! port in the packet; the receiver connects and reads exactly `payloadSize` bytes. The sender
//! is the TLS server. Only the device the payload is for (its certificate) gets it.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::tls::{self, check_pin};
use crate::{KdeError, LocalIdentity, PAYLOAD_PORTS};

/// Copy buffer: large enough for full TLS records, small enough to allocate per transfer.
const CHUNK: usize = 64 * 1024;
/// One chunk moving on a local network takes milliseconds; 60 s without progress is a stall.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// After the last byte the sender closes; we wait this long to see whether more comes.
const END_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

async fn bind_payload_port(bind: IpAddr) -> Result<TcpListener, KdeError> {
    for port in PAYLOAD_PORTS {
        match TcpListener::bind((bind, port)).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(KdeError::NoFreePort(*PAYLOAD_PORTS.start(), *PAYLOAD_PORTS.end()))
}

/// Serves one payload of `size` bytes from `reader` to the holder of `peer_cert_der` only.
/// Returns the port and a future that ends when all was written; it fails when nobody with
/// the right certificate connects within `wait`, when `reader` ends early, or on a stall.
/// The future borrows nothing (`use<R, P>`): it can be spawned.
pub async fn serve_payload<R, P>(
    bind: IpAddr,
    local: &LocalIdentity,
    peer_cert_der: Vec<u8>,
    mut reader: R,
    size: u64,
    wait: Duration,
    progress: P,
) -> Result<(u16, impl Future<Output = Result<(), KdeError>> + Send + use<R, P>), KdeError>
where
    R: AsyncRead + Send + Unpin + 'static,
    P: Fn(u64) + Send + 'static,
{
    let listener = bind_payload_port(bind).await?;
    let port = listener.local_addr()?.port();
    let acceptor = tls::acceptor(local)?;
    let serve = async move {
        let deadline = tokio::time::Instant::now() + wait;
        // Someone else on the network may connect first: refuse them and keep waiting.
        let mut stream = loop {
            let (tcp, from) = tokio::time::timeout_at(deadline, listener.accept())
                .await
                .map_err(|_| KdeError::Timeout("the receiver to fetch the payload"))??;
            match tls::as_server(&acceptor, tcp).await {
                Ok((s, cert)) if check_pin(&cert, Some(&peer_cert_der)).is_ok() => break s,
                Ok(_) => tracing::warn!("kdeconnect: payload port {port}: {from} showed another certificate"),
                Err(e) => tracing::debug!("kdeconnect: payload port {port}: {from}: {e}"),
            }
        };
        drop(listener);
        let mut buf = vec![0u8; CHUNK];
        let mut sent = 0u64;
        while sent < size {
            let want = (size - sent).min(CHUNK as u64) as usize;
            let n = tokio::time::timeout(STALL_TIMEOUT, reader.read(&mut buf[..want]))
                .await
                .map_err(|_| KdeError::Timeout("reading the file to send"))??;
            if n == 0 {
                return Err(KdeError::Closed("the file to send is shorter than announced"));
            }
            tokio::time::timeout(STALL_TIMEOUT, stream.write_all(&buf[..n]))
                .await
                .map_err(|_| KdeError::Timeout("the receiver stopped reading"))??;
            sent += n as u64;
            progress(sent);
        }
        tokio::time::timeout(STALL_TIMEOUT, async {
            stream.flush().await?;
            stream.shutdown().await
        })
        .await
        .map_err(|_| KdeError::Timeout("closing the payload"))??;
        Ok(())
    };
    Ok((port, serve))
}

/// Fetches exactly `size` bytes from `addr` (TLS as the client; the server must show
/// `peer_cert_der`) into `out`. More bytes than announced, or fewer, is an error.
pub async fn fetch_payload(
    addr: SocketAddr,
    local: &LocalIdentity,
    peer_cert_der: &[u8],
    size: u64,
    mut out: impl AsyncWrite + Unpin,
    mut progress: impl FnMut(u64),
) -> Result<(), KdeError> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| KdeError::Timeout("connecting to the payload port"))??;
    let (mut stream, cert) = tls::as_client(&tls::connector(local)?, tcp, addr.ip()).await?;
    check_pin(&cert, Some(peer_cert_der))?;
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    while got < size {
        let want = (size - got).min(CHUNK as u64) as usize;
        let n = tokio::time::timeout(STALL_TIMEOUT, stream.read(&mut buf[..want]))
            .await
            .map_err(|_| KdeError::Timeout("the sender stopped sending"))??;
        if n == 0 {
            return Err(KdeError::Closed("before the whole payload was sent"));
        }
        out.write_all(&buf[..n]).await?;
        got += n as u64;
        progress(got);
    }
    out.flush().await?;
    // The sender closes after the last byte. Anything more is a lie about the size. A sender
    // that neither closes nor sends more within END_TIMEOUT gave us all we asked for.
    match tokio::time::timeout(END_TIMEOUT, stream.read(&mut buf[..1])).await {
        Ok(Ok(0)) | Err(_) => Ok(()),
        Ok(Ok(_)) => Err(KdeError::TooLarge { what: "the payload", cap: size }),
        // Some senders end TCP without a TLS close_notify; the bytes were all there.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(()),
        Ok(Err(e)) => Err(e.into()),
    }
}
