//! Interface tracking: which interfaces mDNS announces and browses on (re-evaluated as they come
//! and go), and the per-interface report `ferry doctor` shows.

use std::collections::BTreeMap;
use std::net::IpAddr;

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

pub(super) fn selected(i: &if_addrs::Interface, names: &[String]) -> bool {
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
