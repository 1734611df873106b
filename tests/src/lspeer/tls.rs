//! The peer's certificate and TLS, as the LocalSend app does it (app/lib/util/security_helper.dart,
//! `generateSecurityContext` / `calculateHashOfCertificate`): a self-signed certificate with
//! CN "LocalSend User", valid ten years; the fingerprint is SHA-256 over the certificate's DER
//! in hex. The app makes an RSA-2048 key; ring cannot generate RSA keys, so the RSA variant
//! signs a fresh certificate with a fixed test key (rsa-test-key.pem, made for this peer only);
//! the ECDSA variant makes a new P-256 key. Either way every peer has its own certificate and
//! so its own fingerprint.
//!
//! Both sides accept any self-signed certificate during the handshake (LocalSend has no CA);
//! the client pins the server's fingerprint when it knows it (compared case-insensitively,
//! inside the handshake, so nothing is sent to an impostor), and the server requires a client
//! certificate and hands its fingerprint to the HTTP layer.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::{Digest, Sha256};

/// A 2048-bit RSA key made with openssl for this test peer only (it protects nothing).
const RSA_TEST_KEY: &str = include_str!("rsa-test-key.pem");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ecdsa,
}

/// Our certificate and key.
pub struct Identity {
    pub cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl Identity {
    pub fn create(kind: KeyKind) -> anyhow::Result<Identity> {
        let key = match kind {
            KeyKind::Rsa => rcgen::KeyPair::from_pem_and_sign_algo(RSA_TEST_KEY, &rcgen::PKCS_RSA_SHA256)?,
            KeyKind::Ecdsa => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
        };
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "LocalSend User");
        params.distinguished_name = dn;
        // A random serial: two RSA peers share the key, their certificates must still differ.
        let serial: [u8; 8] = rand::random();
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key)?;
        Ok(Identity { cert_der: cert.der().to_vec(), key_der: key.serialize_der() })
    }

    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from(self.cert_der.clone())]
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// SHA-256 of `der`, lower-case hex (callers change the case to what they announce).
pub fn fingerprint(der: &[u8]) -> String {
    hex(&Sha256::digest(der))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn same_fingerprint(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any certificate whose signature checks out; with `pin`, only one whose fingerprint
/// is the pinned one (any letter case).
#[derive(Debug)]
struct Verifier {
    algs: WebPkiSupportedAlgorithms,
    pin: Option<String>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        cert: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.pin {
            Some(pin) if !same_fingerprint(pin, &fingerprint(cert)) => {
                Err(rustls::Error::General(format!("server certificate {} is not the pinned {pin}", fingerprint(cert))))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(m, c, d, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(m, c, d, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

impl ClientCertVerifier for Verifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(m, c, d, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(m, c, d, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

fn verifier(pin: Option<String>) -> Arc<Verifier> {
    Arc::new(Verifier { algs: provider().signature_verification_algorithms, pin })
}

/// The server side: our certificate, a client certificate required.
pub fn acceptor(me: &Identity) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier(None))
        .with_single_cert(me.chain(), me.key())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The client side: our certificate shown, the server's pinned to `pin` when given.
pub fn connector(me: &Identity, pin: Option<String>) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier(pin))
        .with_client_auth_cert(me.chain(), me.key())?;
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
