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

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_proto::DeviceId;
use mdns_sd::{DaemonEvent, IfKind, IfPredicate, ScopedIp, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::watch;

/// The DNS-SD service type Ferry announces and browses.
pub const SERVICE_TYPE: &str = "_ferry._udp.local.";
/// TXT keys.
pub const TXT_ID: &str = "id";
pub const TXT_NAME: &str = "name";
pub const TXT_PROTO: &str = "proto";
/// Addresses kept per sighting: a device rarely has more than a few useful ones.
const MAX_SIGHTING_ADDRS: usize = 8;
/// How often mdns-sd re-reads the interface list: short enough that a new interface or a new
/// DHCP address is announced within seconds, long enough to cost nothing.
const IP_CHECK_SECS: u32 = 2;
/// How long shutdown waits for the goodbye packet to be sent.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);
/// How long an address stays a hint without being announced again: mDNS's address record
/// lifetime (RFC 6762 recommends 120 s for host records).
const ADDR_LIFETIME: Duration = Duration::from_secs(120);
/// Longest device name accepted from a TXT record (the wire protocol's own limit).
const MAX_NAME: usize = ferry_proto::wire::MAX_NAME;

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

/// Addresses given by the user or the config, per device. They are never "nearby".
pub struct StaticAddresses {
    map: Mutex<HashMap<DeviceId, Vec<SocketAddr>>>,
    notify: Notifier,
}

impl StaticAddresses {
    pub fn new(map: HashMap<DeviceId, Vec<SocketAddr>>, notify: Notifier) -> Self {
        StaticAddresses { map: Mutex::new(map), notify }
    }

    /// Replaces the addresses of `id`.
    pub fn set(&self, id: DeviceId, addrs: Vec<SocketAddr>) {
        self.map.lock().unwrap().insert(id, addrs);
        self.notify.notify();
    }
}

impl Discovery for StaticAddresses {
    fn sightings(&self) -> Vec<Sighting> {
        self.map
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, a)| !a.is_empty())
            .map(|(id, addrs)| Sighting {
                id: *id,
                name: String::new(),
                protocol: None,
                addrs: addrs.clone(),
                source: "static",
                interfaces: vec![],
                seen_ms: 0,
            })
            .collect()
    }
}

/// What the mDNS source should announce and where.
#[derive(Debug, Clone)]
pub struct MdnsConfig {
    pub device: DeviceId,
    pub name: String,
    pub protocol: u32,
    /// The QUIC port.
    pub port: u16,
    /// Interfaces to use by name; empty means every non-loopback, up, multicast-capable one.
    pub interfaces: Vec<String>,
}

/// mDNS activity on one interface.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InterfaceReport {
    pub name: String,
    pub addresses: Vec<String>,
    /// Announcements sent (our service record went out on this interface).
    pub announcements_sent: u64,
    /// Answers sent to other devices' queries.
    pub responses_sent: u64,
    /// Ferry devices whose answers arrived on this interface.
    pub peers_seen: Vec<String>,
}

/// The mDNS source's state, for `ferry doctor`.
#[derive(Debug, Clone, Default)]
pub struct MdnsReport {
    pub service: String,
    pub interfaces: Vec<InterfaceReport>,
    /// Errors the mDNS daemon reported (most recent last, a few kept).
    pub errors: Vec<String>,
}

#[derive(Default)]
struct MdnsState {
    /// By instance full name.
    peers: HashMap<String, Sighting>,
    announced: HashMap<String, u64>,
    responded: HashMap<String, u64>,
    errors: Vec<String>,
    /// When each address of each instance was last announced.
    addr_heard: HashMap<String, HashMap<SocketAddr, std::time::Instant>>,
}

/// The mDNS source: announces this device and browses for others.
pub struct Mdns {
    daemon: ServiceDaemon,
    fullname: String,
    interfaces: Vec<String>,
    state: Arc<Mutex<MdnsState>>,
    stopped: Mutex<bool>,
}

/// True when the interface is one we announce on by default: not loopback, multicast-capable.
fn default_interface(i: &if_addrs::Interface) -> bool {
    !i.is_loopback() && multicast_capable(&i.name)
}

/// Reads the IFF_MULTICAST flag (Linux sysfs); elsewhere, assumes yes.
fn multicast_capable(name: &str) -> bool {
    const IFF_MULTICAST: u32 = 0x1000;
    match std::fs::read_to_string(format!("/sys/class/net/{name}/flags")) {
        Ok(s) => {
            u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).map(|f| f & IFF_MULTICAST != 0).unwrap_or(true)
        }
        Err(_) => true,
    }
}

fn selected(i: &if_addrs::Interface, names: &[String]) -> bool {
    if names.is_empty() { default_interface(i) } else { names.contains(&i.name) }
}

/// The interfaces mDNS would use now (up, and selected by `names` or the default rule).
pub fn mdns_interfaces(names: &[String]) -> Vec<(String, Vec<IpAddr>)> {
    let mut out: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for i in if_addrs::get_if_addrs().unwrap_or_default() {
        if i.is_oper_up() && !i.is_p2p() && selected(&i, names) {
            out.entry(i.name.clone()).or_default().push(i.ip());
        }
    }
    out.into_iter().collect()
}

#[derive(Debug, thiserror::Error)]
#[error("mDNS: {0}")]
pub struct MdnsError(String);

impl Mdns {
    /// Starts announcing and browsing. Sightings and their changes go to `notify`.
    pub fn start(cfg: MdnsConfig, notify: Notifier) -> Result<Arc<Mdns>, MdnsError> {
        let err = |e: mdns_sd::Error| MdnsError(e.to_string());
        let daemon = ServiceDaemon::new().map_err(err)?;
        let names = cfg.interfaces.clone();
        // Everything not selected is disabled; the predicate is re-evaluated on every interface
        // check, so interfaces that come and go (or change flags) are followed.
        daemon.disable_interface(IfKind::Predicate(IfPredicate::new(move |i| !selected(i, &names)))).map_err(err)?;
        daemon.set_ip_check_interval(IP_CHECK_SECS).map_err(err)?;
        let instance = cfg.device.compact();
        let host = format!("ferry-{}.local.", instance.to_ascii_lowercase());
        let proto = cfg.protocol.to_string();
        let id = cfg.device.to_string();
        let props = [(TXT_ID, id.as_str()), (TXT_NAME, cfg.name.as_str()), (TXT_PROTO, proto.as_str())];
        let info =
            ServiceInfo::new(SERVICE_TYPE, &instance, &host, "", cfg.port, &props[..]).map_err(err)?.enable_addr_auto();
        let fullname = info.get_fullname().to_string();
        let browse = daemon.browse(SERVICE_TYPE).map_err(err)?;
        let monitor = daemon.monitor().map_err(err)?;
        daemon.register(info).map_err(err)?;

        let state = Arc::new(Mutex::new(MdnsState::default()));
        let me = cfg.device;
        {
            let state = state.clone();
            let notify = notify.clone();
            // The receivers end when the daemon shuts down, and these threads with them.
            std::thread::Builder::new()
                .name("ferry-mdns-browse".into())
                .spawn(move || {
                    while let Ok(ev) = browse.recv() {
                        if on_service_event(&state, me, ev) {
                            notify.notify();
                        }
                    }
                })
                .map_err(|e| MdnsError(e.to_string()))?;
        }
        {
            let state = state.clone();
            std::thread::Builder::new()
                .name("ferry-mdns-monitor".into())
                .spawn(move || {
                    while let Ok(ev) = monitor.recv() {
                        let mut st = state.lock().unwrap();
                        match ev {
                            DaemonEvent::Announce(_, where_) => {
                                // "hostname:interface"
                                let intf = where_.rsplit(':').next().unwrap_or_default().to_string();
                                *st.announced.entry(intf).or_default() += 1;
                            }
                            DaemonEvent::Respond(intf) => *st.responded.entry(intf).or_default() += 1,
                            DaemonEvent::Error(e) => {
                                tracing::debug!("mDNS daemon: {e}");
                                st.errors.push(e.to_string());
                                let n = st.errors.len();
                                if n > 8 {
                                    st.errors.drain(..n - 8);
                                }
                            }
                            _ => {}
                        }
                    }
                })
                .map_err(|e| MdnsError(e.to_string()))?;
        }
        tracing::info!(service = %fullname, port = cfg.port, "mDNS announcing and browsing");
        Ok(Arc::new(Mdns { daemon, fullname, interfaces: cfg.interfaces, state, stopped: Mutex::new(false) }))
    }
}

/// Applies one browse event; true when the sightings changed.
fn on_service_event(state: &Mutex<MdnsState>, me: DeviceId, ev: ServiceEvent) -> bool {
    match ev {
        ServiceEvent::ServiceResolved(svc) => {
            let Some(s) = sighting_from(&svc.fullname, svc.port, svc.get_addresses(), |k| {
                svc.get_property_val_str(k).map(str::to_string)
            }) else {
                tracing::debug!(instance = %svc.fullname, "ignored an mDNS answer without a valid Ferry TXT record");
                return false;
            };
            if s.id == me {
                return false;
            }
            let mut st = state.lock().unwrap();
            // Addresses not heard of again within a record lifetime are dropped, so a
            // device's old DHCP address does not linger as a hint forever.
            let now = std::time::Instant::now();
            let heard = st.addr_heard.entry(svc.fullname.clone()).or_default();
            for a in &s.addrs {
                heard.insert(*a, now);
            }
            heard.retain(|_, t| now.duration_since(*t) < ADDR_LIFETIME);
            let live: Vec<SocketAddr> = heard.keys().copied().collect();
            let merged = match st.peers.get(&svc.fullname) {
                Some(old) if old.id == s.id => {
                    let mut m = merge(old, s);
                    m.addrs.retain(|a| live.contains(a));
                    m
                }
                _ => s,
            };
            tracing::debug!(peer = %merged.id.short(), addrs = ?merged.addrs, "mDNS sighting");
            let changed =
                st.peers.get(&svc.fullname).is_none_or(|old| old.addrs != merged.addrs || old.name != merged.name);
            st.peers.insert(svc.fullname.clone(), merged);
            changed
        }
        ServiceEvent::ServiceRemoved(_, fullname) => {
            let mut st = state.lock().unwrap();
            st.addr_heard.remove(&fullname);
            let removed = st.peers.remove(&fullname);
            if let Some(s) = &removed {
                tracing::info!(peer = %s.id.short(), "mDNS: device left (goodbye or no answer)");
            }
            removed.is_some()
        }
        _ => false,
    }
}

/// Newer addresses first, then the older ones not repeated; the link-local rule re-applied.
fn merge(old: &Sighting, new: Sighting) -> Sighting {
    let mut addrs = new.addrs.clone();
    for a in &old.addrs {
        if !addrs.contains(a) {
            addrs.push(*a);
        }
    }
    let mut interfaces = new.interfaces.clone();
    for i in &old.interfaces {
        if !interfaces.contains(i) {
            interfaces.push(i.clone());
        }
    }
    Sighting { addrs: prefer_v4(addrs), interfaces, ..new }
}

fn is_link_local_v6(a: &SocketAddr) -> bool {
    matches!(a, SocketAddr::V6(v6) if (v6.ip().segments()[0] & 0xffc0) == 0xfe80)
}

/// Drops link-local IPv6 addresses when an IPv4 one exists; IPv4 first; capped.
fn prefer_v4(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let has_v4 = addrs.iter().any(|a| a.is_ipv4());
    let mut out: Vec<SocketAddr> = addrs.into_iter().filter(|a| !(has_v4 && is_link_local_v6(a))).collect();
    out.sort_by_key(|a| !a.is_ipv4());
    out.truncate(MAX_SIGHTING_ADDRS);
    out
}

/// Builds a sighting from a resolved service; `None` when the TXT record is not Ferry's.
fn sighting_from(
    fullname: &str,
    port: u16,
    addrs: &std::collections::HashSet<ScopedIp>,
    txt: impl Fn(&str) -> Option<String>,
) -> Option<Sighting> {
    let id: DeviceId = txt(TXT_ID)?.parse().ok()?;
    let name = txt(TXT_NAME).filter(|n| !n.trim().is_empty() && n.len() <= MAX_NAME).unwrap_or_else(|| id.short());
    let protocol = txt(TXT_PROTO).and_then(|p| p.parse().ok());
    if port == 0 {
        return None;
    }
    let mut list = Vec::new();
    let mut interfaces = Vec::new();
    for a in addrs {
        match a {
            ScopedIp::V4(v4) => {
                if v4.addr().is_unspecified() || v4.addr().is_multicast() {
                    continue;
                }
                list.push(SocketAddr::new(IpAddr::V4(*v4.addr()), port));
                interfaces.extend(v4.interface_ids().iter().map(|i| i.name.clone()));
            }
            ScopedIp::V6(v6) => {
                if v6.addr().is_unspecified() || v6.addr().is_multicast() {
                    continue;
                }
                let scope = if (v6.addr().segments()[0] & 0xffc0) == 0xfe80 { v6.scope_id().index } else { 0 };
                list.push(SocketAddr::V6(SocketAddrV6::new(*v6.addr(), port, 0, scope)));
                interfaces.push(v6.scope_id().name.clone());
            }
            _ => {}
        }
    }
    list.sort();
    interfaces.sort();
    interfaces.dedup();
    interfaces.retain(|i| !i.is_empty());
    let _ = fullname;
    Some(Sighting { id, name, protocol, addrs: prefer_v4(list), source: "mdns", interfaces, seen_ms: now_ms() })
}

impl Discovery for Mdns {
    fn sightings(&self) -> Vec<Sighting> {
        self.state.lock().unwrap().peers.values().cloned().collect()
    }

    fn connection_lost(&self, id: &DeviceId) {
        let fullname = self.state.lock().unwrap().peers.iter().find(|(_, s)| s.id == *id).map(|(f, _)| f.clone());
        if let Some(f) = fullname {
            // Re-queries the instance; without an answer within the timeout mdns-sd drops it
            // and reports it removed (RFC 6762 10.4), instead of keeping it for the 120 s TTL.
            if let Err(e) = self.daemon.verify(f, mdns_sd::VERIFY_TIMEOUT_DEFAULT) {
                tracing::debug!("mDNS verify: {e}");
            }
        }
    }

    fn report(&self) -> Option<MdnsReport> {
        let st = self.state.lock().unwrap();
        let interfaces = mdns_interfaces(&self.interfaces)
            .into_iter()
            .map(|(name, ips)| {
                let mut peers: Vec<String> = st
                    .peers
                    .values()
                    .filter(|s| s.interfaces.contains(&name))
                    .map(|s| format!("{} ({})", s.name, s.id.short()))
                    .collect();
                peers.sort();
                InterfaceReport {
                    announcements_sent: st.announced.get(&name).copied().unwrap_or(0),
                    responses_sent: st.responded.get(&name).copied().unwrap_or(0),
                    addresses: ips.iter().map(|i| i.to_string()).collect(),
                    peers_seen: peers,
                    name,
                }
            })
            .collect();
        Some(MdnsReport { service: self.fullname.clone(), interfaces, errors: st.errors.clone() })
    }

    fn shutdown(&self) {
        let mut stopped = self.stopped.lock().unwrap();
        if *stopped {
            return;
        }
        *stopped = true;
        // The goodbye packet lets the others drop this device at once.
        if let Ok(rx) = self.daemon.unregister(&self.fullname) {
            let _ = rx.recv_timeout(GOODBYE_WAIT);
        }
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = rx.recv_timeout(GOODBYE_WAIT);
        }
    }
}

impl Drop for Mdns {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> DeviceId {
        DeviceId([n; 32])
    }

    #[test]
    fn link_local_v6_is_dropped_when_v4_exists() {
        let v4: SocketAddr = "10.0.0.2:22010".parse().unwrap();
        let ll: SocketAddr = "[fe80::1%2]:22010".parse().unwrap();
        let global: SocketAddr = "[2001:db8::1]:22010".parse().unwrap();
        assert_eq!(prefer_v4(vec![ll, v4, global]), vec![v4, global]);
        assert_eq!(prefer_v4(vec![ll]), vec![ll], "only link-local: kept");
    }

    #[test]
    fn resolve_events_merge_newest_first() {
        let a: SocketAddr = "10.0.0.2:1".parse().unwrap();
        let b: SocketAddr = "10.0.1.2:1".parse().unwrap();
        let old = Sighting {
            id: id(1),
            name: "a".into(),
            protocol: Some(1),
            addrs: vec![a],
            source: "mdns",
            interfaces: vec!["eth0".into()],
            seen_ms: 1,
        };
        let new = Sighting { addrs: vec![b], interfaces: vec!["eth1".into()], seen_ms: 2, ..old.clone() };
        let m = merge(&old, new);
        assert_eq!(m.addrs, vec![b, a]);
        assert_eq!(m.interfaces, vec!["eth1".to_string(), "eth0".to_string()]);
    }

    #[test]
    fn txt_without_a_valid_id_is_ignored() {
        let none = std::collections::HashSet::new();
        assert!(sighting_from("x", 1, &none, |_| None).is_none());
        assert!(sighting_from("x", 1, &none, |k| (k == TXT_ID).then(|| "not-an-id".to_string())).is_none());
        let good = id(7).to_string();
        let long = "n".repeat(MAX_NAME + 1);
        let s = sighting_from("x", 9, &none, |k| match k {
            TXT_ID => Some(good.clone()),
            TXT_NAME => Some(long.clone()),
            TXT_PROTO => Some("1".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.id, id(7));
        assert_eq!(s.name, id(7).short(), "an oversized name is replaced by the short id");
        assert_eq!(s.protocol, Some(1));
        assert!(sighting_from("x", 0, &none, |k| (k == TXT_ID).then(|| good.clone())).is_none(), "port 0");
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
