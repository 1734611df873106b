//! `ferry devices scan`: asks every other address of this computer's networks for LocalSend
//! (`POST /register` on LocalSend's port), for networks where multicast does not reach. Opt-in
//! only: it knocks on every address of the network.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::api::{ApiError, ApiResult, LsScanDto};
use crate::context::Context;

/// Addresses asked at once: a /24 in a few seconds without a burst of hundreds of sockets.
const AT_ONCE: usize = 32;
/// A LocalSend device on the LAN answers in milliseconds; an address that has not in this long
/// has none (most addresses have nothing at all and never answer).
const PROBE: Duration = Duration::from_millis(1500);

pub(crate) async fn scan(inner: &Arc<Context>) -> ApiResult<LsScanDto> {
    if inner.ls.client.get().is_none() {
        let why = inner.ls.off_reason.lock().unwrap().clone().unwrap_or_else(|| "it is not running".into());
        return Err(ApiError::bad(format!("LocalSend is off: {why}")));
    }
    let only = match inner.cfg.localsend_bind {
        IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
        _ => None,
    };
    let targets =
        tokio::task::spawn_blocking(move || ferry_localsend::scan_targets(only)).await.map_err(ApiError::internal)?;
    let probed = targets.len() as u32;
    let mut found = Vec::new();
    let mut tasks = JoinSet::new();
    let mut queue = targets.into_iter();
    loop {
        while tasks.len() < AT_ONCE {
            let Some(ip) = queue.next() else { break };
            let i = inner.clone();
            tasks.spawn(async move { probe(&i, SocketAddr::new(IpAddr::V4(ip), ferry_localsend::PORT)).await });
        }
        match tasks.join_next().await {
            Some(Ok(Some(alias))) => found.push(alias),
            Some(_) => {}
            None => break,
        }
    }
    found.sort();
    Ok(LsScanDto { probed, found })
}

/// One address: its alias when a LocalSend device answered (and was remembered).
async fn probe(inner: &Arc<Context>, addr: SocketAddr) -> Option<String> {
    let client = inner.ls.client.get()?;
    let me = super::our_info(inner, None);
    let (info, fp) = tokio::time::timeout(PROBE, client.register(addr, None, &me)).await.ok()?.ok()?;
    let alias = info.alias.clone();
    let id = ferry_store::LsDeviceRecord::ferry_id(&fp);
    super::remember(inner, info, fp.to_ascii_uppercase(), addr).await;
    super::send::flush_soon(inner, id);
    Some(alias)
}
