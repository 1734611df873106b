//! TLS 1.3 configuration with device-certificate verifiers.
//!
//! Device certificates are self-signed, so there is no chain to build and no name or expiry to
//! check: what matters is that the peer proves possession of the certificate's key (the TLS 1.3
//! `CertificateVerify` signature, checked with the provider's algorithms) and, when dialing a
//! known device, that the certificate hashes to the expected [`DeviceId`].

use std::sync::Arc;

use ferry_proto::DeviceId;
use ferry_proto::wire::ALPN;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::{Identity, NetError, device_id_of};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(what: &str) -> impl FnOnce(rustls::Error) -> NetError + '_ {
    move |e| NetError::Tls(format!("{what}: {e}"))
}

/// Checks only that the certificate parses as X.509 (names, expiry and issuer are ignored).
fn check_parses(cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    rustls::server::ParsedCertificate::try_from(cert).map(|_| ())
}

fn verify13(
    algs: &WebPkiSupportedAlgorithms,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
}

/// Client side: accepts any device certificate, optionally pinned to one [`DeviceId`].
#[derive(Debug)]
pub(crate) struct PinnedServerVerifier {
    expect: Option<DeviceId>,
    algs: WebPkiSupportedAlgorithms,
}

#[cfg(test)]
impl PinnedServerVerifier {
    pub(crate) fn any() -> Self {
        PinnedServerVerifier { expect: None, algs: provider().signature_verification_algorithms }
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(expect) = self.expect {
            let got = device_id_of(end_entity);
            if got != expect {
                return Err(rustls::Error::General(format!(
                    "peer is device {} but {} was expected",
                    got.short(),
                    expect.short()
                )));
            }
        }
        check_parses(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify13(&self.algs, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Server side: a client certificate is mandatory; any device certificate is accepted here
/// (the application decides who is trusted from the resulting [`DeviceId`]).
#[derive(Debug)]
pub(crate) struct AnyClientVerifier {
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        check_parses(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify13(&self.algs, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

pub(crate) fn server_config(identity: &Identity) -> Result<rustls::ServerConfig, NetError> {
    let provider = provider();
    let verifier = Arc::new(AnyClientVerifier { algs: provider.signature_verification_algorithms });
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err("TLS 1.3 is not available"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.cert_chain(), identity.private_key())
        .map_err(tls_err("the device certificate or key is unusable"))?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}

pub(crate) fn client_config(identity: &Identity, expect: Option<DeviceId>) -> Result<rustls::ClientConfig, NetError> {
    let provider = provider();
    let verifier = Arc::new(PinnedServerVerifier { expect, algs: provider.signature_verification_algorithms });
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err("TLS 1.3 is not available"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(identity.cert_chain(), identity.private_key())
        .map_err(tls_err("the device certificate or key is unusable"))?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}
