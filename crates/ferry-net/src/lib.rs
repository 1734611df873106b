//! Ferry's transport: owns the device identity (a self-signed certificate whose SHA-256 is the
//! [`DeviceId`]), pinned mutual TLS 1.3 over QUIC, length-prefixed framed streams, and discovery (address hints
//! from mDNS and static addresses; see [`discovery`]'s module docs).
//!
//! Trust comes only from the TLS identity: a peer *is* the hash of the certificate it proved
//! possession of in the handshake, never anything it says about itself later. This crate does
//! not decide who is trusted (the node does, from [`PeerConn::peer`]); it only guarantees that
//! the id is authentic, and, when dialing a known device, refuses any other certificate at the
//! TLS level. It carries out two decisions the node hands it: the ids to refuse (removed
//! devices, closed right after the handshake with [`CLOSE_REMOVED`]) and the addresses of
//! paired devices, which skip the budget of handshakes for unknown addresses (`admit.rs`).
//! No storage, no sync logic.

mod admit;
mod discovery;
mod endpoint;
mod frame;
mod identity;
mod refuse;
mod tls;

pub use discovery::{
    AddressBook, Discovery, InterfaceReport, Mdns, MdnsConfig, MdnsError, MdnsReport, Notifier, SERVICE_TYPE, Sighting,
    StaticAddresses, mdns_interfaces,
};
pub use endpoint::{Endpoint, PeerConn};
pub use frame::{decode_frame, read_frame, write_frame, write_frame_owned};
pub use identity::{Identity, device_id_of};
/// Stream halves, for code that serves requests with [`read_frame`] / [`write_frame`].
pub use quinn::{RecvStream, SendStream};
pub use refuse::{CLOSE_REMOVED, removed_by};

pub use ferry_proto::DeviceId;

/// Everything that can go wrong in the transport, worded for a person reading a log line.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("certificate/TLS error: {0}")]
    Tls(String),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("sending to the peer failed: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("receiving from the peer failed: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("bad frame from the peer: {0}")]
    Frame(#[from] ferry_proto::wire::FrameError),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("the peer closed the stream")]
    Closed,
    #[error("timed out waiting for the peer")]
    Timeout,
    /// The peer removed this device: it refuses this device's certificate.
    #[error("this device was removed by {by}")]
    Removed { by: String },
}

#[cfg(test)]
mod tests;
