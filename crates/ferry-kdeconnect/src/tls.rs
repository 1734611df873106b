//! TLS for links and payloads. KDE's certificates are self-signed, so there is no chain to
//! check: the handshake only proves that the peer holds the key of the certificate it shows
//! (signatures are verified), and the caller compares that certificate with the pinned one
//! ([`check_pin`]) before a byte of a packet is read or written. Both sides always show a
//! certificate (KDE's server asks for the client's), TLS 1.2 (Android) and 1.3 are allowed.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use crate::{KdeError, LocalIdentity};

/// A TLS handshake on a local network takes milliseconds; a peer that has not finished in
/// 10 s is gone or stalling on purpose, and must not hold a task.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Accepts any certificate whose key signs the handshake; the pin is checked by the caller.
#[derive(Debug)]
struct SelfSigned(WebPkiSupportedAlgorithms);

impl SelfSigned {
    fn new() -> Arc<SelfSigned> {
        Arc::new(SelfSigned(provider().signature_verification_algorithms))
    }
}

impl ServerCertVerifier for SelfSigned {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

impl ClientCertVerifier for SelfSigned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
    /// A peer without a certificate has no identity: refused.
    fn client_auth_mandatory(&self) -> bool {
        true
    }
}

pub(crate) fn acceptor(local: &LocalIdentity) -> Result<TlsAcceptor, KdeError> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(SelfSigned::new())
        .with_single_cert(local.cert_chain(), local.private_key())?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

pub(crate) fn connector(local: &LocalIdentity) -> Result<TlsConnector, KdeError> {
    connector_with(local, VERSIONS)
}

/// A connector limited to `versions` (tests: a TLS 1.2-only peer, like Android).
pub(crate) fn connector_with(
    local: &LocalIdentity,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<TlsConnector, KdeError> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)?
        .dangerous()
        .with_custom_certificate_verifier(SelfSigned::new())
        .with_client_auth_cert(local.cert_chain(), local.private_key())?;
    Ok(TlsConnector::from(Arc::new(config)))
}

/// TLS as the server (we opened the TCP connection, or we serve a payload), bounded in time.
pub(crate) async fn as_server<S: AsyncRead + AsyncWrite + Unpin>(
    acceptor: &TlsAcceptor,
    io: S,
) -> Result<(TlsStream<S>, Vec<u8>), KdeError> {
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io))
        .await
        .map_err(|_| KdeError::Timeout("the TLS handshake"))?
        .map_err(|e| KdeError::Tls(e.to_string()))?;
    let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
    Ok((TlsStream::from(tls), cert.ok_or_else(|| KdeError::Tls("the peer showed no certificate".into()))?))
}

/// TLS as the client (the peer opened the TCP connection, or we fetch a payload).
pub(crate) async fn as_client<S: AsyncRead + AsyncWrite + Unpin>(
    connector: &TlsConnector,
    io: S,
    peer_ip: std::net::IpAddr,
) -> Result<(TlsStream<S>, Vec<u8>), KdeError> {
    // An IP server name sends no SNI; KDE's server ignores it anyway.
    let name = ServerName::IpAddress(peer_ip.into());
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, io))
        .await
        .map_err(|_| KdeError::Timeout("the TLS handshake"))?
        .map_err(|e| KdeError::Tls(e.to_string()))?;
    let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
    Ok((TlsStream::from(tls), cert.ok_or_else(|| KdeError::Tls("the peer showed no certificate".into()))?))
}

/// A pinned device must show exactly its pinned certificate.
pub(crate) fn check_pin(seen: &[u8], pinned: Option<&[u8]>) -> Result<(), KdeError> {
    match pinned {
        Some(p) if p != seen => Err(KdeError::CertMismatch),
        _ => Ok(()),
    }
}
