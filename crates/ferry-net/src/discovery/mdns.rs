//! The mDNS source: announces this device's service and browses for other Ferry devices,
//! keeping what it heard (sightings, per-interface counters, daemon errors) for the
//! [`AddressBook`](super::AddressBook) and `ferry doctor`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_proto::DeviceId;
use mdns_sd::{DaemonEvent, IfKind, IfPredicate, ServiceDaemon, ServiceEvent, ServiceInfo};

use super::interfaces::{InterfaceReport, MdnsReport, mdns_interfaces, selected};
use super::resolved::{TXT_ID, TXT_NAME, TXT_PROTO, merge, sighting_from};
use super::{Discovery, Notifier, Sighting};

/// The DNS-SD service type Ferry announces and browses.
pub const SERVICE_TYPE: &str = "_ferry._udp.local.";
/// How often mdns-sd re-reads the interface list: short enough that a new interface or a new
/// DHCP address is announced within seconds, long enough to cost nothing.
const IP_CHECK_SECS: u32 = 2;
/// How long shutdown waits for the goodbye packet to be sent.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);
/// How long an address stays a hint without being announced again: mDNS's address record
/// lifetime (RFC 6762 recommends 120 s for host records).
const ADDR_LIFETIME: Duration = Duration::from_secs(120);
/// Daemon errors kept for `ferry doctor`: the latest few say what is wrong now; older ones
/// would only grow the report.
const MAX_DAEMON_ERRORS: usize = 8;

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
                        on_daemon_event(&state, ev);
                    }
                })
                .map_err(|e| MdnsError(e.to_string()))?;
        }
        tracing::info!(service = %fullname, port = cfg.port, "mDNS announcing and browsing");
        Ok(Arc::new(Mdns { daemon, fullname, interfaces: cfg.interfaces, state, stopped: Mutex::new(false) }))
    }
}

/// Counts one daemon event in the per-interface report (announcements, responses) or keeps its
/// error.
fn on_daemon_event(state: &Mutex<MdnsState>, ev: DaemonEvent) {
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
            if n > MAX_DAEMON_ERRORS {
                st.errors.drain(..n - MAX_DAEMON_ERRORS);
            }
        }
        _ => {}
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
