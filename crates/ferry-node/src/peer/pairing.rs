//! Pairing: the request to a device (with the code both screens show) and the records of a
//! newly paired device.

use super::*;

pub(super) fn new_device(id: DeviceId) -> DeviceRecord {
    DeviceRecord {
        id,
        name: id.short(),
        owner: String::new(),
        paired: false,
        addresses: vec![],
        static_addresses: vec![],
        last_seen_ms: None,
    }
}

/// Records `id` as paired (pinned from now on) with its name, owner and address.
pub(super) async fn mark_paired(
    inner: &Arc<Context>,
    id: DeviceId,
    name: &str,
    owner: &str,
    addr: SocketAddr,
) -> ApiResult<()> {
    let (name, owner) = (name.to_string(), owner.to_string());
    inner
        .db(move |s| {
            let mut d = s.device(&id)?.unwrap_or_else(|| new_device(id));
            d.name = name;
            d.owner = owner;
            d.paired = true;
            remember_address(&mut d, addr);
            s.put_device(&d)
        })
        .await?;
    // A deliberate pairing (asked for here, or accepted here) lifts a removal either way.
    crate::removal::clear(inner, id).await?;
    crate::removal::refresh_admission(inner).await;
    // No dialer wake here: both sides attach the pairing connection itself right after this,
    // and a dial racing it would replace that connection mid-answer. If it later drops, the
    // detach wakes the dialer.
    Ok(())
}

/// Dials `addr` and asks to pair; returns the ticket once the request is on the other screen.
/// With `expect`, the device at `addr` must prove that identity (pairing with a nearby device
/// chosen by name: the mDNS hint is checked against the TLS certificate).
pub(crate) async fn start_pairing(
    inner: &Arc<Context>,
    addr: SocketAddr,
    expect: Option<DeviceId>,
) -> ApiResult<PairTicketDto> {
    let conn = inner.endpoint.connect(addr, expect).await.map_err(|e| match e {
        NetError::Removed { by } => removed_error(&by),
        e => ApiError::new(ErrorCode::Unreachable, format!("cannot reach {addr}: {e}")),
    })?;
    let peer_id = conn.peer();
    if peer_id == inner.id {
        conn.close("self");
        return Err(ApiError::bad(format!("{addr} is this device")));
    }
    let hello = conn.handshake(&inner.hello()).await.map_err(|e| match e {
        NetError::Removed { by } => removed_error(&by),
        e => ApiError::new(ErrorCode::Unreachable, format!("handshake with {addr} failed: {e}")),
    })?;
    check_hello(&hello).map_err(ApiError::bad)?;
    let code = conn.pairing_code().map_err(|e| ApiError::internal(e.to_string()))?;
    let ticket = inner.next_ticket.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (tx, rx) = watch::channel(None);
    inner.tickets.lock().unwrap().insert(ticket, rx);
    let i = inner.clone();
    let h = hello.clone();
    inner.spawn(async move {
        let me = i.hello();
        let req = Message::PairRequest { name: me.name, owner: me.owner };
        let outcome = match conn.request(&req, PAIR_PROMPT_TIMEOUT + Duration::from_secs(5)).await {
            Ok(Message::PairResponse { accepted: true, .. }) => {
                match mark_paired(&i, peer_id, &h.name, &h.owner, addr).await {
                    Ok(()) => {
                        i.emit(Event::Paired { device: peer_id.to_string(), name: h.name.clone() });
                        let i2 = i.clone();
                        let c2 = conn.clone();
                        let h2 = h.clone();
                        i.spawn(async move { attach(&i2, c2, h2).await });
                        PairOutcomeDto { state: "accepted".into(), message: format!("paired with {}", h.name) }
                    }
                    Err(e) => PairOutcomeDto { state: "failed".into(), message: e.message },
                }
            }
            Ok(Message::PairResponse { accepted: false, message }) => {
                conn.close("declined");
                PairOutcomeDto { state: "rejected".into(), message }
            }
            Ok(other) => {
                conn.close("protocol");
                PairOutcomeDto { state: "failed".into(), message: format!("unexpected answer: {}", msg_name(&other)) }
            }
            Err(NetError::Timeout) => {
                conn.close("timeout");
                PairOutcomeDto { state: "timeout".into(), message: "nobody answered the pairing prompt".into() }
            }
            Err(e) => PairOutcomeDto { state: "failed".into(), message: e.to_string() },
        };
        let _ = tx.send(Some(outcome));
    });
    Ok(PairTicketDto { ticket, device: peer_id.to_string(), device_name: hello.name, code })
}

/// The answer of a device that removed this one: only it can pair again.
fn removed_error(by: &str) -> ApiError {
    ApiError::new(ErrorCode::Rejected, format!("{by} removed this device; only {by} can pair with it again"))
}
