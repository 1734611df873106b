//! The wire half of the test peer, written from KDE Connect's sources (kdeconnect-kde
//! core/backends/lan, core/networkpacket.cpp, kdeconnect-android's PairingHandler) and not
//! from ferry-kdeconnect: a certificate (CN = device id), the fields it reads from the other
//! side's certificate (a small DER walk), the verification key, TLS in either role, and the
//! two link handshakes (the side that opened TCP sends its identity in plain text and is the
//! TLS server; version 8 repeats both identities inside TLS).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

/// Every network step of a handshake: a LAN answers in milliseconds; 10 s is KDE's own bound.
pub const STEP: Duration = Duration::from_secs(10);
/// The longest line the peer reads: KDE caps nothing, but a test peer must not be the thing
/// that runs out of memory when the daemon misbehaves. 1 MiB is larger than any packet.
pub const MAX_LINE: usize = 1 << 20;

pub type Stream = BufReader<TlsStream<TcpStream>>;

/// Our certificate and key (ECDSA P-256, like current Android), persisted in the state folder.
pub struct Local {
    pub id: String,
    pub cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl Local {
    /// Loads `cert.der`/`key.der` from `dir` when their CN is `id`, else makes new ones.
    pub fn load_or_create(dir: &Path, id: &str) -> anyhow::Result<Local> {
        std::fs::create_dir_all(dir)?;
        if let (Ok(cert_der), Ok(key_der)) = (std::fs::read(dir.join("cert.der")), std::fs::read(dir.join("key.der")))
            && cert_fields(&cert_der).is_ok_and(|f| f.cn == id)
        {
            return Ok(Local { id: id.into(), cert_der, key_der });
        }
        Local::create(dir, id)
    }

    /// A new key and certificate for the same id (what a reinstalled phone looks like).
    pub fn create(dir: &Path, id: &str) -> anyhow::Result<Local> {
        std::fs::create_dir_all(dir)?;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, id);
        dn.push(rcgen::DnType::OrganizationName, "KDE");
        dn.push(rcgen::DnType::OrganizationalUnitName, "KDE Connect");
        params.distinguished_name = dn;
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2040, 1, 1);
        let cert = params.self_signed(&key)?;
        let me = Local { id: id.into(), cert_der: cert.der().to_vec(), key_der: key.serialize_der() };
        std::fs::write(dir.join("cert.der"), &me.cert_der)?;
        std::fs::write(dir.join("key.der"), &me.key_der)?;
        Ok(me)
    }

    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from(self.cert_der.clone())]
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates: the subject's CN and the SubjectPublicKeyInfo, read with a minimal DER walk.

/// What the peer reads of a certificate.
pub struct CertFields {
    pub cn: String,
    /// The DER SubjectPublicKeyInfo (what Qt's `publicKey().toDer()` and Java's
    /// `publicKey.encoded` give).
    pub spki: Vec<u8>,
}

/// One DER element: (tag, contents, whole element, rest).
type Element<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn der(data: &[u8]) -> anyhow::Result<Element<'_>> {
    anyhow::ensure!(data.len() >= 2, "DER: truncated");
    let (tag, first) = (data[0], data[1]);
    let (len, head) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        anyhow::ensure!((1..=4).contains(&n) && data.len() >= 2 + n, "DER: bad length");
        (data[2..2 + n].iter().fold(0usize, |a, b| (a << 8) | *b as usize), 2 + n)
    };
    anyhow::ensure!(data.len() >= head + len, "DER: element longer than its data");
    Ok((tag, &data[head..head + len], &data[..head + len], &data[head + len..]))
}

pub fn cert_fields(cert: &[u8]) -> anyhow::Result<CertFields> {
    let (_, certificate, _, _) = der(cert)?;
    let (_, tbs, _, _) = der(certificate)?;
    let mut fields = vec![];
    let mut rest = tbs;
    while !rest.is_empty() && fields.len() < 8 {
        let (tag, contents, whole, r) = der(rest)?;
        if tag != 0xa0 {
            fields.push((contents, whole)); // [0] version skipped: serial is field 0
        }
        rest = r;
    }
    // serial, signature algorithm, issuer, validity, subject, subjectPublicKeyInfo
    anyhow::ensure!(fields.len() >= 6, "certificate: too few fields");
    let spki = fields[5].1.to_vec();
    let mut rdns = fields[4].0;
    while !rdns.is_empty() {
        let (_, set, _, r) = der(rdns)?;
        rdns = r;
        let (_, attr, _, _) = der(set)?;
        let (_, oid, _, value) = der(attr)?;
        if oid == [0x55, 0x04, 0x03] {
            let (_, name, _, _) = der(value)?;
            return Ok(CertFields { cn: String::from_utf8(name.to_vec())?, spki });
        }
    }
    anyhow::bail!("certificate: no common name")
}

/// The verification key both screens show (kdeconnect-android `PairingHandler`): SHA-256 over
/// the two public keys, the bytewise larger first, then (version 8) the requester's pair
/// timestamp in decimal; the first 8 hex digits, upper case.
pub fn verification_key(ours: &[u8], theirs: &[u8], timestamp: Option<i64>) -> anyhow::Result<String> {
    let (a, b) = (cert_fields(ours)?.spki, cert_fields(theirs)?.spki);
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    let mut h = Sha256::new();
    h.update(&hi);
    h.update(&lo);
    if let Some(ts) = timestamp {
        h.update(ts.to_string().as_bytes());
    }
    Ok(hex(&h.finalize())[..8].to_uppercase())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// TLS: self-signed certificates on both sides; the handshake proves the key, the caller
// compares certificates (CN, pin). TLS 1.2 only, as the Android app.

#[derive(Debug)]
struct AnyCert(WebPkiSupportedAlgorithms);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(m, c, d, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(m, c, d, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

impl ClientCertVerifier for AnyCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
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
        verify_tls12_signature(m, c, d, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(m, c, d, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

fn verifier() -> Arc<AnyCert> {
    Arc::new(AnyCert(provider().signature_verification_algorithms))
}

const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

/// TLS as the server over `tcp`; returns the stream and the client's certificate.
pub async fn tls_server(local: &Local, tcp: TcpStream) -> anyhow::Result<(TlsStream<TcpStream>, Vec<u8>)> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(TLS12)?
        .with_client_cert_verifier(verifier())
        .with_single_cert(local.chain(), local.key())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let tls = tokio::time::timeout(STEP, acceptor.accept(tcp)).await??;
    let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
    Ok((TlsStream::from(tls), cert.ok_or_else(|| anyhow::anyhow!("the client showed no certificate"))?))
}

/// TLS as the client over `tcp`; returns the stream and the server's certificate.
pub async fn tls_client(local: &Local, tcp: TcpStream) -> anyhow::Result<(TlsStream<TcpStream>, Vec<u8>)> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(TLS12)?
        .dangerous()
        .with_custom_certificate_verifier(verifier())
        .with_client_auth_cert(local.chain(), local.key())?;
    let ip = tcp.peer_addr()?.ip();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = tokio::time::timeout(STEP, connector.connect(ServerName::IpAddress(ip.into()), tcp)).await??;
    let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
    Ok((TlsStream::from(tls), cert.ok_or_else(|| anyhow::anyhow!("the server showed no certificate"))?))
}

// ---------------------------------------------------------------------------------------------
// Packets and the link handshakes.

/// A packet line: `{"id": ms, "type": ..., "body": ...}` and a newline.
pub fn packet(kind: &str, body: Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(&json!({ "id": now_ms(), "type": kind, "body": body })).unwrap();
    line.push(b'\n');
    line
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// One line of at most `cap` bytes; `None` at a clean end of the stream.
pub async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, cap: usize) -> anyhow::Result<Option<Vec<u8>>> {
    let mut line = vec![];
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            anyhow::ensure!(line.is_empty(), "the stream ended inside a line");
            return Ok(None);
        }
        let nl = buf.iter().position(|b| *b == b'\n');
        let take = nl.unwrap_or(buf.len());
        anyhow::ensure!(line.len() + take <= cap, "a line longer than {cap} bytes");
        line.extend_from_slice(&buf[..take]);
        r.consume(take + usize::from(nl.is_some()));
        if nl.is_some() {
            return Ok(Some(line));
        }
    }
}

/// The other side's identity packet, parsed just enough: id, name, version, tcp port.
#[derive(Clone, Debug)]
pub struct TheirIdentity {
    pub id: String,
    pub name: String,
    pub version: u32,
    pub tcp_port: Option<u16>,
}

pub fn parse_identity(line: &[u8]) -> anyhow::Result<TheirIdentity> {
    let v: Value = serde_json::from_slice(line)?;
    anyhow::ensure!(v["type"] == "kdeconnect.identity", "not an identity: {}", v["type"]);
    let b = &v["body"];
    Ok(TheirIdentity {
        id: b["deviceId"].as_str().ok_or_else(|| anyhow::anyhow!("identity without deviceId"))?.to_string(),
        name: b["deviceName"].as_str().unwrap_or_default().to_string(),
        version: b["protocolVersion"].as_u64().unwrap_or(0) as u32,
        tcp_port: b["tcpPort"].as_u64().and_then(|p| u16::try_from(p).ok()),
    })
}

/// A link once both handshakes are done.
pub struct Established {
    pub stream: Stream,
    pub their: TheirIdentity,
    pub their_cert: Vec<u8>,
    pub version: u32,
    pub remote: SocketAddr,
}

/// Version 8: both identities again inside TLS, ours first (both sides write, then read).
async fn inner_identities(stream: &mut Stream, ours: &[u8]) -> anyhow::Result<TheirIdentity> {
    tokio::time::timeout(STEP, async {
        stream.write_all(ours).await?;
        stream.flush().await
    })
    .await??;
    let line = tokio::time::timeout(STEP, read_line(stream, MAX_LINE))
        .await??
        .ok_or_else(|| anyhow::anyhow!("closed before its identity inside TLS"))?;
    parse_identity(&line)
}

/// We open TCP to `addr`: our identity in plain text, then TLS as the server.
pub async fn open(addr: SocketAddr, local: &Local, ours: &[u8], protocol: u32) -> anyhow::Result<Established> {
    let mut tcp = tokio::time::timeout(STEP, TcpStream::connect(addr)).await??;
    tcp.write_all(ours).await?;
    let (tls, their_cert) = tls_server(local, tcp).await?;
    let mut stream = BufReader::new(tls);
    let cn = cert_fields(&their_cert)?.cn;
    let their = if protocol >= 8 {
        inner_identities(&mut stream, ours).await?
    } else {
        // Version 7 says nothing more about the other side than its certificate.
        TheirIdentity { id: cn.clone(), name: String::new(), version: 7, tcp_port: Some(addr.port()) }
    };
    anyhow::ensure!(their.id == cn, "the certificate's CN {cn:?} is not the device id {:?}", their.id);
    let version = their.version.min(protocol);
    Ok(Established { stream, their, their_cert, version, remote: addr })
}

/// They opened TCP: their identity in plain text, then TLS as the client.
pub async fn accept(tcp: TcpStream, local: &Local, ours: &[u8], protocol: u32) -> anyhow::Result<Established> {
    let remote = tcp.peer_addr()?;
    let mut plain = BufReader::new(tcp);
    let line = tokio::time::timeout(STEP, read_line(&mut plain, MAX_LINE))
        .await??
        .ok_or_else(|| anyhow::anyhow!("closed before its identity"))?;
    let mut their = parse_identity(&line)?;
    let (tls, their_cert) = tls_client(local, plain.into_inner()).await?;
    let mut stream = BufReader::new(tls);
    let cn = cert_fields(&their_cert)?.cn;
    let version = their.version.min(protocol);
    if version >= 8 {
        let inner = inner_identities(&mut stream, ours).await?;
        anyhow::ensure!(inner.id == their.id, "the identity inside TLS names another device");
        their = inner;
    }
    anyhow::ensure!(their.id == cn, "the certificate's CN {cn:?} is not the device id {:?}", their.id);
    Ok(Established { stream, their, their_cert, version, remote })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        data_encoding::BASE64.decode(s.as_bytes()).unwrap()
    }

    /// The vectors of kdeconnect-android's PairingHandlerTest (two of its certificates).
    #[test]
    fn verification_key_matches_android() {
        let a = b64(concat!(
            "MIIBkzCCATmgAwIBAgIBATAKBggqhkjOPQQDBDBTMS0wKwYDVQQDDCRlZTA2MWE3NV9lNDAzXzRlY2NfOTI2",
            "MV81ZmZlMjcyMmY2OTgxFDASBgNVBAsMC0tERSBDb25uZWN0MQwwCgYDVQQKDANLREUwHhcNMjMwOTE1MjIw",
            "MDAwWhcNMzQwOTE1MjIwMDAwWjBTMS0wKwYDVQQDDCRlZTA2MWE3NV9lNDAzXzRlY2NfOTI2MV81ZmZlMjcy",
            "MmY2OTgxFDASBgNVBAsMC0tERSBDb25uZWN0MQwwCgYDVQQKDANLREUwWTATBgcqhkjOPQIBBggqhkjOPQMB",
            "BwNCAASqOIKTm5j6x8DKgYSkItLmjCgIXP0gkOW6bmVvloDGsYnvqYLMFGe7YW8g8lT/qPBTEfDOM4UpQ8X6",
            "jidE+XrnMAoGCCqGSM49BAMEA0gAMEUCIEpk6VNpbt3tfbWDf0TmoJftRq3wAs3Dke7d5vMZlivyAiEA/ZXt",
            "SRqPjs/2RN9SynKhSUA9/z0PNq6LYoAaC6TdomM="
        ));
        let b = b64(concat!(
            "MIIBkzCCATmgAwIBAgIBATAKBggqhkjOPQQDBDBTMS0wKwYDVQQDDCQxNTdiYmMyOF82ZjJiXzRiMTZfYmQw",
            "Ml8xMzM0NWMwMjU0M2MxFDASBgNVBAsMC0tERSBDb25uZWN0MQwwCgYDVQQKDANLREUwHhcNMjQwMTE3MjMw",
            "MDAwWhcNMzUwMTE3MjMwMDAwWjBTMS0wKwYDVQQDDCQxNTdiYmMyOF82ZjJiXzRiMTZfYmQwMl8xMzM0NWMw",
            "MjU0M2MxFDASBgNVBAsMC0tERSBDb25uZWN0MQwwCgYDVQQKDANLREUwWTATBgcqhkjOPQIBBggqhkjOPQMB",
            "BwNCAAQ5W53rrDJps9v/sszQf0eLtvoGiRbfsY+snO6IJJfi1pFeHDQj2nAE+aTyUYelrcx1eIuqxFHnJTFt",
            "/HqXwuAvMAoGCCqGSM49BAMEA0gAMEUCIBIk3zKPz/M0c82nvCGFDXGGmfdojHsx3G5DbYNNKqFVAiEAzhBG",
            "e960/4NDiaVcOplBaeg5xNJKs3Kq+22J6JOii4Y="
        ));
        assert_eq!(cert_fields(&a).unwrap().cn, "ee061a75_e403_4ecc_9261_5ffe2722f698");
        assert_eq!(verification_key(&a, &b, Some(1737228658)).unwrap(), "54DC916E");
        assert_eq!(verification_key(&b, &a, Some(1737228658)).unwrap(), "54DC916E");
        assert_eq!(verification_key(&a, &b, Some(2737228658)).unwrap(), "8C07153A");
        assert_eq!(verification_key(&a, &b, None).unwrap(), "F3900DB5");
        assert_eq!(verification_key(&a, &a, None).unwrap(), "97A75917");
    }
}
