//! Resolved mDNS answers as sightings: reading Ferry's TXT record, keeping useful addresses
//! (IPv4 first, link-local IPv6 only without IPv4, capped), and merging the several resolve
//! events a peer produces as its addresses trickle in.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use ferry_proto::DeviceId;
use mdns_sd::ScopedIp;

use super::{Sighting, now_ms};

/// TXT keys.
pub const TXT_ID: &str = "id";
pub const TXT_NAME: &str = "name";
pub const TXT_PROTO: &str = "proto";
/// Addresses kept per sighting: a device rarely has more than a few useful ones.
const MAX_SIGHTING_ADDRS: usize = 8;
/// Longest device name accepted from a TXT record (the wire protocol's own limit).
const MAX_NAME: usize = ferry_proto::wire::MAX_NAME;

/// Newer addresses first, then the older ones not repeated; the link-local rule re-applied.
pub(super) fn merge(old: &Sighting, new: Sighting) -> Sighting {
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
pub(super) fn sighting_from(
    fullname: &str,
    port: u16,
    addrs: &HashSet<ScopedIp>,
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
}
