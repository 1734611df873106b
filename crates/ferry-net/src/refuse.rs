//! Refused devices: certificates this device no longer accepts (a device the user removed).
//!
//! A refused device still completes the TLS handshake, so that it learns it was removed from
//! the device that removed it (the close is sent under the session's keys, so nobody else can
//! forge it); the accept loop then closes the connection at once with [`CLOSE_REMOVED`] and
//! this device's name as the reason, before the connection reaches the application.

use std::collections::HashSet;
use std::sync::RwLock;

use ferry_proto::DeviceId;
use ferry_proto::wire::MAX_NAME;
use quinn::{ConnectionError, VarInt};

/// QUIC application close code meaning "you were removed by this device; the reason is my
/// name". Any other code is an ordinary close. ("RM" in ASCII, far from the 0 and 1 in use.)
pub const CLOSE_REMOVED: u32 = 0x524d;

/// The set of refused device ids and the notice sent to them.
#[derive(Default)]
pub(crate) struct Refusals {
    ids: RwLock<HashSet<DeviceId>>,
    /// This device's name, sent as the close reason.
    notice: RwLock<String>,
}

impl Refusals {
    pub(crate) fn refuse(&self, id: DeviceId) {
        self.ids.write().unwrap().insert(id);
    }

    pub(crate) fn allow(&self, id: &DeviceId) {
        self.ids.write().unwrap().remove(id);
    }

    pub(crate) fn is_refused(&self, id: &DeviceId) -> bool {
        self.ids.read().unwrap().contains(id)
    }

    pub(crate) fn set_notice(&self, name: &str) {
        *self.notice.write().unwrap() = name.to_string();
    }

    /// Closes `conn` as removed, with this device's name (cut to [`MAX_NAME`] bytes).
    pub(crate) fn close(&self, conn: &quinn::Connection) {
        let notice = self.notice.read().unwrap().clone();
        close_removed(conn, &notice);
    }
}

pub(crate) fn close_removed(conn: &quinn::Connection, name: &str) {
    let bytes = name.as_bytes();
    conn.close(VarInt::from_u32(CLOSE_REMOVED), &bytes[..bytes.len().min(MAX_NAME)]);
}

/// The remover's name if `err` is the close of a device that removed this one.
///
/// The reason comes from the peer: only its first [`MAX_NAME`] bytes are read, as UTF-8 with
/// invalid sequences replaced and control characters dropped (it is shown to the user).
pub fn removed_by(err: &ConnectionError) -> Option<String> {
    let ConnectionError::ApplicationClosed(close) = err else { return None };
    if close.error_code != VarInt::from_u32(CLOSE_REMOVED) {
        return None;
    }
    Some(notice_text(&close.reason))
}

pub(crate) fn notice_text(reason: &[u8]) -> String {
    let cut = &reason[..reason.len().min(MAX_NAME)];
    let text: String = String::from_utf8_lossy(cut).chars().filter(|c| !c.is_control()).collect();
    let text = text.trim();
    if text.is_empty() { "another device".to_string() } else { text.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_is_capped_and_cleaned() {
        assert_eq!(notice_text(b"desk"), "desk");
        assert_eq!(notice_text(b"  \x1b[31mdesk\n"), "[31mdesk", "control characters dropped");
        assert_eq!(notice_text(b""), "another device");
        assert_eq!(notice_text(&[0xff, b'a']), "\u{fffd}a");
        let long = vec![b'x'; 10 * MAX_NAME];
        assert_eq!(notice_text(&long).len(), MAX_NAME);
    }

    #[test]
    fn only_the_removed_code_is_a_removal() {
        let close = |code: u32, reason: &'static [u8]| {
            ConnectionError::ApplicationClosed(quinn::ApplicationClose {
                error_code: VarInt::from_u32(code),
                reason: bytes::Bytes::from_static(reason),
            })
        };
        assert_eq!(removed_by(&close(CLOSE_REMOVED, b"desk")), Some("desk".into()));
        assert_eq!(removed_by(&close(0, b"desk")), None);
        assert_eq!(removed_by(&ConnectionError::TimedOut), None);
    }
}
