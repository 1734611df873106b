//! The node's side of discovery: starting the sources (static addresses from the config,
//! mDNS when enabled), nearby devices in `ferry devices`, pairing with a nearby device by
//! name or id, and addresses the user adds to a device.
//!
//! Discovery only ever proposes addresses. Pairing with a nearby device dials its hinted
//! address *expecting its announced id*, so the TLS handshake fails unless the device really
//! holds that identity; the user still compares the code on both screens.

use std::sync::Arc;

use ferry_net::{Mdns, MdnsConfig, Sighting, StaticAddresses};
use ferry_proto::PROTOCOL_VERSION;

use crate::api::*;
use crate::context::{ApiResult, Context};

/// Starts the discovery sources. An mDNS failure is logged and kept for `ferry doctor`; the
/// node still works with typed and remembered addresses.
pub(crate) fn start(inner: &Arc<Context>) {
    let statics = StaticAddresses::new(inner.cfg.static_addresses.clone(), inner.book.notifier());
    inner.book.add(Arc::new(statics));
    if !inner.cfg.mdns {
        tracing::info!("mDNS is off");
        return;
    }
    let cfg = MdnsConfig {
        device: inner.id,
        name: inner.cfg.name.clone(),
        protocol: PROTOCOL_VERSION,
        port: inner.listen.port(),
        interfaces: inner.cfg.mdns_interfaces.clone(),
    };
    match Mdns::start(cfg, inner.book.notifier()) {
        Ok(m) => inner.book.add(m),
        Err(e) => {
            tracing::warn!("mDNS could not start ({e}); devices can still pair by address");
            *inner.mdns_error.lock().unwrap() = Some(e.to_string());
        }
    }
}

/// Marks known devices seen by mDNS as nearby and adds the unknown ones.
pub(crate) fn add_nearby(inner: &Arc<Context>, out: &mut Vec<DeviceDto>) {
    for s in inner.book.nearby() {
        let addrs: Vec<String> = s.addrs.iter().map(|a| a.to_string()).collect();
        let id = s.id.to_string();
        match out.iter_mut().find(|d| d.id == id) {
            Some(d) => {
                d.nearby = true;
                d.nearby_addresses = addrs;
            }
            None => out.push(DeviceDto {
                id,
                name: s.name,
                owner: String::new(),
                paired: false,
                connected: false,
                addresses: addrs.clone(),
                last_seen_ms: Some(s.seen_ms),
                rtt_ms: None,
                bytes_sent: None,
                bytes_received: None,
                nearby: true,
                nearby_addresses: addrs,
                muted: false,
                auto_accept: false,
                removed: false,
                removed_by: None,
                kind: "ferry".into(),
                device_type: None,
                warning: None,
                model: None,
                fingerprint: None,
                favorite: false,
            }),
        }
    }
}

/// The nearby device `arg` names: full id, then exact name (case ignored), then id prefix.
/// `Ok(None)` when nothing nearby matches (the caller then treats `arg` as HOST:PORT).
pub(crate) fn find_nearby(inner: &Arc<Context>, arg: &str) -> ApiResult<Option<Sighting>> {
    let nearby = inner.book.nearby();
    if let Ok(id) = arg.parse::<ferry_proto::DeviceId>()
        && let Some(s) = nearby.iter().find(|s| s.id == id)
    {
        return Ok(Some(s.clone()));
    }
    let by_name: Vec<&Sighting> = nearby.iter().filter(|s| s.name.eq_ignore_ascii_case(arg)).collect();
    let found = if !by_name.is_empty() {
        by_name
    } else if arg.contains(':') {
        // HOST:PORT, never an id prefix (ids have no colon).
        vec![]
    } else {
        nearby.iter().filter(|s| s.id.matches_prefix(arg)).collect()
    };
    match found.len() {
        0 => Ok(None),
        1 => Ok(Some(found[0].clone())),
        _ => Err(ApiError::new(
            ErrorCode::Ambiguous,
            format!(
                "{arg:?} matches several nearby devices: {}; use the id",
                found.iter().map(|s| format!("{} ({})", s.name, s.id.short())).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// Starts pairing with the nearby device `arg` names, trying its hinted addresses in turn.
pub(crate) async fn pair_nearby(inner: &Arc<Context>, arg: &str) -> ApiResult<Option<PairTicketDto>> {
    let Some(s) = find_nearby(inner, arg)? else {
        if !arg.contains(':') {
            return Err(ApiError::not_found(format!(
                "no nearby device matches {arg:?} (see `ferry devices`); give HOST:PORT where multicast is blocked"
            )));
        }
        return Ok(None);
    };
    let mut last = None;
    for addr in &s.addrs {
        match crate::peer::start_pairing(inner, *addr, Some(s.id)).await {
            Ok(t) => return Ok(Some(t)),
            Err(e) => {
                tracing::info!(peer = %s.id.short(), %addr, "pairing via hinted address failed: {e}");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        ApiError::new(ErrorCode::Unreachable, format!("{} is nearby but announced no usable address", s.name))
    }))
}
