//! The QUIC endpoint (one UDP socket, both directions) and authenticated peer connections.

use std::any::Any;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::DeviceId;
use ferry_proto::wire::{Hello, MAX_NAME, Message, PROTOCOL_VERSION};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::pki_types::CertificateDer;
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio::time::timeout;

use crate::admit::Admission;
use crate::identity::CERT_NAME;
use crate::refuse::{Refusals, removed_by};
use crate::{Identity, NetError, device_id_of, read_frame, tls, write_frame};

/// Keep-alive interval: keeps NAT bindings open and lets a vanished peer be noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(2);
/// A peer silent this long (milliseconds) is gone: three keep-alive periods. Our own keep-alive
/// restarts the idle timer once after the last packet heard (RFC 9000 10.1), so a crashed or
/// unplugged device shows as disconnected within about 8 s, inside the 10 s users expect.
const IDLE_TIMEOUT_MS: u32 = 6_000;
/// Per-stream and per-connection receive windows, sized for LAN throughput.
const STREAM_WINDOW: u32 = 16 << 20;
const CONN_WINDOW: u32 = 64 << 20;
const MAX_BIDI_STREAMS: u32 = 1024;
/// Requested UDP socket buffer sizes; the OS may clamp or refuse them.
const SOCKET_BUFFER: usize = 4 << 20;
/// A dial gives up after this: a LAN handshake takes milliseconds, and a user waits on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest an incoming TLS handshake may take: as long as a dialer waits for it (a dialing
/// Ferry gives up at `CONNECT_TIMEOUT`, so holding a slot longer only serves a flooder).
const ACCEPT_HANDSHAKE_TIMEOUT: Duration = CONNECT_TIMEOUT;
/// Incoming handshakes in progress (or finished but not yet taken by `accept`) at once; more
/// are refused so a flood of half-open connections costs little. With the timeout above, a
/// flooder holds at most 64 slots for 5 s each; honest devices redial with backoff.
const MAX_PENDING_ACCEPTS: usize = 64;
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
const PAIRING_LABEL: &[u8] = b"EXPORTER-ferry-pairing-code";

type AcceptResult = Result<PeerConn, NetError>;

/// A QUIC endpoint bound to one UDP socket that both dials and accepts. Cheap to clone.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: quinn::Endpoint,
    identity: Identity,
    device: DeviceId,
    transport: Arc<TransportConfig>,
    incoming: Mutex<mpsc::Receiver<AcceptResult>>,
    accept_task: tokio::task::AbortHandle,
    refusals: Arc<Refusals>,
    admission: Arc<Admission>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The accept loop holds a handle to the quinn endpoint; stop it so the socket is
        // released once the last `Endpoint` clone is gone.
        self.accept_task.abort();
    }
}

fn transport_config() -> TransportConfig {
    let mut t = TransportConfig::default();
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(IDLE_TIMEOUT_MS))));
    t.stream_receive_window(VarInt::from_u32(STREAM_WINDOW));
    t.receive_window(VarInt::from_u32(CONN_WINDOW));
    t.send_window(u64::from(CONN_WINDOW));
    t.max_concurrent_bidi_streams(VarInt::from_u32(MAX_BIDI_STREAMS));
    t
}

impl Endpoint {
    /// Binds one UDP socket at `addr` serving both directions.
    ///
    /// The server side requires a client certificate (any self-signed device certificate whose
    /// TLS 1.3 signature verifies; the application decides who is trusted). Must be called
    /// within a Tokio runtime.
    pub fn bind(identity: &Identity, addr: SocketAddr) -> Result<Endpoint, NetError> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| NetError::Io(std::io::Error::other("Endpoint::bind needs a Tokio runtime")))?;
        let runtime =
            quinn::default_runtime().ok_or_else(|| NetError::Io(std::io::Error::other("no async runtime for QUIC")))?;

        let transport = Arc::new(transport_config());
        let quic_server = QuicServerConfig::try_from(tls::server_config(identity)?)
            .map_err(|e| NetError::Tls(format!("QUIC server setup: {e}")))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic_server));
        server.transport_config(transport.clone());

        let socket = UdpSocket::bind(addr)
            .map_err(|e| NetError::Io(std::io::Error::new(e.kind(), format!("cannot bind UDP {addr}: {e}"))))?;
        let sock = socket2::SockRef::from(&socket);
        if let Err(e) = sock.set_recv_buffer_size(SOCKET_BUFFER) {
            tracing::debug!("could not set SO_RCVBUF: {e}");
        }
        if let Err(e) = sock.set_send_buffer_size(SOCKET_BUFFER) {
            tracing::debug!("could not set SO_SNDBUF: {e}");
        }

        let endpoint = quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(server), socket, runtime)?;
        let device = identity.device_id();
        let (tx, rx) = mpsc::channel(MAX_PENDING_ACCEPTS);
        let refusals = Arc::new(Refusals::default());
        refusals.set_notice(&device.short());
        let admission = Arc::new(Admission::new());
        let task = handle.spawn(accept_loop(endpoint.clone(), device, tx, refusals.clone(), admission.clone()));
        Ok(Endpoint {
            inner: Arc::new(Inner {
                endpoint,
                identity: identity.clone(),
                device,
                transport,
                incoming: Mutex::new(rx),
                accept_task: task.abort_handle(),
                refusals,
                admission,
            }),
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        Ok(self.inner.endpoint.local_addr()?)
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        self.inner.device
    }

    /// Refuses `id` from now on: its incoming connections are closed as soon as their TLS
    /// handshake proves who it is, with [`crate::CLOSE_REMOVED`] and the notice, and never
    /// returned by [`Endpoint::accept`]. Existing connections are the caller's to close.
    pub fn refuse(&self, id: DeviceId) {
        self.inner.refusals.refuse(id);
    }

    /// Accepts `id` again (a deliberate new pairing).
    pub fn allow(&self, id: &DeviceId) {
        self.inner.refusals.allow(id);
    }

    pub fn is_refused(&self, id: &DeviceId) -> bool {
        self.inner.refusals.is_refused(id)
    }

    /// The addresses paired devices were last seen at: connection attempts from them always get
    /// a TLS handshake; others share a small budget (see `admit.rs`). Replaces the previous set.
    pub fn set_known_addresses(&self, addrs: std::collections::HashSet<SocketAddr>) {
        self.inner.admission.set_known(addrs);
    }

    /// The name a refused device is told it was removed by (this device's name).
    pub fn set_refusal_notice(&self, name: &str) {
        self.inner.refusals.set_notice(name);
    }

    /// Dials `addr`. With `expect` set, the TLS handshake fails unless the server's
    /// certificate hashes to that id. Gives up after 5 s.
    pub async fn connect(&self, addr: SocketAddr, expect: Option<DeviceId>) -> Result<PeerConn, NetError> {
        let quic_client = QuicClientConfig::try_from(tls::client_config(&self.inner.identity, expect)?)
            .map_err(|e| NetError::Tls(format!("QUIC client setup: {e}")))?;
        let mut cfg = quinn::ClientConfig::new(Arc::new(quic_client));
        cfg.transport_config(self.inner.transport.clone());
        let connecting = self
            .inner
            .endpoint
            .connect_with(cfg, addr, CERT_NAME)
            .map_err(|e| NetError::Connect(format!("{addr}: {e}")))?;
        let conn = match timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(removed_by(&e).map(|by| NetError::Removed { by }).unwrap_or(e.into())),
            Err(_) => return Err(NetError::Timeout),
        };
        PeerConn::new(conn, self.inner.device, true)
    }

    /// The next incoming connection whose TLS handshake completed, or `None` once the endpoint
    /// is closed. A single failed handshake is `Some(Err(_))`: log it and call again.
    pub async fn accept(&self) -> Option<Result<PeerConn, NetError>> {
        self.inner.incoming.lock().await.recv().await
    }

    /// Closes every connection (code 0, reason "shutdown") and stops accepting.
    pub fn close(&self) {
        self.inner.endpoint.close(VarInt::from_u32(0), b"shutdown");
    }

    /// Waits until every connection is closed and its close notice was sent.
    pub async fn wait_idle(&self) {
        self.inner.endpoint.wait_idle().await;
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    local: DeviceId,
    tx: mpsc::Sender<AcceptResult>,
    refusals: Arc<Refusals>,
    admission: Arc<Admission>,
) {
    let slots = Arc::new(Semaphore::new(MAX_PENDING_ACCEPTS));
    while let Some(incoming) = endpoint.accept().await {
        if !admission.admit(incoming.remote_address(), std::time::Instant::now()) {
            tracing::debug!(remote = %incoming.remote_address(), "too many connection attempts from unknown addresses; refusing one");
            incoming.refuse();
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(remote = %incoming.remote_address(), "too many pending incoming connections; refusing one");
            incoming.refuse();
            continue;
        };
        let (tx, refusals) = (tx.clone(), refusals.clone());
        tokio::spawn(async move {
            let res = async {
                let connecting = incoming.accept()?;
                let conn = match timeout(ACCEPT_HANDSHAKE_TIMEOUT, connecting).await {
                    Ok(res) => res?,
                    Err(_) => return Err(NetError::Timeout),
                };
                PeerConn::new(conn, local, false)
            }
            .await;
            if let Ok(conn) = &res
                && refusals.is_refused(&conn.peer)
            {
                // Told and gone before the application sees it (see `refuse.rs`).
                tracing::info!(peer = %conn.peer.short(), remote = %conn.remote_addr(), "refused a removed device");
                refusals.close(&conn.conn);
                drop(permit);
                return;
            }
            let _ = tx.send(res).await;
            drop(permit);
        });
    }
}

/// An authenticated connection to one peer device. Cheap to clone.
#[derive(Clone)]
pub struct PeerConn {
    conn: quinn::Connection,
    local: DeviceId,
    peer: DeviceId,
    outgoing: bool,
}

impl std::fmt::Debug for PeerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConn")
            .field("peer", &self.peer)
            .field("remote", &self.conn.remote_address())
            .field("outgoing", &self.outgoing)
            .finish()
    }
}

impl PeerConn {
    fn new(conn: quinn::Connection, local: DeviceId, outgoing: bool) -> Result<PeerConn, NetError> {
        let cert = conn
            .peer_identity()
            .and_then(|any: Box<dyn Any>| any.downcast::<Vec<CertificateDer<'static>>>().ok())
            .and_then(|certs| certs.first().map(|c| c.to_vec()));
        let Some(cert) = cert else {
            conn.close(VarInt::from_u32(1), b"no certificate");
            return Err(NetError::Tls("the peer presented no certificate".into()));
        };
        Ok(PeerConn { peer: device_id_of(&cert), conn, local, outgoing })
    }

    /// The peer's device id, from the certificate it proved in the TLS handshake.
    pub fn peer(&self) -> DeviceId {
        self.peer
    }

    pub fn remote_addr(&self) -> SocketAddr {
        self.conn.remote_address()
    }

    /// True if this device dialed.
    pub fn outgoing(&self) -> bool {
        self.outgoing
    }

    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }

    pub fn rtt(&self) -> Duration {
        self.conn.rtt()
    }

    /// A 6-digit code, identical on both ends of this TLS session and different for a
    /// man in the middle (who holds two sessions with different secrets).
    ///
    /// BLAKE3 over 32 bytes of exported keying material (label `EXPORTER-ferry-pairing-code`,
    /// empty context) and both device ids in ascending order; the first 8 bytes of the hash as
    /// a big-endian u64, modulo 1,000,000, zero-padded.
    pub fn pairing_code(&self) -> Result<String, NetError> {
        let mut ekm = [0u8; 32];
        self.conn
            .export_keying_material(&mut ekm, PAIRING_LABEL, b"")
            .map_err(|_| NetError::Tls("could not export keying material for the pairing code".into()))?;
        let (lo, hi) = if self.local <= self.peer { (self.local, self.peer) } else { (self.peer, self.local) };
        let mut h = blake3::Hasher::new();
        h.update(&ekm);
        h.update(&lo.0);
        h.update(&hi.0);
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_bytes()[..8]);
        Ok(format!("{:06}", u64::from_be_bytes(first) % 1_000_000))
    }

    /// Exchanges [`Hello`]s on the first bidirectional stream (opened if we dialed, accepted
    /// otherwise): sends ours, reads theirs. Fails on a different protocol version or an
    /// over-long name. Gives up after 5 s.
    pub async fn handshake(&self, ours: &Hello) -> Result<Hello, NetError> {
        let exchange = async {
            let (mut send, mut recv) =
                if self.outgoing { self.conn.open_bi().await? } else { self.accept_bi().await? };
            write_frame(&mut send, &Message::Hello(ours.clone())).await?;
            send.finish().map_err(|_| NetError::Closed)?;
            read_frame(&mut recv).await
        };
        let theirs = match timeout(HELLO_TIMEOUT, exchange).await {
            Ok(Ok(msg)) => msg,
            Ok(Err(e)) => return Err(self.removed().map(|by| NetError::Removed { by }).unwrap_or(e)),
            Err(_) => return Err(NetError::Timeout),
        };
        let Message::Hello(theirs) = theirs else {
            return Err(NetError::Protocol(format!("expected Hello, got {}", message_kind(&theirs))));
        };
        if theirs.protocol != PROTOCOL_VERSION {
            return Err(NetError::Protocol(format!(
                "peer speaks protocol v{}, this device v{PROTOCOL_VERSION}",
                theirs.protocol
            )));
        }
        if theirs.name.len() > MAX_NAME || theirs.owner.len() > MAX_NAME {
            return Err(NetError::Protocol(format!("peer's device or owner name is longer than {MAX_NAME} bytes")));
        }
        Ok(theirs)
    }

    /// Opens a stream, sends `msg`, finishes the send side and reads exactly one reply frame,
    /// all within `timeout`.
    pub async fn request(&self, msg: &Message, timeout: Duration) -> Result<Message, NetError> {
        let exchange = async {
            let (mut send, mut recv) = self.conn.open_bi().await?;
            write_frame(&mut send, msg).await?;
            send.finish().map_err(|_| NetError::Closed)?;
            read_frame(&mut recv).await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(res) => res,
            Err(_) => Err(NetError::Timeout),
        }
    }

    /// The next stream the peer opened.
    pub async fn accept_bi(&self) -> Result<(quinn::SendStream, quinn::RecvStream), NetError> {
        Ok(self.conn.accept_bi().await?)
    }

    /// Closes the connection with code 0 and `reason`.
    pub fn close(&self, reason: &str) {
        self.conn.close(VarInt::from_u32(0), reason.as_bytes());
    }

    /// Closes the connection telling the peer it was removed by `name` (this device).
    pub fn close_removed(&self, name: &str) {
        crate::refuse::close_removed(&self.conn, name);
    }

    /// If the peer closed this connection because it removed this device: its name.
    pub fn removed(&self) -> Option<String> {
        self.conn.close_reason().as_ref().and_then(removed_by)
    }

    /// Resolves when the connection is closed, with the reason.
    pub async fn closed(&self) -> quinn::ConnectionError {
        self.conn.closed().await
    }
}

/// The variant name of `msg`, for error messages (never the peer-controlled contents).
fn message_kind(msg: &Message) -> String {
    let dbg = format!("{msg:?}");
    dbg.split(|c: char| !c.is_alphanumeric()).next().unwrap_or("").to_string()
}
