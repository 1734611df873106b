//! The wire types (JSON, camelCase) and their checks. A value of these types that came from a
//! peer has passed [`parse_info`], [`parse_prepare`] or [`parse_answer`]: every string is
//! bounded and free of control characters, every map is bounded and consistent.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::LsError;

/// LocalSend's default port, TCP (HTTPS) and UDP (multicast) alike.
pub const PORT: u16 = 53317;
/// The multicast group devices announce themselves to.
pub const MULTICAST: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 167);
/// The cap of any JSON body. The largest is a prepare-upload: a folder of [`MAX_FILES`] files
/// with short names is about 200 bytes an entry (2 MB), and a text message's preview adds at
/// most [`MAX_PREVIEW`]; 4 MiB holds both. Checked before a byte is buffered.
pub const MAX_JSON: usize = 4 << 20;
/// The cap of a discovery datagram: device info is a few hundred bytes (every string capped
/// below is far under it); 16 KiB leaves room and keeps the receive buffer small.
pub const MAX_DATAGRAM: usize = 16 << 10;
/// Files in one prepare-upload. A photo folder of thousands is real; 10 000 keeps one
/// request's bookkeeping (ids, tokens) to a few MB.
pub const MAX_FILES: usize = 10_000;
/// A text message travels as a file's preview; 1 MiB of text is a document, not a note.
pub const MAX_PREVIEW: usize = 1 << 20;

/// Characters of an alias: the app's alias field is short; 64 fits any human name.
const MAX_ALIAS: usize = 64;
/// Characters of a fingerprint: 64 hex over HTTPS; over HTTP the app sends a random id. 128
/// takes both with room.
const MAX_FINGERPRINT: usize = 128;
/// Characters of a version ("2.1") or device model ("Samsung", "Linux"): short labels.
const MAX_LABEL: usize = 64;
/// Characters of a file id, session id or token: the app uses UUIDs, localsendd hex.
const MAX_ID: usize = 128;
/// Bytes of a file name. The app sends a folder's files as relative paths ("a/b/c.jpg");
/// Linux's PATH_MAX is 4096.
const MAX_NAME: usize = 4096;
/// Characters of a MIME type.
const MAX_MIME: usize = 256;
/// Bytes of a file's metadata (JSON: modified and accessed times).
const MAX_METADATA: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    Mobile,
    Desktop,
    Web,
    Headless,
    Server,
}

impl DeviceType {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Mobile => "mobile",
            DeviceType::Desktop => "desktop",
            DeviceType::Web => "web",
            DeviceType::Headless => "headless",
            DeviceType::Server => "server",
        }
    }
}

impl Serialize for DeviceType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An unknown type (a newer app's) is taken as a desktop, as the app itself does.
impl<'de> Deserialize<'de> for DeviceType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match String::deserialize(d)?.as_str() {
            "mobile" => DeviceType::Mobile,
            "web" => DeviceType::Web,
            "headless" => DeviceType::Headless,
            "server" => DeviceType::Server,
            _ => DeviceType::Desktop,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Https,
    Http,
}

/// An unknown protocol is taken as HTTPS, as the app does (its enum's default): a device is
/// not dropped for a value a newer app may send, and a wrong guess only fails the handshake.
impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(if String::deserialize(d)? == "http" { Protocol::Http } else { Protocol::Https })
    }
}

/// A device's description: multicast announcements, `/register` bodies and `/info` answers.
/// `/info` answers carry no port or protocol (the asker knows them): they default to 53317
/// and HTTPS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInfo {
    pub alias: String,
    /// Absent in v1, which this crate does not speak beyond reading the info.
    #[serde(default = "v1")]
    pub version: String,
    #[serde(default)]
    pub device_model: Option<String>,
    #[serde(default)]
    pub device_type: Option<DeviceType>,
    pub fingerprint: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub download: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce: Option<bool>,
}

fn v1() -> String {
    "1.0".into()
}
fn default_port() -> u16 {
    PORT
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileMeta {
    pub id: String,
    /// As sent: NOT judged here beyond emptiness and control characters; the caller applies
    /// its own name rules before it touches a disk.
    pub file_name: String,
    pub size: u64,
    pub file_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareUpload {
    pub info: DeviceInfo,
    pub files: BTreeMap<String, FileMeta>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrepareAnswer {
    pub session_id: String,
    /// File id -> the token its upload must carry.
    pub files: BTreeMap<String, String>,
}

fn bad(what: String) -> LsError {
    LsError::Json(what)
}

fn json<T: serde::de::DeserializeOwned>(bytes: &[u8], cap: usize, what: &'static str) -> Result<T, LsError> {
    if bytes.len() > cap {
        return Err(LsError::TooLarge { what, cap: cap as u64 });
    }
    serde_json::from_slice(bytes).map_err(|e| bad(format!("{what}: {e}")))
}

/// `s` is 1..=`max` characters, none of them a control character.
fn check_text(s: &str, max: usize, what: &str) -> Result<(), LsError> {
    if s.is_empty() {
        return Err(bad(format!("{what} is empty")));
    }
    if s.chars().count() > max {
        return Err(bad(format!("{what} is longer than {max} characters")));
    }
    if s.chars().any(char::is_control) {
        return Err(bad(format!("{what} holds a control character")));
    }
    Ok(())
}

impl DeviceInfo {
    /// The checks of [`parse_info`]; trims the alias.
    fn check(&mut self) -> Result<(), LsError> {
        self.alias = self.alias.trim().to_string();
        check_text(&self.alias, MAX_ALIAS, "the alias")?;
        check_text(&self.version, MAX_LABEL, "the version")?;
        if let Some(m) = &self.device_model {
            check_text(m, MAX_LABEL, "the device model")?;
        }
        check_text(&self.fingerprint, MAX_FINGERPRINT, "the fingerprint")?;
        if !self.fingerprint.chars().all(|c| c.is_ascii_graphic()) {
            return Err(bad("the fingerprint is not printable ASCII".into()));
        }
        if self.port == 0 {
            return Err(bad("port 0".into()));
        }
        Ok(())
    }
}

impl FileMeta {
    fn check(&self, key: &str) -> Result<(), LsError> {
        check_text(&self.id, MAX_ID, "a file id")?;
        if self.id != key {
            return Err(bad(format!("file {key:?} carries the id {:?}", self.id)));
        }
        if self.file_name.len() > MAX_NAME {
            return Err(bad(format!("a file name is longer than {MAX_NAME} bytes")));
        }
        check_text(&self.file_name, MAX_NAME, "a file name")?;
        if self.file_type.chars().count() > MAX_MIME || self.file_type.chars().any(char::is_control) {
            return Err(bad("a file type is too long or holds a control character".into()));
        }
        if self.sha256.as_ref().is_some_and(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(bad("a sha256 is not 64 hex digits".into()));
        }
        if self.preview.as_ref().is_some_and(|p| p.len() > MAX_PREVIEW) {
            return Err(bad(format!("a preview is longer than {MAX_PREVIEW} bytes")));
        }
        if let Some(m) = &self.metadata {
            // Serialising an already-parsed value of a capped body costs at most the cap.
            if !(m.is_object() || m.is_null()) || m.to_string().len() > MAX_METADATA {
                return Err(bad("a file's metadata is not a small object".into()));
            }
        }
        Ok(())
    }
}

/// A device's info (datagram, `/register` body or `/info` answer), checked.
pub fn parse_info(bytes: &[u8]) -> Result<DeviceInfo, LsError> {
    let mut info: DeviceInfo = json(bytes, MAX_JSON, "device info")?;
    info.check()?;
    Ok(info)
}

/// A prepare-upload body, checked: the sender's info, 1..=[`MAX_FILES`] files each filed under
/// its own id, every string bounded and free of control characters, names non-empty.
pub fn parse_prepare(bytes: &[u8]) -> Result<PrepareUpload, LsError> {
    let mut req: PrepareUpload = json(bytes, MAX_JSON, "a prepare-upload")?;
    req.info.check()?;
    if req.files.is_empty() {
        return Err(bad("a prepare-upload without files".into()));
    }
    if req.files.len() > MAX_FILES {
        return Err(bad(format!("more than {MAX_FILES} files")));
    }
    for (key, meta) in &req.files {
        meta.check(key)?;
    }
    Ok(req)
}

/// A prepare-upload's answer, checked against what we asked: a session id, and a token for
/// some of the files we offered (the receiver may want only some) and for no other.
pub fn parse_answer(bytes: &[u8], asked: &PrepareUpload) -> Result<PrepareAnswer, LsError> {
    let answer: PrepareAnswer = json(bytes, MAX_JSON, "a prepare-upload answer")?;
    check_text(&answer.session_id, MAX_ID, "the session id")?;
    for (id, token) in &answer.files {
        if !asked.files.contains_key(id) {
            return Err(bad(format!("a token for file {id:?}, which we did not offer")));
        }
        check_text(token, MAX_ID, "a token")?;
    }
    Ok(answer)
}

/// Fingerprints are hex, written upper case by localsendd and Ferry, lower case by the app.
pub fn fingerprint_eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}
