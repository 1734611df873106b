//! Our KDE Connect identity (a self-signed certificate, CN = device id, O=KDE, OU=Kde connect)
//! persisted across restarts, the few fields we read from a peer's certificate (its public key
//! and CN, with a minimal DER reader: no general X.509 parsing of hostile input), and the
//! verification key both screens show while pairing.

use std::io::Write;
use std::path::Path;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use crate::packet::valid_device_id;
use crate::{DeviceType, Identity, KdeError, PROTOCOL_VERSION};

const CERT_FILE: &str = "kdeconnect-cert.der";
const KEY_FILE: &str = "kdeconnect-key.der";
/// The capabilities we take and send: notes (ping with a message, shared text) and files.
const CAPABILITIES: [&str; 2] = ["kdeconnect.ping", "kdeconnect.share.request"];
/// KDE's certificates are valid from a year ago to ten years ahead; we do the same so a peer
/// with a clock a little off still accepts ours.
const VALID_YEARS_BEFORE: i32 = 1;
const VALID_YEARS_AFTER: i32 = 10;

/// Our identity. The key is ECDSA P-256: Android tops out at TLS 1.2 with only ECDHE-ECDSA
/// AES-GCM suites in common with rustls (KDE 22.12's RSA suite is CBC, which rustls lacks).
pub struct LocalIdentity {
    pub device_id: String,
    pub cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl LocalIdentity {
    /// Loads the certificate and key from `dir`, or creates them (key file 0600) on first use.
    pub fn load_or_create(dir: &Path) -> Result<LocalIdentity, KdeError> {
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        if cert_path.exists() && key_path.exists() {
            let cert_der = std::fs::read(&cert_path)?;
            let key_der = std::fs::read(&key_path)?;
            let device_id = cert_common_name(&cert_der)?;
            if !valid_device_id(&device_id) {
                return Err(KdeError::Identity(format!("{} holds no KDE Connect device id", cert_path.display())));
            }
            let me = LocalIdentity { device_id, cert_der, key_der };
            me.certified_key()?; // the key must load, and now rather than at the first handshake
            return Ok(me);
        }
        std::fs::create_dir_all(dir)?;
        let me = LocalIdentity::generate()?;
        write_atomic(&key_path, &me.key_der, 0o600)?;
        write_atomic(&cert_path, &me.cert_der, 0o644)?;
        Ok(me)
    }

    fn generate() -> Result<LocalIdentity, KdeError> {
        let tls = |e: rcgen::Error| KdeError::Tls(format!("cannot create the certificate: {e}"));
        let device_id = new_device_id();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(tls)?;
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, device_id.as_str());
        dn.push(rcgen::DnType::OrganizationName, "KDE");
        dn.push(rcgen::DnType::OrganizationalUnitName, "Kde connect");
        params.distinguished_name = dn;
        let year = this_year();
        params.not_before = rcgen::date_time_ymd(year - VALID_YEARS_BEFORE, 1, 1);
        params.not_after = rcgen::date_time_ymd(year + VALID_YEARS_AFTER, 1, 1);
        let cert = params.self_signed(&key).map_err(tls)?;
        Ok(LocalIdentity { device_id, cert_der: cert.der().to_vec(), key_der: key.serialize_der() })
    }

    /// Our identity packet's contents: ping and share in both directions.
    pub fn identity(&self, name: &str, device_type: DeviceType, tcp_port: Option<u16>) -> Identity {
        let caps: Vec<String> = CAPABILITIES.iter().map(|c| c.to_string()).collect();
        Identity {
            device_id: self.device_id.clone(),
            device_name: crate::packet::filter_name(name),
            device_type,
            protocol_version: PROTOCOL_VERSION,
            incoming: caps.clone(),
            outgoing: caps,
            tcp_port,
        }
    }

    fn certified_key(&self) -> Result<CertifiedKey, KdeError> {
        let signer = rustls::crypto::ring::sign::any_supported_type(&self.private_key())?;
        Ok(CertifiedKey::new(self.cert_chain(), signer))
    }

    pub(crate) fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from(self.cert_der.clone())]
    }

    pub(crate) fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// 32 lowercase hex digits: what current KDE and Android generate, and what 22.12 (which
/// checks nothing) and current versions (32-38 of `[A-Za-z0-9_]`) both accept.
fn new_device_id() -> String {
    let mut bytes = [0u8; 16];
    // ring's system random: the same source the key pair came from.
    use rustls::crypto::ring::default_provider;
    let _ = default_provider().secure_random.fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn this_year() -> i32 {
    const SECS_PER_YEAR: u64 = 31_556_952; // the Gregorian mean year
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    1970 + (secs / SECS_PER_YEAR) as i32
}

/// temp, fsync, rename, fsync dir: a crash leaves the old file or the new one, never half.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), KdeError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The verification key both screens show. KDE: the SHA-256 of both SubjectPublicKeyInfo DERs,
/// the larger (bytewise) first; version 8 appends the pair packet's timestamp in decimal and
/// shows the first 8 hex digits in upper case. 22.12 (version 7) shows the first 8 hex digits
/// of the same hash without the timestamp (its notification: "Key: 1a2b3c4d...").
pub fn verification_key(
    our_cert_der: &[u8],
    their_cert_der: &[u8],
    protocol: u32,
    timestamp: Option<i64>,
) -> Result<String, KdeError> {
    let mut a = cert_public_key(our_cert_der)?;
    let mut b = cert_public_key(their_cert_der)?;
    if a < b {
        std::mem::swap(&mut a, &mut b);
    }
    let mut h = Sha256::new();
    h.update(&a);
    h.update(&b);
    if protocol >= 8 {
        let ts = timestamp.ok_or_else(|| KdeError::Malformed("a version 8 pairing needs the timestamp".into()))?;
        h.update(ts.to_string().as_bytes());
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(if protocol >= 8 { hex[..8].to_uppercase() } else { hex[..8].to_string() })
}

/// One DER element: (tag, contents, the rest after it, the element's whole length).
type Tlv<'a> = (u8, &'a [u8], &'a [u8], usize);
/// A field of the tbsCertificate: (tag, contents, the whole element).
type Field<'a> = (u8, &'a [u8], &'a [u8]);

/// Reads one DER element. Lengths of more than 3 bytes (16 MiB) are refused.
fn tlv(data: &[u8]) -> Result<Tlv<'_>, KdeError> {
    let bad = || KdeError::Malformed("certificate is not valid DER".into());
    let (&tag, rest) = data.split_first().ok_or_else(bad)?;
    let (&first, rest) = rest.split_first().ok_or_else(bad)?;
    let (len, rest, head) = if first < 0x80 {
        (first as usize, rest, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 3 || rest.len() < n {
            return Err(bad());
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..], 2 + n)
    };
    if rest.len() < len {
        return Err(bad());
    }
    Ok((tag, &rest[..len], &rest[len..], head + len))
}

const SEQUENCE: u8 = 0x30;

/// The tbsCertificate's fields up to and including subjectPublicKeyInfo, each as (tag, contents, whole).
fn tbs_fields(cert: &[u8]) -> Result<Vec<Field<'_>>, KdeError> {
    let (tag, cert_body, _, _) = tlv(cert)?;
    let (tbs_tag, mut tbs, _, _) = tlv(cert_body)?;
    if tag != SEQUENCE || tbs_tag != SEQUENCE {
        return Err(KdeError::Malformed("certificate is not an X.509 certificate".into()));
    }
    let mut fields = vec![];
    // [0] version (optional), serial, signature, issuer, validity, subject, subjectPublicKeyInfo
    while fields.len() < 7 && !tbs.is_empty() {
        let (t, contents, rest, n) = tlv(tbs)?;
        fields.push((t, contents, &tbs[..n]));
        tbs = rest;
    }
    if fields.first().map(|f| f.0) != Some(0xa0) {
        fields.insert(0, (0xa0, &[][..], &[][..])); // v1 certificate: no version field
    }
    if fields.len() < 7 || fields[5].0 != SEQUENCE || fields[6].0 != SEQUENCE {
        return Err(KdeError::Malformed("certificate is missing its subject or public key".into()));
    }
    Ok(fields)
}

/// The DER SubjectPublicKeyInfo of a certificate (what Qt's `publicKey().toDer()` gives).
pub fn cert_public_key(cert_der: &[u8]) -> Result<Vec<u8>, KdeError> {
    Ok(tbs_fields(cert_der)?[6].2.to_vec())
}

/// The subject's common name: a KDE Connect certificate carries its device id there.
pub fn cert_common_name(cert_der: &[u8]) -> Result<String, KdeError> {
    const CN_OID: [u8; 3] = [0x55, 0x04, 0x03];
    let mut sets = tbs_fields(cert_der)?[5].1;
    while !sets.is_empty() {
        let (_, set, rest, _) = tlv(sets)?;
        sets = rest;
        let (_, attr, _, _) = tlv(set)?;
        let (oid_tag, oid, value, _) = tlv(attr)?;
        if oid_tag == 0x06 && oid == CN_OID {
            let (_, name, _, _) = tlv(value)?;
            return String::from_utf8(name.to_vec())
                .map_err(|_| KdeError::Malformed("certificate common name is not UTF-8".into()));
        }
    }
    Err(KdeError::Malformed("certificate has no common name".into()))
}
