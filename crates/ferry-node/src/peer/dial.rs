//! The dialer: calls every paired device that is not connected, at its known addresses, with
//! backoff, and sleeps until the next deadline or a wake.

use super::*;

/// Keeps paired devices connected: dials each disconnected one at its known addresses, with
/// a per-device backoff.
pub(crate) async fn dial_loop(inner: Arc<Context>) {
    let mut stop = inner.stop.subscribe();
    let mut backoff: HashMap<DeviceId, (Instant, Duration)> = HashMap::new();
    let mut hints = inner.book.changes();
    // Addresses discovery last gave per device: a new one means "dial now", whatever the backoff.
    let mut last_hint: HashMap<DeviceId, Vec<SocketAddr>> = HashMap::new();
    // Sleeps until the next backoff deadline of a device that is not connected, or until
    // something wakes it (no ticking while every paired device is connected: idle CPU).
    let mut next_due = Instant::now();
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep_until(next_due.into()) => {}
            _ = inner.dial_wake.notified() => {}
            r = hints.changed() => if r.is_err() { return },
        }
        next_due = Instant::now() + DIAL_IDLE;
        // Paused syncing: no new connections (see pause.rs); resuming wakes the dialer.
        if inner.sync_paused() {
            continue;
        }
        let Ok(devices) = inner.db(|s| s.devices()).await else {
            next_due = Instant::now() + DIAL_MIN;
            continue;
        };
        let now = Instant::now();
        for d in devices.into_iter().filter(|d| d.paired) {
            let hinted = inner.book.addresses(&d.id);
            let fresh = !hinted.is_empty() && last_hint.get(&d.id) != Some(&hinted);
            if let Some(peer) = inner.peer(&d.id) {
                backoff.remove(&d.id);
                if fresh && hinted.first() != Some(&peer.conn.remote_addr()) {
                    // It announces a newer address than the one we talk to (a new DHCP lease,
                    // another interface): check the connection at once instead of waiting out
                    // the idle timeout, so the redial to the new address comes within seconds.
                    // A device that still answers keeps its connection.
                    inner.spawn(async move {
                        if !matches!(tokio::time::timeout(MOVED_PROBE, peer.ping()).await, Ok(Ok(_))) {
                            tracing::info!(peer = %peer.id.short(), "device moved; redialing at its new address");
                            peer.conn.close("moved");
                        }
                    });
                }
                last_hint.insert(d.id, hinted);
                continue;
            }
            last_hint.insert(d.id, hinted);
            if fresh {
                backoff.insert(d.id, (now, DIAL_MIN));
            }
            let entry = backoff.entry(d.id).or_insert((now, DIAL_MIN));
            if entry.0 > now {
                next_due = next_due.min(entry.0);
                continue;
            }
            {
                let mut dialing = inner.dialing.lock().unwrap();
                if !dialing.insert(d.id) {
                    next_due = next_due.min(now + DIAL_MIN);
                    continue;
                }
            }
            entry.0 = now + entry.1;
            entry.1 = (entry.1 * 2).min(DIAL_MAX);
            // Look again at the next attempt's time (a dial that connects removes the device
            // from the list above; one that fails is retried then).
            next_due = next_due.min(entry.0);
            let i = inner.clone();
            inner.spawn(async move {
                dial(&i, &d).await;
                i.dialing.lock().unwrap().remove(&d.id);
            });
        }
    }
}

async fn dial(inner: &Arc<Context>, d: &DeviceRecord) {
    // Fresh hints (mDNS, config) first, then addresses the user gave, then the last known ones.
    let mut addrs: Vec<SocketAddr> = inner.book.addresses(&d.id);
    for a in d.static_addresses.iter().chain(d.addresses.iter()).filter_map(|a| a.parse().ok()) {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    for addr in addrs {
        if inner.peer(&d.id).is_some() || inner.stopping() {
            return;
        }
        match inner.endpoint.connect(addr, Some(d.id)).await {
            Ok(conn) => match conn.handshake(&inner.hello()).await {
                Ok(hello) if check_hello(&hello).is_ok() => {
                    let i = inner.clone();
                    inner.spawn(async move { attach(&i, conn, hello).await });
                    return;
                }
                Ok(_) => conn.close("bad hello"),
                Err(NetError::Removed { by }) => return crate::removal::removed_by(inner, d.id, by).await,
                Err(e) => tracing::debug!(peer = %d.id.short(), %addr, "handshake failed: {e}"),
            },
            Err(NetError::Removed { by }) => return crate::removal::removed_by(inner, d.id, by).await,
            Err(e) => tracing::debug!(peer = %d.id.short(), %addr, "dial failed: {e}"),
        }
    }
}
