//! TLS for the API. LocalSend certificates are self-signed, so there is no chain to check: the
//! handshake proves that the peer holds the key of the certificate it shows (signatures are
//! verified), and the certificate is identified by its fingerprint. The server asks for a
//! client certificate but does not require one (the app sends one, other clients may not);
//! the client always shows ours, and checks the caller's pin right after the handshake,
//! before a byte of a request. TLS 1.2 (older phones) and 1.3.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::{LocalIdentity, LsError, fingerprint_eq, fingerprint_of};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Accepts any certificate whose key signs the handshake; who it is, is the caller's question.
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
        _server_name: &rustls::pki_types::ServerName<'_>,
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
    /// Offered, not required: a client without a certificate is served, with no fingerprint.
    fn client_auth_mandatory(&self) -> bool {
        false
    }
}

pub(crate) fn acceptor(local: &LocalIdentity) -> Result<TlsAcceptor, LsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(SelfSigned::new())
        .with_single_cert(local.cert_chain(), local.private_key())?;
    // HTTP/1.1 only; the app's clients speak nothing else to this API.
    config.alpn_protocols = vec![];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

pub(crate) fn connector(local: &LocalIdentity) -> Result<TlsConnector, LsError> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(SelfSigned::new())
        .with_client_auth_cert(local.cert_chain(), local.private_key())?;
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The fingerprint of the first certificate a TLS peer showed, if any.
pub(crate) fn peer_fingerprint(conn: &rustls::CommonState) -> Option<String> {
    conn.peer_certificates().and_then(|c| c.first()).map(|c| fingerprint_of(c))
}

/// A pinned device must show the pinned fingerprint (compared without regard to case).
pub(crate) fn check_pin(seen: &str, pinned: Option<&str>) -> Result<(), LsError> {
    match pinned {
        Some(p) if !fingerprint_eq(p, seen) => Err(LsError::Pin { expected: p.to_string(), got: seen.to_string() }),
        _ => Ok(()),
    }
}

/// A client that shows no certificate (tests: other LocalSend clients may not).
#[cfg(test)]
pub(crate) fn connector_without_certificate() -> TlsConnector {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(SelfSigned::new())
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// A client limited to TLS 1.2, with our certificate (tests: older phones).
#[cfg(test)]
pub(crate) fn connector_tls12(local: &LocalIdentity) -> TlsConnector {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(SelfSigned::new())
        .with_client_auth_cert(local.cert_chain(), local.private_key())
        .unwrap();
    TlsConnector::from(Arc::new(config))
}
