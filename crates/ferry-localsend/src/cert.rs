//! Our LocalSend identity: a self-signed certificate and its key, persisted across restarts
//! (the fingerprint other devices remember is the SHA-256 of the certificate's DER).

use std::io::Write;
use std::path::Path;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::LsError;

const CERT_FILE: &str = "cert.der";
const KEY_FILE: &str = "key.der";
/// Valid from a year ago to ten years ahead, so a peer whose clock is a little off is not
/// bothered (the app checks no dates anyway; the certificate is identified by its fingerprint).
const VALID_YEARS_BEFORE: i32 = 1;
const VALID_YEARS_AFTER: i32 = 10;

/// Our identity. The key is ECDSA P-256: every TLS stack of the app's platforms has the
/// ECDHE-ECDSA AES-GCM suites, in TLS 1.2 (older phones) and 1.3.
pub struct LocalIdentity {
    pub cert_der: Vec<u8>,
    /// Private: nothing outside the TLS configs needs the key.
    key_der: Vec<u8>,
    /// SHA-256 of `cert_der`, upper-case hex: what we announce.
    pub fingerprint: String,
}

impl LocalIdentity {
    /// Loads `cert.der` and `key.der` from `dir`, or creates them (key 0600, both written
    /// atomically) on first use.
    pub fn load_or_create(dir: &Path) -> Result<LocalIdentity, LsError> {
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        if cert_path.exists() && key_path.exists() {
            let me = LocalIdentity::from_der(std::fs::read(&cert_path)?, std::fs::read(&key_path)?);
            me.check_key()?; // the key must load, and now rather than at the first handshake
            return Ok(me);
        }
        std::fs::create_dir_all(dir)?;
        let me = LocalIdentity::generate()?;
        write_atomic(&key_path, &me.key_der, 0o600)?;
        write_atomic(&cert_path, &me.cert_der, 0o644)?;
        Ok(me)
    }

    /// A fresh identity kept in memory only (tests, and callers that persist it themselves).
    pub fn generate() -> Result<LocalIdentity, LsError> {
        let tls = |e: rcgen::Error| LsError::Tls(format!("cannot create the certificate: {e}"));
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(tls)?;
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "Ferry LocalSend");
        params.distinguished_name = dn;
        let year = this_year();
        params.not_before = rcgen::date_time_ymd(year - VALID_YEARS_BEFORE, 1, 1);
        params.not_after = rcgen::date_time_ymd(year + VALID_YEARS_AFTER, 1, 1);
        let cert = params.self_signed(&key).map_err(tls)?;
        Ok(LocalIdentity::from_der(cert.der().to_vec(), key.serialize_der()))
    }

    fn from_der(cert_der: Vec<u8>, key_der: Vec<u8>) -> LocalIdentity {
        let fingerprint = fingerprint_of(&cert_der);
        LocalIdentity { cert_der, key_der, fingerprint }
    }

    fn check_key(&self) -> Result<(), LsError> {
        rustls::crypto::ring::sign::any_supported_type(&self.private_key())?;
        Ok(())
    }

    pub(crate) fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from(self.cert_der.clone())]
    }

    pub(crate) fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// SHA-256 of a certificate's DER, upper-case hex (localsendd's form; compare with
/// [`crate::fingerprint_eq`], the app writes lower case).
pub fn fingerprint_of(cert_der: &[u8]) -> String {
    Sha256::digest(cert_der).iter().map(|b| format!("{b:02X}")).collect()
}

fn this_year() -> i32 {
    const SECS_PER_YEAR: u64 = 31_556_952; // the Gregorian mean year
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    1970 + (secs / SECS_PER_YEAR) as i32
}

/// temp, fsync, rename, fsync dir: a crash leaves the old file or the new one, never half.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), LsError> {
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
