//! What the receiving side's request handlers share about the one incoming session: who is on
//! a connection (by its certificate), and ending a session (its transfer failed with a reason,
//! its prompt and staging folder gone).

use std::sync::Arc;

use ferry_engine::send::SendEvent;
use ferry_localsend::Peer;
use ferry_proto::{DeviceId, TransferId};
use ferry_store::LsDeviceRecord;

use crate::context::Context;
use crate::send::{remove_prompt_for, remove_staging, set_state};

/// Ends the session of `tid` (if it is the current one): fails the transfer with `why` (when
/// given and it is not final), drops its prompt and deletes its staging folder.
pub(super) async fn end_session(inner: &Arc<Context>, tid: TransferId, why: Option<String>) {
    let was = {
        let mut cur = inner.ls.session.lock().unwrap();
        if cur.as_ref().is_some_and(|s| s.transfer == tid) { cur.take() } else { None }
    };
    if let Some(w) = inner.ls.answers.lock().unwrap().remove(&tid) {
        let _ = w.send(false);
    }
    if let Some(why) = why {
        set_state(inner, tid, SendEvent::Failed(why), None).await;
    }
    remove_prompt_for(inner, tid).await;
    if was.is_some() {
        remove_staging(inner, &tid).await;
    }
}

pub(super) async fn device_name(inner: &Arc<Context>, id: DeviceId) -> String {
    inner.db(move |s| s.device(&id)).await.ok().flatten().map(|d| d.name).unwrap_or_else(|| "the device".into())
}

pub(super) fn peer_is(peer: &Peer, fp: &str) -> bool {
    peer.client_fingerprint.as_deref().is_some_and(|c| ferry_localsend::fingerprint_eq(c, fp))
}

/// The Ferry id of the device on this connection (from its certificate).
pub(super) fn peer_device(peer: &Peer) -> DeviceId {
    LsDeviceRecord::ferry_id(peer.client_fingerprint.as_deref().unwrap_or_default())
}

/// Ends the session if dropped while armed. The server drops a request's handler when its
/// connection ends (a sender that stops waiting for the user's answer, an upload cut off), so
/// what the handler was in the middle of must not stay behind: a session nobody will finish
/// would answer every later sender "busy".
pub(super) struct SessionGuard {
    inner: Arc<Context>,
    tid: TransferId,
    why: &'static str,
    armed: bool,
}

impl SessionGuard {
    pub(super) fn new(inner: &Arc<Context>, tid: TransferId, why: &'static str) -> SessionGuard {
        SessionGuard { inner: inner.clone(), tid, why, armed: true }
    }

    /// The handler finished what it was doing: nothing to end.
    pub(super) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.armed {
            let (inner, tid, why) = (self.inner.clone(), self.tid, self.why.to_string());
            self.inner.spawn(async move { end_session(&inner, tid, Some(why)).await });
        }
    }
}
