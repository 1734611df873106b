//! Per-device rate limit on incoming prompts (pairing requests, share offers, send offers): a
//! token bucket per device and kind of prompt, so a paired or unpaired device cannot flood the user's screen.
//! Time is passed in, so the bucket itself is a pure state machine and tested as one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferry_proto::DeviceId;

/// Prompts a device may raise in a burst: enough for a person sending a few things in a row.
pub(crate) const PROMPT_BURST: u32 = 5;
/// One more prompt allowed per this interval once the burst is spent (5 per minute).
pub(crate) const PROMPT_REFILL: Duration = Duration::from_secs(12);
/// Connections from devices that are not paired, held at once (each waits for its one pairing
/// request, then for the user's answer, up to two minutes). Pairing is a person at each screen,
/// so a handful is plenty; more are closed at once, so a flood of unpaired connections holds
/// at most this many tasks and QUIC connections and cannot crowd out the paired devices. The
/// same number bounds the links of unpaired KDE Connect devices (`kdeconnect/link.rs`).
pub(crate) const MAX_UNPAIRED_CONNECTIONS: usize = 8;
/// How long an unpaired device has to send its pairing request after the Hello: a real device
/// sends it right away (a LAN round trip), so one that waits longer is only holding a slot.
pub(crate) const UNPAIRED_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Buckets kept at most; full buckets (idle devices) are dropped first, so the map stays
/// bounded even if many unpaired devices knock.
const MAX_BUCKETS: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per device. Cheap to share (`&self` methods behind a mutex).
#[derive(Debug)]
pub(crate) struct PromptLimiter {
    burst: u32,
    refill: Duration,
    buckets: Mutex<HashMap<(DeviceId, &'static str), Bucket>>,
}

impl Default for PromptLimiter {
    fn default() -> Self {
        Self::new(PROMPT_BURST, PROMPT_REFILL)
    }
}

impl PromptLimiter {
    pub fn new(burst: u32, refill: Duration) -> Self {
        PromptLimiter { burst, refill, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token for a prompt of kind `what` from `device` at `now`: Ok, or Err with how
    /// long until the next one.
    pub fn take(&self, device: DeviceId, what: &'static str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap();
        let key = (device, what);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&key) {
            let (burst, refill) = (self.burst, self.refill);
            buckets.retain(|_, b| level(b, now, burst, refill) < f64::from(burst));
        }
        let b = buckets.entry(key).or_insert(Bucket { tokens: f64::from(self.burst), at: now });
        b.tokens = level(b, now, self.burst, self.refill);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.refill.mul_f64(1.0 - b.tokens))
        }
    }

    /// [`take`](Self::take) now, as an error message for the device that asked.
    pub fn check(&self, device: DeviceId, what: &'static str) -> Result<(), String> {
        self.take(device, what, Instant::now()).map_err(|wait| {
            tracing::warn!(peer = %device.short(), "refused {what}: too many prompts from this device");
            format!(
                "too many requests from this device (at most {} in a row, then one per {}s); try again in {}s",
                self.burst,
                self.refill.as_secs(),
                wait.as_secs().max(1)
            )
        })
    }
}

fn level(b: &Bucket, now: Instant, burst: u32, refill: Duration) -> f64 {
    let gained = now.saturating_duration_since(b.at).as_secs_f64() / refill.as_secs_f64();
    (b.tokens + gained).min(f64::from(burst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_per_device() {
        let l = PromptLimiter::new(3, Duration::from_secs(10));
        let (a, b) = (DeviceId([1; 32]), DeviceId([2; 32]));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.take(a, "x", t0).is_ok());
        }
        let wait = l.take(a, "x", t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        // Another device, or another kind of prompt, has its own bucket.
        assert!(l.take(b, "x", t0).is_ok());
        assert!(l.take(a, "y", t0).is_ok());
        // Half the interval later: still nothing; a full interval: exactly one more.
        assert!(l.take(a, "x", t0 + Duration::from_secs(5)).is_err());
        assert!(l.take(a, "x", t0 + Duration::from_secs(10)).is_ok());
        assert!(l.take(a, "x", t0 + Duration::from_secs(10)).is_err());
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(1000);
        for _ in 0..3 {
            assert!(l.take(a, "x", later).is_ok());
        }
        assert!(l.take(a, "x", later).is_err());
    }

    #[test]
    fn message_is_clear() {
        let l = PromptLimiter::new(1, Duration::from_secs(12));
        let d = DeviceId([3; 32]);
        assert!(l.check(d, "a send offer").is_ok());
        let e = l.check(d, "a send offer").unwrap_err();
        assert!(e.starts_with("too many requests from this device"), "{e}");
    }
}
