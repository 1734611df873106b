//! Driving the LocalSend test peer from a test: in this process (on loopback, or on a thread
//! moved into a namespace) or as the `ls-peer` binary. The handle is the KDE Connect peer's
//! ([`crate::kdepeer::ctl::PeerCtl`]): the same commands-in, events-out shape and bounded waits.

use std::time::Duration;

pub use crate::kdepeer::ctl::PeerCtl;

use super::Opts;

/// The peer in this process; in namespace `ns` when given. Returns it with its `ready` event
/// (`fingerprint`, `port`).
pub fn in_process(ns: Option<&str>, opts: Opts) -> (PeerCtl, serde_json::Value) {
    let mut p = PeerCtl::in_process_with(ns, move |cmds, events| super::run(opts, cmds, events));
    let ready = p.wait_event("ready", Duration::from_secs(30));
    (p, ready)
}
