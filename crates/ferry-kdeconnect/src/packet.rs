//! Packets (one JSON object per line: `id`, `type`, `body`, and for payloads `payloadSize` and
//! `payloadTransferInfo`) and the identity packet with the checks KDE applies to it.

use serde_json::{Map, Value, json};

use crate::{KdeError, MAX_PACKET, PROTOCOL_VERSION};

/// The packet type of an identity.
pub const IDENTITY: &str = "kdeconnect.identity";
/// A device id is 32 to 38 characters of `[A-Za-z0-9_]`: current KDE and Android ids are 32
/// hex digits, 22.12's are a UUID with underscores (36). Same rule as KDE's `isValidIdentifier`.
const ID_LEN: std::ops::RangeInclusive<usize> = 32..=38;
/// KDE (and Android) cut a device name to 32 characters after removing the characters below.
const MAX_NAME_CHARS: usize = 32;
/// The characters KDE's name filter removes (`"',;:.!?()[]<>`); we also drop control characters.
const NAME_REMOVED: &str = "\"',;:.!?()[]<>";
/// Android announces about 40 capabilities each way; 256 leaves room, and bounds what we keep.
const MAX_CAPABILITIES: usize = 256;
/// The longest capability name KDE uses is about 40 characters.
const MAX_CAPABILITY_LEN: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceType {
    Desktop,
    Laptop,
    Phone,
    Tablet,
    Tv,
}

impl DeviceType {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeviceType::Desktop => "desktop",
            DeviceType::Laptop => "laptop",
            DeviceType::Phone => "phone",
            DeviceType::Tablet => "tablet",
            DeviceType::Tv => "tv",
        }
    }

    /// Unknown types are desktops, as KDE does; "smartphone" is the older name for a phone.
    pub fn parse(s: &str) -> DeviceType {
        match s {
            "laptop" => DeviceType::Laptop,
            "phone" | "smartphone" => DeviceType::Phone,
            "tablet" => DeviceType::Tablet,
            "tv" => DeviceType::Tv,
            _ => DeviceType::Desktop,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Packet {
    pub id: i64,
    /// `type` on the wire.
    pub kind: String,
    pub body: Value,
    pub payload_size: Option<i64>,
    /// `payloadTransferInfo.port`.
    pub payload_port: Option<u16>,
}

impl Packet {
    /// A packet stamped with the current time in milliseconds, as KDE stamps its ids.
    pub fn new(kind: &str, body: Value) -> Packet {
        Packet { id: crate::now_ms(), kind: kind.to_string(), body, payload_size: None, payload_port: None }
    }

    /// The JSON line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = json!({ "id": self.id, "type": self.kind, "body": self.body });
        if let Some(size) = self.payload_size {
            v["payloadSize"] = json!(size);
        }
        if let Some(port) = self.payload_port {
            v["payloadTransferInfo"] = json!({ "port": port });
        }
        let mut line = serde_json::to_vec(&v).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// Parses one line (with or without its newline), capped at [`MAX_PACKET`].
    pub fn parse(line: &[u8]) -> Result<Packet, KdeError> {
        if line.len() > MAX_PACKET {
            return Err(KdeError::TooLarge { what: "a packet", cap: MAX_PACKET as u64 });
        }
        let v: Value = serde_json::from_slice(line).map_err(|e| KdeError::Malformed(format!("not JSON: {e}")))?;
        let o = v.as_object().ok_or_else(|| malformed("not a JSON object"))?;
        // KDE 22.12 sends the id as a number; some older versions send it as a string.
        let id = match o.get("id") {
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| malformed("`id` is not an integer"))?,
            Some(Value::String(s)) => s.parse().map_err(|_| malformed("`id` is not a number"))?,
            None => 0,
            Some(_) => return Err(malformed("`id` has the wrong type")),
        };
        let kind = o.get("type").and_then(Value::as_str).ok_or_else(|| malformed("no string `type`"))?;
        if kind.is_empty() || kind.len() > MAX_CAPABILITY_LEN {
            return Err(malformed("`type` is empty or too long"));
        }
        let body = match o.get("body") {
            Some(b @ Value::Object(_)) => b.clone(),
            _ => return Err(malformed("`body` is not an object")),
        };
        let payload_size = match o.get("payloadSize") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| malformed("`payloadSize` is not an integer"))?),
        };
        let payload_port = match o.get("payloadTransferInfo") {
            None | Some(Value::Null) => None,
            Some(Value::Object(info)) => match info.get("port") {
                None => None,
                Some(p) => Some(
                    p.as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p != 0)
                        .ok_or_else(|| malformed("`payloadTransferInfo.port` is not a port"))?,
                ),
            },
            Some(_) => return Err(malformed("`payloadTransferInfo` is not an object")),
        };
        Ok(Packet { id, kind: kind.to_string(), body, payload_size, payload_port })
    }
}

fn malformed(what: &str) -> KdeError {
    KdeError::Malformed(what.to_string())
}

#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    pub device_id: String,
    pub device_name: String,
    pub device_type: DeviceType,
    pub protocol_version: u32,
    pub incoming: Vec<String>,
    pub outgoing: Vec<String>,
    pub tcp_port: Option<u16>,
}

impl Identity {
    pub fn packet(&self) -> Packet {
        let mut body = json!({
            "deviceId": self.device_id,
            "deviceName": self.device_name,
            "deviceType": self.device_type.as_str(),
            "protocolVersion": self.protocol_version,
            "incomingCapabilities": self.incoming,
            "outgoingCapabilities": self.outgoing,
        });
        if let Some(port) = self.tcp_port {
            body["tcpPort"] = json!(port);
        }
        Packet::new(IDENTITY, body)
    }

    /// Reads and checks an identity: the id's charset and length, the name (filtered and cut
    /// as KDE does; empty after filtering is refused), the capability lists (capped).
    pub fn from_packet(p: &Packet) -> Result<Identity, KdeError> {
        if p.kind != IDENTITY {
            return Err(KdeError::Malformed(format!("expected an identity, got {:?}", p.kind)));
        }
        let body = p.body.as_object().ok_or_else(|| malformed("identity body is not an object"))?;
        let device_id = str_field(body, "deviceId")?;
        if !valid_device_id(device_id) {
            return Err(malformed("`deviceId` must be 32-38 characters of A-Z, a-z, 0-9 and _"));
        }
        let device_name = filter_name(str_field(body, "deviceName")?);
        if device_name.is_empty() {
            return Err(malformed("`deviceName` is empty once filtered"));
        }
        let device_type = DeviceType::parse(body.get("deviceType").and_then(Value::as_str).unwrap_or(""));
        let protocol_version = body
            .get("protocolVersion")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v >= 1)
            .ok_or_else(|| malformed("`protocolVersion` is not a positive integer"))?;
        let tcp_port = match body.get("tcpPort") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p != 0)
                    .ok_or_else(|| malformed("`tcpPort` is not a port"))?,
            ),
        };
        Ok(Identity {
            device_id: device_id.to_string(),
            device_name,
            device_type,
            protocol_version,
            incoming: capabilities(body, "incomingCapabilities")?,
            outgoing: capabilities(body, "outgoingCapabilities")?,
            tcp_port,
        })
    }

    /// The version both sides speak on a link with this device.
    pub fn negotiated(&self) -> u32 {
        self.protocol_version.min(PROTOCOL_VERSION)
    }
}

fn str_field<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a str, KdeError> {
    body.get(key).and_then(Value::as_str).ok_or_else(|| KdeError::Malformed(format!("no string `{key}`")))
}

pub(crate) fn valid_device_id(id: &str) -> bool {
    ID_LEN.contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// KDE's name filter: the listed punctuation removed, then cut to 32 characters.
pub(crate) fn filter_name(name: &str) -> String {
    name.chars().filter(|c| !NAME_REMOVED.contains(*c) && !c.is_control()).take(MAX_NAME_CHARS).collect::<String>()
}

/// A capability list; missing is empty (old peers), anything but a list of short names is refused.
fn capabilities(body: &Map<String, Value>, key: &str) -> Result<Vec<String>, KdeError> {
    let Some(v) = body.get(key) else { return Ok(vec![]) };
    let list = v.as_array().ok_or_else(|| KdeError::Malformed(format!("`{key}` is not a list")))?;
    if list.len() > MAX_CAPABILITIES {
        return Err(KdeError::Malformed(format!("`{key}` has more than {MAX_CAPABILITIES} entries")));
    }
    list.iter()
        .map(|c| {
            c.as_str()
                .filter(|s| {
                    !s.is_empty()
                        && s.len() <= MAX_CAPABILITY_LEN
                        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
                })
                .map(str::to_string)
                .ok_or_else(|| KdeError::Malformed(format!("`{key}` has an entry that is not a capability name")))
        })
        .collect()
}
