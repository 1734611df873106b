//! Where to look when multicast does not reach (a router that drops it, a phone on a guest
//! network bridge): the other addresses of the IPv4 networks this computer is on, to be asked
//! `POST /register` one by one. LocalSend itself scans the /24 around each address; so does this,
//! and only when the user asks (it knocks on every address of the network).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Every host of the /24 around each IPv4 address of an interface that is up and not loopback
/// (only `only`'s network when given), without this computer's own addresses. Ordered, no
/// duplicates; at most 254 per network.
pub fn scan_targets(only: Option<Ipv4Addr>) -> Vec<Ipv4Addr> {
    let mut own = BTreeSet::new();
    let mut nets = BTreeSet::new();
    for i in if_addrs::get_if_addrs().unwrap_or_default() {
        if let std::net::IpAddr::V4(ip) = i.ip()
            && !i.is_loopback()
            && i.is_oper_up()
            && only.is_none_or(|o| o == ip)
        {
            own.insert(ip);
            let [a, b, c, _] = ip.octets();
            nets.insert([a, b, c]);
        }
    }
    targets(&nets, &own)
}

fn targets(nets: &BTreeSet<[u8; 3]>, own: &BTreeSet<Ipv4Addr>) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    for [a, b, c] in nets {
        for d in 1..=254u8 {
            let ip = Ipv4Addr::new(*a, *b, *c, d);
            if !own.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_the_24_without_ourselves() {
        let nets = BTreeSet::from([[10, 77, 0]]);
        let own = BTreeSet::from([Ipv4Addr::new(10, 77, 0, 1)]);
        let t = targets(&nets, &own);
        assert_eq!(t.len(), 253);
        assert_eq!(t[0], Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!(*t.last().unwrap(), Ipv4Addr::new(10, 77, 0, 254));
        assert!(!t.contains(&Ipv4Addr::new(10, 77, 0, 255)) && !t.contains(&Ipv4Addr::new(10, 77, 0, 0)));
    }
}
