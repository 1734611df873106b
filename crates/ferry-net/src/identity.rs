//! The device identity: a self-signed certificate and its private key, kept on disk.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ferry_proto::DeviceId;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::NetError;

const CERT_FILE: &str = "cert.der";
const KEY_FILE: &str = "key.der";
/// Subject and SAN of every device certificate; names carry no meaning in Ferry.
pub(crate) const CERT_NAME: &str = "ferry";

/// The id of the device holding the certificate `cert_der`: SHA-256 of its DER encoding.
pub fn device_id_of(cert_der: &[u8]) -> DeviceId {
    DeviceId(Sha256::digest(cert_der).into())
}

/// A device's certificate (DER) and private key (PKCS#8 DER).
#[derive(Clone)]
pub struct Identity {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({:?})", self.device_id())
    }
}

impl Identity {
    /// Loads `dir/cert.der` + `dir/key.der`, or, when neither exists, makes a new self-signed
    /// certificate and writes both (the key with mode 0600, each via a temp file and rename).
    ///
    /// A corrupt, mismatched or half-present identity is an error, never silently replaced:
    /// replacing it would change this device's id and break every pairing.
    pub fn load_or_create(dir: &Path) -> Result<Identity, NetError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        let cert = read_optional(&cert_path)?;
        let key = read_optional(&key_path)?;
        match (cert, key) {
            (Some(cert), Some(key)) => {
                let id = Identity { cert, key };
                id.check().map_err(|why| {
                    NetError::Tls(format!(
                        "the device identity in {} is unusable ({why}); it was left untouched — \
                         restore it from a backup, or move both files away to create a new \
                         identity (this changes the device id, so peers must pair again)",
                        dir.display()
                    ))
                })?;
                Ok(id)
            }
            (None, None) => {
                let id = Identity::generate()?;
                fs::create_dir_all(dir).map_err(|e| with_path(e, dir))?;
                write_atomic(&key_path, &id.key, true)?;
                write_atomic(&cert_path, &id.cert, false)?;
                tracing::info!(device = %id.device_id(), dir = %dir.display(), "created a new device identity");
                Ok(id)
            }
            (Some(_), None) => Err(NetError::Tls(format!(
                "{} exists but {} is missing; refusing to create a new identity over it",
                cert_path.display(),
                key_path.display()
            ))),
            (None, Some(_)) => Err(NetError::Tls(format!(
                "{} exists but {} is missing; refusing to create a new identity over it",
                key_path.display(),
                cert_path.display()
            ))),
        }
    }

    /// A new identity in memory (ECDSA P-256, subject and SAN "ferry").
    pub fn generate() -> Result<Identity, NetError> {
        let ck = rcgen::generate_simple_self_signed(vec![CERT_NAME.to_string()])
            .map_err(|e| NetError::Tls(format!("could not generate a certificate: {e}")))?;
        Ok(Identity { cert: ck.cert.der().to_vec(), key: ck.key_pair.serialize_der() })
    }

    pub fn device_id(&self) -> DeviceId {
        device_id_of(&self.cert)
    }

    /// The certificate, DER-encoded.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert
    }

    pub(crate) fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from(self.cert.clone())]
    }

    pub(crate) fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
    }

    /// The key parses, the certificate parses, and they belong together.
    fn check(&self) -> Result<(), String> {
        let signer = rustls::crypto::ring::sign::any_supported_type(&self.private_key())
            .map_err(|e| format!("{KEY_FILE} is not a valid private key: {e}"))?;
        let ck = rustls::sign::CertifiedKey::new(self.cert_chain(), signer);
        match ck.keys_match() {
            Ok(()) => Ok(()),
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                Err(format!("{KEY_FILE} does not belong to {CERT_FILE}"))
            }
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
            Err(e) => Err(format!("{CERT_FILE} is not a valid certificate: {e}")),
        }
    }
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, NetError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(with_path(e, path).into()),
    }
}

/// Writes `data` to `path` via a temp file in the same directory, fsynced, then renamed.
fn write_atomic(path: &Path, data: &[u8], secret: bool) -> Result<(), NetError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("identity");
    let tmp: PathBuf = path.with_file_name(format!(".{name}.tmp"));
    let result = (|| -> io::Result<()> {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(if secret { 0o600 } else { 0o644 });
        }
        #[cfg(not(unix))]
        let _ = secret;
        let mut f = opts.open(&tmp)?;
        #[cfg(unix)]
        if secret {
            // A stale temp file keeps its old mode when reopened; force it.
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        if let Some(Ok(d)) = path.parent().map(fs::File::open) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| with_path(e, path).into())
}
