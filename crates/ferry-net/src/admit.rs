//! Admission before any cryptography: which incoming connection attempts get a TLS handshake.
//!
//! A handshake costs the server a signature and a key exchange, and it must be done before the
//! peer's identity is known, so a flood of connection attempts from unknown devices could eat
//! the CPU that paired devices need for syncing. Attempts from an address where a paired device
//! was last seen (a device dials from its one listening socket, so that is also where it dials
//! from) always get one. Any other address shares a small token bucket; beyond it the attempt
//! is refused at the QUIC level (`Incoming::refuse`: one small packet, no cryptography).
//! A paired device that moved shows up from an unknown address: it gets a handshake while the
//! bucket has tokens, and is otherwise dialed by this side (outgoing dials are never limited).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// Handshakes for unknown addresses in a burst: pairing is a person at each screen, so even
/// several devices pairing and a few moving at once stay well under it.
pub(crate) const UNKNOWN_BURST: u32 = 16;
/// One more handshake for an unknown address per this interval once the burst is spent (4 a
/// second): a flood then costs a paired sync at most a few handshakes a second.
pub(crate) const UNKNOWN_REFILL: Duration = Duration::from_millis(250);

/// A token bucket; time is passed in, so it is tested as a state machine.
#[derive(Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    pub(crate) fn new() -> Bucket {
        Bucket { tokens: f64::from(UNKNOWN_BURST), at: None }
    }

    /// Takes a token if there is one at `now`.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() / UNKNOWN_REFILL.as_secs_f64();
            self.tokens = (self.tokens + refill).min(f64::from(UNKNOWN_BURST));
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Known addresses and the bucket for the others.
pub(crate) struct Admission {
    known: RwLock<HashSet<SocketAddr>>,
    unknown: Mutex<Bucket>,
}

impl Admission {
    pub(crate) fn new() -> Admission {
        Admission { known: RwLock::new(HashSet::new()), unknown: Mutex::new(Bucket::new()) }
    }

    pub(crate) fn set_known(&self, addrs: HashSet<SocketAddr>) {
        *self.known.write().unwrap() = addrs;
    }

    pub(crate) fn admit(&self, from: SocketAddr, now: Instant) -> bool {
        self.known.read().unwrap().contains(&from) || self.unknown.lock().unwrap().take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_one_per_refill() {
        let t0 = Instant::now();
        let mut b = Bucket::new();
        for _ in 0..UNKNOWN_BURST {
            assert!(b.take(t0));
        }
        assert!(!b.take(t0), "the burst is spent");
        assert!(!b.take(t0 + UNKNOWN_REFILL / 2));
        assert!(b.take(t0 + UNKNOWN_REFILL), "one token back after one interval");
        assert!(!b.take(t0 + UNKNOWN_REFILL));
        // Idle for long: back to the burst, never more.
        let later = t0 + UNKNOWN_REFILL * 1000;
        for _ in 0..UNKNOWN_BURST {
            assert!(b.take(later));
        }
        assert!(!b.take(later));
    }

    #[test]
    fn known_addresses_pass_whatever_the_bucket() {
        let a = Admission::new();
        let known: SocketAddr = "10.0.0.2:22010".parse().unwrap();
        let other: SocketAddr = "10.0.0.3:22010".parse().unwrap();
        a.set_known([known].into());
        let now = Instant::now();
        while a.admit(other, now) {}
        assert!(a.admit(known, now));
        assert!(!a.admit(other, now));
    }
}
