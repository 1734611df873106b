//! Links: a TCP connection to one device, identity checked, secured with TLS. The device that
//! opened TCP sends its identity in plain text and then is the TLS *server*; on version 8 both
//! identities are sent again inside TLS and the inner one is the one that counts.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsStream;

use crate::cert::cert_common_name;
use crate::tls::{self, check_pin};
use crate::{Identity, KdeError, LocalIdentity, MAX_IDENTITY, MAX_PACKET, MIN_PROTOCOL_VERSION, Packet};

/// Reading the plain-text identity and the one inside TLS: a peer sends it at once; 10 s
/// bounds a peer that connects and says nothing.
const IDENTITY_TIMEOUT: Duration = Duration::from_secs(10);
/// Opening TCP to a device on the local network.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A packet is a few KiB; a peer that has not taken one in 60 s is not reading (its socket
/// buffers are full) and the link is dead.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// KDE's keepalive (idle 10 s, then every 5 s, 3 probes): an idle link is normal and has no
/// read timeout, but a vanished peer is noticed in about 25 s.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;

type Stream = TlsStream<TcpStream>;

/// What the caller knows of a paired device: its pinned certificate, and the lowest protocol
/// version it may come back with (the version it was paired on, if that was 8; else 0).
#[derive(Clone, Debug, PartialEq)]
pub struct Pin {
    pub cert_der: Vec<u8>,
    pub min_version: u32,
}

/// A connected, TLS-secured link to one device (either role), identity checked.
pub struct Link {
    /// Theirs; on version 8 the one sent inside TLS.
    pub identity: Identity,
    pub peer_cert_der: Vec<u8>,
    pub remote: SocketAddr,
    /// The version both sides speak on this link (7 or 8).
    pub version: u32,
    stream: Stream,
}

pub struct LinkReader {
    inner: BufReader<ReadHalf<Stream>>,
}

pub struct LinkWriter {
    inner: WriteHalf<Stream>,
}

impl Link {
    pub fn split(self) -> (LinkReader, LinkWriter) {
        let (r, w) = tokio::io::split(self.stream);
        (LinkReader { inner: BufReader::new(r) }, LinkWriter { inner: w })
    }
}

impl LinkReader {
    /// The next packet; `None` on a clean end of the stream. Lines are capped at [`MAX_PACKET`]
    /// before they are buffered; blank lines are skipped.
    pub async fn recv(&mut self) -> Result<Option<Packet>, KdeError> {
        loop {
            match read_line_capped(&mut self.inner, MAX_PACKET, "a packet").await? {
                None => return Ok(None),
                Some(line) if line.iter().all(u8::is_ascii_whitespace) => continue,
                Some(line) => return Packet::parse(&line).map(Some),
            }
        }
    }
}

impl LinkWriter {
    /// Writes and flushes one packet.
    pub async fn send(&mut self, p: &Packet) -> Result<(), KdeError> {
        let line = p.to_line();
        tokio::time::timeout(SEND_TIMEOUT, async {
            self.inner.write_all(&line).await?;
            self.inner.flush().await
        })
        .await
        .map_err(|_| KdeError::Timeout("sending a packet"))??;
        Ok(())
    }

    /// Ends the link cleanly (TLS close_notify, then the TCP end).
    pub async fn close(&mut self) -> Result<(), KdeError> {
        Ok(self.inner.shutdown().await?)
    }
}

/// Reads one line of at most `cap` bytes (newline excluded). `None` on EOF before any byte.
pub(crate) async fn read_line_capped<R: AsyncBufRead + Unpin>(
    r: &mut R,
    cap: usize,
    what: &'static str,
) -> Result<Option<Vec<u8>>, KdeError> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return if line.is_empty() { Ok(None) } else { Err(KdeError::Closed("in the middle of a packet")) };
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if line.len() + take > cap {
            return Err(KdeError::TooLarge { what, cap: cap as u64 });
        }
        line.extend_from_slice(&buf[..take]);
        r.consume(if done { take + 1 } else { take });
        if done {
            return Ok(Some(line));
        }
    }
}

async fn read_identity<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Identity, KdeError> {
    let line = tokio::time::timeout(IDENTITY_TIMEOUT, read_line_capped(r, MAX_IDENTITY, "an identity"))
        .await
        .map_err(|_| KdeError::Timeout("the peer's identity"))??
        .ok_or(KdeError::Closed("before sending its identity"))?;
    Identity::from_packet(&Packet::parse(&line)?)
}

fn configure(stream: &TcpStream) {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    let sock = socket2::SockRef::from(stream);
    let _ = sock.set_tcp_keepalive(&keepalive);
    let _ = stream.set_nodelay(true);
}

/// Checks made on their identity before TLS: a version we speak, not ourselves, no downgrade.
fn check_identity(theirs: &Identity, ours: &Identity, pin: Option<&Pin>) -> Result<(), KdeError> {
    if theirs.protocol_version < MIN_PROTOCOL_VERSION {
        return Err(KdeError::Version(theirs.protocol_version));
    }
    if theirs.device_id == ours.device_id {
        return Err(KdeError::Identity("the peer claims our own device id".into()));
    }
    if let Some(pin) = pin
        && theirs.protocol_version < pin.min_version
    {
        return Err(KdeError::Downgrade { pinned: pin.min_version, announced: theirs.protocol_version });
    }
    Ok(())
}

/// After TLS: the pinned certificate, the CN naming the device, then on version 8 the
/// identities again inside TLS (ours first: both sides write before reading).
async fn finish(
    mut stream: Stream,
    cert: Vec<u8>,
    theirs: Identity,
    ours: &Identity,
    pin: Option<&Pin>,
    remote: SocketAddr,
) -> Result<Link, KdeError> {
    check_pin(&cert, pin.map(|p| p.cert_der.as_slice()))?;
    if cert_common_name(&cert)? != theirs.device_id {
        return Err(KdeError::Identity("the certificate's common name is not the device id".into()));
    }
    let version = theirs.protocol_version.min(ours.protocol_version);
    let identity = if version >= 8 {
        tokio::time::timeout(IDENTITY_TIMEOUT, async {
            stream.write_all(&ours.packet().to_line()).await?;
            stream.flush().await
        })
        .await
        .map_err(|_| KdeError::Timeout("sending our identity"))??;
        // One byte at a time: the peer may send packets right after its identity, and they
        // must stay in the stream for the link's reader (TLS buffers records, so no syscalls).
        let inner = read_identity(&mut BufReader::with_capacity(1, &mut stream)).await?;
        if inner.device_id != theirs.device_id {
            return Err(KdeError::Identity("the identity inside TLS names another device".into()));
        }
        check_identity(&inner, ours, pin)?;
        if inner.protocol_version < 8 {
            return Err(KdeError::Downgrade { pinned: 8, announced: inner.protocol_version });
        }
        inner
    } else {
        theirs
    };
    Ok(Link { identity, peer_cert_der: cert, remote, version, stream })
}

/// TCP listener on the first free port of a range.
pub struct Listener {
    inner: TcpListener,
    port: u16,
}

/// A TCP connection accepted but not yet identified: [`Incoming::handshake`] it in its own
/// task, so one slow peer does not hold up the next connection.
pub struct Incoming {
    stream: TcpStream,
    remote: SocketAddr,
}

impl Listener {
    pub async fn bind(bind: IpAddr, ports: RangeInclusive<u16>) -> Result<Listener, KdeError> {
        let (first, last) = (*ports.start(), *ports.end());
        for port in ports {
            match TcpListener::bind((bind, port)).await {
                Ok(inner) => return Ok(Listener { inner, port }),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(KdeError::NoFreePort(first, last))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Accepts one TCP connection (no handshake yet).
    pub async fn accept_raw(&self) -> Result<Incoming, KdeError> {
        let (stream, remote) = self.inner.accept().await?;
        configure(&stream);
        Ok(Incoming { stream, remote })
    }

    /// Accepts one connection and runs its handshake. `trusted(device_id)` gives the pinned
    /// certificate of a paired device (then no other is taken); unpaired devices: any certificate.
    pub async fn accept(
        &self,
        local: &LocalIdentity,
        ours: &Identity,
        trusted: &(dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync),
    ) -> Result<Link, KdeError> {
        let pinned = |id: &str| trusted(id).map(|cert_der| Pin { cert_der, min_version: 0 });
        self.accept_raw().await?.handshake(local, ours, &pinned).await
    }

    /// [`Listener::accept`] with the downgrade rule: `trusted` also gives the lowest version.
    pub async fn accept_pinned(
        &self,
        local: &LocalIdentity,
        ours: &Identity,
        trusted: &(dyn Fn(&str) -> Option<Pin> + Send + Sync),
    ) -> Result<Link, KdeError> {
        self.accept_raw().await?.handshake(local, ours, trusted).await
    }
}

impl Incoming {
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// They opened TCP: read their identity (capped, bounded), then TLS with us as the client.
    pub async fn handshake(
        self,
        local: &LocalIdentity,
        ours: &Identity,
        trusted: &(dyn Fn(&str) -> Option<Pin> + Send + Sync),
    ) -> Result<Link, KdeError> {
        let mut reader = BufReader::new(self.stream);
        let theirs = read_identity(&mut reader).await?;
        if !reader.buffer().is_empty() {
            // The TLS server waits for our hello; bytes here are not KDE Connect.
            return Err(KdeError::Malformed("data after the plain-text identity".into()));
        }
        let pin = trusted(&theirs.device_id);
        check_identity(&theirs, ours, pin.as_ref())?;
        let (stream, cert) = tls::as_client(&tls::connector(local)?, reader.into_inner(), self.remote.ip()).await?;
        finish(stream, cert, theirs, ours, pin.as_ref(), self.remote).await
    }
}

/// Opens TCP to a device seen by discovery, sends our identity, then TLS as the server.
pub async fn connect(
    addr: SocketAddr,
    theirs: &Identity,
    local: &LocalIdentity,
    ours: &Identity,
    pinned: Option<&[u8]>,
) -> Result<Link, KdeError> {
    let pin = pinned.map(|c| Pin { cert_der: c.to_vec(), min_version: 0 });
    connect_pinned(addr, theirs, local, ours, pin.as_ref()).await
}

/// [`connect`] with the downgrade rule of [`Pin::min_version`].
pub async fn connect_pinned(
    addr: SocketAddr,
    theirs: &Identity,
    local: &LocalIdentity,
    ours: &Identity,
    pin: Option<&Pin>,
) -> Result<Link, KdeError> {
    check_identity(theirs, ours, pin)?;
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| KdeError::Timeout("opening TCP"))??;
    configure(&stream);
    tokio::time::timeout(IDENTITY_TIMEOUT, stream.write_all(&ours.packet().to_line()))
        .await
        .map_err(|_| KdeError::Timeout("sending our identity"))??;
    let (stream, cert) = tls::as_server(&tls::acceptor(local)?, stream).await?;
    finish(stream, cert, theirs.clone(), ours, pin, addr).await
}
