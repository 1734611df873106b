//! Discovery: where a device might be reached. Every source (mDNS, static addresses from the
//! user or the config) implements [`Discovery`] and feeds one [`AddressBook`], which the node
//! reads when it dials and when it lists nearby devices.
//!
//! A sighting is only an address hint. Nothing here is trusted: the device id in a TXT record
//! can be anyone's claim, and the node still pins the TLS identity when it dials (a device that
//! announces someone else's id simply fails the handshake).
//!
//! The mDNS source announces `_ferry._udp.local.` (instance = compact device id, TXT `id`,
//! `name`, `proto`) with the QUIC port and browses for the same type. mdns-sd reports several
//! resolve events per peer as addresses trickle in, so addresses are merged per instance (newest
//! first); a link-local IPv6 address is dropped when the peer also has an IPv4 one (it needs a
//! scope and is the least portable choice); goodbye packets remove the peer at once, and a lost
//! connection triggers an active re-query ([`Discovery::connection_lost`]) instead of waiting out
//! the 120 s record TTL.
//!
//! Layout: this module holds what every source shares ([`Sighting`], [`Discovery`], the
//! [`AddressBook`] and its [`Notifier`]); `static_addrs` is the static source, `mdns` the mDNS
//! source (announcing and browsing), `resolved` turns mDNS answers into sightings, and
//! `interfaces` chooses the interfaces mDNS uses and reports on them.

mod interfaces;
mod mdns;
mod resolved;
mod static_addrs;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_proto::DeviceId;
use tokio::sync::watch;

pub use interfaces::{InterfaceReport, MdnsReport, mdns_interfaces};
pub use mdns::{Mdns, MdnsConfig, MdnsError, SERVICE_TYPE};
pub use static_addrs::StaticAddresses;

/// One device seen by one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    pub id: DeviceId,
    /// The name the device announces (unverified).
    pub name: String,
    /// The protocol version it announces, if any.
    pub protocol: Option<u32>,
    /// Newest first.
    pub addrs: Vec<SocketAddr>,
    /// `mdns` or `static`.
    pub source: &'static str,
    /// Interfaces it was seen on (mDNS only).
    pub interfaces: Vec<String>,
    /// Milliseconds since the Unix epoch of the last update.
    pub seen_ms: i64,
}

/// A source of address hints.
pub trait Discovery: Send + Sync {
    /// Every device this source currently knows about.
    fn sightings(&self) -> Vec<Sighting>;
    /// Told when a connection to `id` was lost, so the source can check whether the device
    /// is still there (mDNS re-queries it) rather than keep a stale hint.
    fn connection_lost(&self, _id: &DeviceId) {}
    /// Per-interface mDNS state, for `ferry doctor` (only the mDNS source has one).
    fn report(&self) -> Option<MdnsReport> {
        None
    }
    /// Stops the source (mDNS sends its goodbye).
    fn shutdown(&self) {}
}

/// All sources together. `changes` ticks whenever any source's sightings change.
#[derive(Clone)]
pub struct AddressBook {
    sources: Arc<Mutex<Vec<Arc<dyn Discovery>>>>,
    changed: watch::Sender<u64>,
}

impl Default for AddressBook {
    fn default() -> Self {
        Self::new()
    }
}

impl AddressBook {
    pub fn new() -> Self {
        AddressBook { sources: Arc::default(), changed: watch::channel(0).0 }
    }

    /// A notifier for a source to call when its sightings change.
    pub fn notifier(&self) -> Notifier {
        Notifier(self.changed.clone())
    }

    pub fn add(&self, source: Arc<dyn Discovery>) {
        self.sources.lock().unwrap().push(source);
        self.notifier().notify();
    }

    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn all(&self) -> Vec<Arc<dyn Discovery>> {
        self.sources.lock().unwrap().clone()
    }

    /// Every sighting of every source, merged per device (addresses of earlier sources first).
    pub fn sightings(&self) -> Vec<Sighting> {
        let mut by_id: BTreeMap<DeviceId, Sighting> = BTreeMap::new();
        for src in self.all() {
            for s in src.sightings() {
                match by_id.get_mut(&s.id) {
                    Some(have) => {
                        for a in s.addrs {
                            if !have.addrs.contains(&a) {
                                have.addrs.push(a);
                            }
                        }
                        have.seen_ms = have.seen_ms.max(s.seen_ms);
                    }
                    None => {
                        by_id.insert(s.id, s);
                    }
                }
            }
        }
        by_id.into_values().collect()
    }

    /// Devices seen on the network (by mDNS), as opposed to addresses typed in.
    pub fn nearby(&self) -> Vec<Sighting> {
        let mut out: BTreeMap<DeviceId, Sighting> = BTreeMap::new();
        for src in self.all() {
            for s in src.sightings().into_iter().filter(|s| s.source == "mdns") {
                out.entry(s.id).or_insert(s);
            }
        }
        out.into_values().collect()
    }

    /// Addresses hinted for `id`, best first.
    pub fn addresses(&self, id: &DeviceId) -> Vec<SocketAddr> {
        self.sightings().into_iter().find(|s| s.id == *id).map(|s| s.addrs).unwrap_or_default()
    }

    pub fn connection_lost(&self, id: &DeviceId) {
        for src in self.all() {
            src.connection_lost(id);
        }
    }

    pub fn report(&self) -> Option<MdnsReport> {
        self.all().iter().find_map(|s| s.report())
    }

    pub fn shutdown(&self) {
        for src in self.all() {
            src.shutdown();
        }
    }
}

/// Wakes the address book's watchers.
#[derive(Clone)]
pub struct Notifier(watch::Sender<u64>);

impl Notifier {
    pub fn notify(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn id(n: u8) -> DeviceId {
        DeviceId([n; 32])
    }

    #[test]
    fn address_book_merges_sources() {
        let book = AddressBook::new();
        let mut rx = book.changes();
        let a: SocketAddr = "10.0.0.9:5".parse().unwrap();
        let st = Arc::new(StaticAddresses::new(HashMap::new(), book.notifier()));
        book.add(st.clone());
        st.set(id(3), vec![a]);
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        assert_eq!(book.addresses(&id(3)), vec![a]);
        assert!(book.nearby().is_empty(), "static addresses are not nearby devices");
    }
}
