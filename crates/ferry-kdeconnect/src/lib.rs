//! The KDE Connect protocol, as the KDE desktop daemon (kdeconnect-kde) and the Android app speak
//! it: identity packets (one JSON line), UDP discovery on port 1716, TCP links secured with TLS
//! (the side that opened TCP is the TLS *server*), self-signed certificates whose CN is the
//! device id, pinned after pairing, and payloads served over TLS on a port of 1739-1764.
//!
//! Versions: we announce 8 and accept 7 and 8. Version 8 repeats both identities inside TLS
//! (the one that counts is the one sent inside TLS) and a paired device may not come back on a
//! lower version ([`KdeError::Downgrade`], see [`Pin::min_version`]).
//!
//! Every byte from a peer is hostile: lines are capped before they are buffered, every read of
//! a handshake has a timeout, and malformed input is an error, never a panic. This crate holds
//! no state about devices (who is paired, which certificate is pinned): the caller passes what
//! it knows. It depends on no other ferry crate.

mod cert;
mod discovery;
mod link;
mod packet;
mod payload;
mod tls;

pub use cert::{LocalIdentity, cert_common_name, cert_public_key, verification_key};
pub use discovery::Discovery;
pub use link::{Incoming, Link, LinkReader, LinkWriter, Listener, Pin, connect, connect_pinned};
pub use packet::{DeviceType, Identity, Packet};
pub use payload::{fetch_payload, serve_payload};

/// The protocol version we announce. We accept [`MIN_PROTOCOL_VERSION`]..=this.
pub const PROTOCOL_VERSION: u32 = 8;
/// The oldest version we talk to: 7 is what Debian 12's kdeconnect (22.12) and older Android
/// apps speak; below 7 there was no TLS at all.
pub const MIN_PROTOCOL_VERSION: u32 = 7;
/// The UDP port identity packets are broadcast to (fixed by the protocol).
pub const UDP_PORT: u16 = 1716;
/// The TCP ports a device listens on for links: the first free one (fixed by the protocol).
pub const TCP_PORTS: std::ops::RangeInclusive<u16> = 1716..=1764;
/// The TCP ports a sender serves payloads on: the first free one (fixed by the protocol).
pub const PAYLOAD_PORTS: std::ops::RangeInclusive<u16> = 1739..=1764;
/// One packet line, JSON and newline. Packets we take are identities, pairs, pings and share
/// requests: a shared text is the largest, and a note of more than 1 MiB is no note (files go
/// as payloads, not inside the line). Capped before buffering, so a peer that never sends a
/// newline costs at most this much memory.
pub const MAX_PACKET: usize = 1 << 20;
/// An identity line: deviceId, name, type, version and two capability lists. The Android app's
/// lists are about 3 KiB; 64 KiB is also the most a UDP datagram can carry.
pub const MAX_IDENTITY: usize = 64 * 1024;

/// Everything that can go wrong, worded for a person reading a log line.
#[derive(Debug, thiserror::Error)]
pub enum KdeError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS error: {0}")]
    Tls(String),
    #[error("malformed packet: {0}")]
    Malformed(String),
    #[error("{what} is larger than the cap of {cap} bytes")]
    TooLarge { what: &'static str, cap: u64 },
    /// Another KDE Connect implementation (kdeconnectd, GSConnect) holds the port.
    #[error("port {0} is taken by another program (another KDE Connect?)")]
    PortTaken(u16),
    #[error("no free port in {0}..={1}")]
    NoFreePort(u16, u16),
    /// The peer showed a certificate other than the one pinned for its device id.
    #[error("the device's certificate does not match the one pinned when it was paired")]
    CertMismatch,
    /// A device paired on version `pinned` came back announcing `announced`.
    #[error("the device was paired on protocol {pinned} and now announces {announced}: refused")]
    Downgrade { pinned: u32, announced: u32 },
    #[error("protocol version {0} is not supported (we speak 7 and 8)")]
    Version(u32),
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("the peer closed the connection: {0}")]
    Closed(&'static str),
    #[error("the peer's identity is inconsistent: {0}")]
    Identity(String),
}

impl From<rustls::Error> for KdeError {
    fn from(e: rustls::Error) -> Self {
        KdeError::Tls(e.to_string())
    }
}

/// Milliseconds since the epoch, what KDE puts in a packet's `id`.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests;
