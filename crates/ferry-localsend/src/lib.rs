//! The LocalSend protocol (v2.1 and v2.2), as the LocalSend app and `localsendd` speak it:
//! device info announced over UDP multicast (224.0.0.167:53317), an HTTPS API on TCP 53317
//! (`/api/localsend/v2/{info,register,prepare-upload,upload,cancel}`), self-signed certificates
//! identified by the SHA-256 of their DER (the "fingerprint").
//!
//! Ferry speaks HTTPS only: it serves no plain HTTP and sends nothing to a device that answers
//! only in clear ([`LsError::PlainHttp`]).
//!
//! Every byte from a peer is hostile: JSON bodies and datagrams are capped before they are
//! buffered ([`MAX_JSON`], [`MAX_DATAGRAM`]), every field is checked on parse ([`parse_info`],
//! [`parse_prepare`]), every read has a timeout ([`Limits`]) and the server holds a bounded
//! number of connections. This crate holds no state about devices or sessions: the caller's
//! [`Handler`] decides everything. It depends on no other ferry crate.

mod cert;
mod client;
mod discovery;
mod info;
mod scan;
mod server;
mod tls;

pub use cert::{LocalIdentity, fingerprint_of};
pub use client::{Client, PrepareOutcome};
pub use discovery::Discovery;
pub use info::{
    DeviceInfo, DeviceType, FileMeta, MAX_DATAGRAM, MAX_FILES, MAX_JSON, MAX_PREVIEW, MULTICAST, PORT, PrepareAnswer,
    PrepareUpload, Protocol, fingerprint_eq, parse_answer, parse_info, parse_prepare,
};
pub use scan::scan_targets;
pub use server::{Handler, Peer, PrepareReply, Server, UploadBody, UploadReply};

use std::time::Duration;

/// Everything that can go wrong, worded for a person reading a log line.
#[derive(Debug, thiserror::Error)]
pub enum LsError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS error: {0}")]
    Tls(String),
    /// The device showed a certificate other than the one pinned for it.
    #[error("the device's certificate is {got}, not the pinned {expected}")]
    Pin { expected: String, got: String },
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("{what} is larger than the cap of {cap} bytes")]
    TooLarge { what: &'static str, cap: u64 },
    /// More body bytes arrived than the request declared.
    #[error("the peer sent more bytes than it declared")]
    TooLong,
    /// The connection ended before the declared number of bytes arrived.
    #[error("the peer sent fewer bytes than it declared")]
    Short,
    /// An HTTP answer other than the one the protocol expects.
    #[error("the device answered HTTP {0}")]
    Status(u16),
    /// Another LocalSend (the app, localsendd) holds the TCP port.
    #[error("port {0} is taken by another program (the LocalSend app?)")]
    PortTaken(u16),
    #[error("the device speaks plain HTTP only; Ferry sends over HTTPS only")]
    PlainHttp,
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("HTTP error: {0}")]
    Http(String),
}

impl From<rustls::Error> for LsError {
    fn from(e: rustls::Error) -> Self {
        LsError::Tls(e.to_string())
    }
}

impl From<hyper::Error> for LsError {
    fn from(e: hyper::Error) -> Self {
        // A body cut short shows as an incomplete message (client) or as an UnexpectedEof
        // beneath "error reading a body" (server).
        let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
        let mut eof = e.is_incomplete_message();
        while let Some(s) = source {
            eof |= s.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof);
            source = s.source();
        }
        if eof { LsError::Short } else { LsError::Http(e.to_string()) }
    }
}

/// Timeouts and caps of the server and the client. The defaults are for real networks; tests
/// shorten them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// TCP connect (client). A device on the local network answers in milliseconds; 5 s covers
    /// a phone waking its Wi-Fi.
    pub connect: Duration,
    /// The TLS handshake, both sides: milliseconds on a LAN, so 10 s means gone or stalling.
    pub handshake: Duration,
    /// A request's header (server), from the connection's start or the previous answer.
    pub header: Duration,
    /// The longest pause between two pieces of a body, both ways: 30 s rides out a phone's
    /// Wi-Fi roaming, and a peer that stalls longer is dropped rather than holding a slot.
    pub body_idle: Duration,
    /// A whole JSON body (server): [`MAX_JSON`] at 1 Mbit/s (a poor Wi-Fi link) takes about
    /// 35 s; 60 s stops a trickling peer from holding a connection slot for long.
    pub json_body: Duration,
    /// An answer that needs no person (info, register, cancel, upload's final status).
    pub answer: Duration,
    /// Connections served at once. The app uploads a few files in parallel and each peer needs
    /// one or two; 64 is far above a household's devices and keeps a flood to 64 tasks.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect: Duration::from_secs(5),
            handshake: Duration::from_secs(10),
            header: Duration::from_secs(30),
            body_idle: Duration::from_secs(30),
            json_body: Duration::from_secs(60),
            answer: Duration::from_secs(30),
            max_connections: 64,
        }
    }
}

/// The API's paths (v2; v1 had no TLS and is not spoken).
pub(crate) mod path {
    pub const INFO: &str = "/api/localsend/v2/info";
    pub const REGISTER: &str = "/api/localsend/v2/register";
    pub const PREPARE: &str = "/api/localsend/v2/prepare-upload";
    pub const UPLOAD: &str = "/api/localsend/v2/upload";
    pub const CANCEL: &str = "/api/localsend/v2/cancel";
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_server;
