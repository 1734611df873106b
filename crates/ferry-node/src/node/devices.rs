//! The facade for devices: listing, pairing, answering prompts, addresses, pings.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ferry_store::{PromptKind, RemovedBy};

use crate::api::*;
use crate::context::ApiResult;
use crate::events::Event;

use crate::context::PAIR_PROMPT_TIMEOUT;
use crate::discovery::find_nearby;

use super::Node;

impl Node {
    pub async fn devices(&self) -> ApiResult<Vec<DeviceDto>> {
        let inner = &self.inner;
        let devices = inner
            .db(|s| {
                let mut out = Vec::new();
                for d in s.devices()? {
                    let (muted, auto) = (s.is_muted(&d.id)?, s.auto_accept(&d.id)?);
                    let removal = s.removal(&d.id)?.map(|r| r.by);
                    out.push((d, muted, auto, removal));
                }
                Ok(out)
            })
            .await?;
        let mut out: Vec<DeviceDto> = devices
            .into_iter()
            .map(|(d, muted, auto_accept, removal)| {
                let peer = inner.peer(&d.id);
                let stats = peer.as_ref().map(|p| p.conn.connection().stats());
                DeviceDto {
                    id: d.id.to_string(),
                    name: d.name,
                    owner: d.owner,
                    paired: d.paired,
                    connected: peer.is_some(),
                    addresses: d.static_addresses.into_iter().chain(d.addresses).collect(),
                    last_seen_ms: d.last_seen_ms,
                    rtt_ms: peer.map(|p| p.conn.rtt().as_secs_f64() * 1000.0),
                    bytes_sent: stats.as_ref().map(|s| s.udp_tx.bytes),
                    bytes_received: stats.as_ref().map(|s| s.udp_rx.bytes),
                    nearby: false,
                    nearby_addresses: vec![],
                    muted,
                    auto_accept,
                    removed: removal == Some(RemovedBy::Us),
                    removed_by: match removal {
                        Some(RemovedBy::Them { name }) => Some(name),
                        _ => None,
                    },
                    kind: "ferry".into(),
                    device_type: None,
                    warning: None,
                    model: None,
                    fingerprint: None,
                    favorite: false,
                }
            })
            .collect();
        crate::discovery::add_nearby(inner, &mut out);
        crate::kdeconnect::describe(inner, &mut out).await?;
        crate::localsend::describe(inner, &mut out).await?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub async fn pending(&self) -> ApiResult<Vec<PendingDto>> {
        let inner = &self.inner;
        let prompts = inner.db(|s| s.prompts()).await?;
        let mut out = Vec::new();
        for p in prompts {
            let dev = inner.db(move |s| s.device(&p.device)).await?;
            let (dev_name, dev_owner) = dev.map(|d| (d.name, d.owner)).unwrap_or_default();
            out.push(match p.kind {
                PromptKind::Pair { name, owner, code } => PendingDto {
                    id: p.id,
                    kind: "pair".into(),
                    device: p.device.to_string(),
                    device_name: name,
                    owner,
                    code: Some(code),
                    share_id: None,
                    share_label: None,
                    created_ms: p.created_ms,
                    transfer: None,
                    files: None,
                    bytes: None,
                    names: vec![],
                    deletes: None,
                    device_kind: String::new(),
                    fingerprint: None,
                },
                PromptKind::ShareOffer { share, label } => PendingDto {
                    id: p.id,
                    kind: "share".into(),
                    device: p.device.to_string(),
                    device_name: dev_name,
                    owner: dev_owner,
                    code: None,
                    share_id: Some(share.to_string()),
                    share_label: Some(label),
                    created_ms: p.created_ms,
                    transfer: None,
                    files: None,
                    bytes: None,
                    names: vec![],
                    deletes: None,
                    device_kind: String::new(),
                    fingerprint: None,
                },
                PromptKind::SendOffer { transfer, files, bytes, names } => PendingDto {
                    id: p.id,
                    kind: "send".into(),
                    device: p.device.to_string(),
                    device_name: dev_name,
                    owner: dev_owner,
                    code: None,
                    share_id: None,
                    share_label: None,
                    created_ms: p.created_ms,
                    transfer: Some(transfer.to_hex()),
                    files: Some(files),
                    bytes: Some(bytes),
                    names,
                    deletes: None,
                    device_kind: String::new(),
                    fingerprint: None,
                },
                PromptKind::MassDelete { share, label, deletes, files } => PendingDto {
                    id: p.id,
                    kind: "mass-delete".into(),
                    device: p.device.to_string(),
                    device_name: dev_name,
                    owner: dev_owner,
                    code: None,
                    share_id: Some(share.to_string()),
                    share_label: Some(label),
                    created_ms: p.created_ms,
                    transfer: None,
                    files: Some(files),
                    bytes: None,
                    names: vec![],
                    deletes: Some(deletes),
                    device_kind: String::new(),
                    fingerprint: None,
                },
            });
        }
        // Which kind of device asks, and for a LocalSend device its fingerprint (it has no
        // pairing: the fingerprint is what tells it from another device of the same name).
        let (kde, ls) = inner.db(|s| Ok((s.kde_devices()?, s.ls_devices()?))).await?;
        for p in &mut out {
            if let Some(r) = ls.iter().find(|r| r.id().to_string() == p.device) {
                p.device_kind = "localsend".into();
                p.fingerprint = Some(r.fingerprint.clone());
            } else if kde.iter().any(|(id, _)| id.to_string() == p.device) {
                p.device_kind = "kdeconnect".into();
            } else {
                p.device_kind = "ferry".into();
            }
        }
        Ok(out)
    }

    /// Asks the device at `address` to pair. Returns once the request is on its screen, with
    /// the code both screens show; [`Node::pair_wait`] waits for the answer.
    pub async fn pair(&self, address: &str) -> ApiResult<PairTicketDto> {
        if address.parse::<SocketAddr>().is_err() {
            // A name no nearby Ferry device has may be a KDE Connect device's: only when that
            // is not one either does the Ferry lookup's "not found" stand.
            let ferry = crate::discovery::pair_nearby(&self.inner, address).await;
            match ferry {
                Ok(Some(t)) => return Ok(t),
                Err(e) if e.code != ErrorCode::NotFound => return Err(e),
                _ => {}
            }
            if let Some(t) = crate::kdeconnect::start_pairing(&self.inner, address).await? {
                return Ok(t);
            }
            ferry?;
        }
        let addr: SocketAddr = match address.parse() {
            Ok(a) => a,
            Err(_) => tokio::net::lookup_host(address)
                .await
                .map_err(|e| ApiError::bad(format!("{address:?} is not HOST:PORT: {e}")))?
                .next()
                .ok_or_else(|| ApiError::bad(format!("{address:?} resolves to no address")))?,
        };
        crate::peer::start_pairing(&self.inner, addr, None).await
    }

    /// Waits (up to the prompt timeout plus a margin) for the outcome of a pairing attempt.
    pub async fn pair_wait(&self, ticket: u64) -> ApiResult<PairOutcomeDto> {
        let mut rx = self
            .inner
            .tickets
            .lock()
            .unwrap()
            .get(&ticket)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no pairing attempt {ticket}")))?;
        let wait = rx.wait_for(|o| o.is_some());
        match tokio::time::timeout(PAIR_PROMPT_TIMEOUT + Duration::from_secs(15), wait).await {
            Ok(Ok(o)) => Ok(o.clone().expect("waited for Some")),
            Ok(Err(_)) => Err(ApiError::internal("pairing task ended without an outcome")),
            Err(_) => Ok(PairOutcomeDto { state: "timeout".into(), message: "no answer from the other device".into() }),
        }
    }

    pub async fn accept(&self, req: AcceptDto) -> ApiResult<()> {
        self.answer(req.id, true, req.path).await
    }

    pub async fn reject(&self, id: u64) -> ApiResult<()> {
        self.answer(id, false, None).await
    }

    async fn answer(&self, id: u64, accept: bool, path: Option<String>) -> ApiResult<()> {
        let inner = &self.inner;
        let prompt = inner
            .db(move |s| s.prompt(id))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no pending prompt {id} (see `ferry pending`)")))?;
        match &prompt.kind {
            PromptKind::Pair { .. } => {
                let waiter = inner.pair_waiters.lock().unwrap().remove(&id);
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(accept);
                    }
                    None => {
                        inner.db(move |s| s.remove_prompt(id)).await?;
                        return Err(ApiError::new(
                            ErrorCode::Conflict,
                            "the device asking to pair has gone; ask again",
                        ));
                    }
                }
            }
            PromptKind::ShareOffer { share, label } => {
                if accept {
                    let path = path.ok_or_else(|| {
                        ApiError::bad(format!("accepting the share {label:?} needs a folder: --path DIR"))
                    })?;
                    crate::share::accept_offer(inner, &prompt, *share, label, Path::new(&path)).await?;
                }
                inner.db(move |s| s.remove_prompt(id)).await?;
            }
            PromptKind::SendOffer { transfer, .. } => {
                let dev = prompt.device;
                let res = if inner.db(move |s| s.kde_device(&dev)).await?.is_some() {
                    crate::kdeconnect::answer_send(inner, prompt.device, *transfer, accept).await
                } else if crate::localsend::is_localsend(inner, dev).await? {
                    crate::localsend::answer_send(inner, prompt.device, *transfer, accept).await
                } else {
                    crate::send::answer(inner, prompt.device, *transfer, accept).await
                };
                inner.db(move |s| s.remove_prompt(id)).await?;
                inner.emit(Event::PromptResolved { id, accepted: accept && res.is_ok() });
                return res;
            }
            PromptKind::MassDelete { share, deletes, .. } => {
                // Answer first: while the prompt exists, the guard raises no second one.
                crate::guard::answer(inner, *share, accept, *deletes).await?;
                inner.db(move |s| s.remove_prompt(id)).await?;
            }
        }
        inner.emit(Event::PromptResolved { id, accepted: accept });
        Ok(())
    }

    /// Removes a device (a lost or stolen one): unpaired, dropped from every share, its
    /// connection closed and its certificate refused from now on; it is told when reachable.
    /// Nothing is deleted on either side. Only `pair` toward it lets it back in.
    pub async fn device_remove(&self, device: &str) -> ApiResult<DeviceDto> {
        let inner = &self.inner;
        let dev = inner.resolve_device(device).await?;
        let id = dev.id;
        if inner.db(move |s| s.kde_device(&id)).await?.is_some() {
            // A KDE Connect device is unpaired (its pin dropped): it can ask again, as in KDE
            // Connect itself.
            if !dev.paired {
                return Err(ApiError::new(ErrorCode::Conflict, format!("{} is not paired", dev.name)));
            }
            crate::kdeconnect::unpair(inner, id).await?;
            inner.emit(Event::DeviceRemoved { device: id.to_string(), name: dev.name.clone(), by: None });
            return self.device_dto(id).await;
        }
        if crate::localsend::is_localsend(inner, id).await? {
            // A LocalSend device has no pairing to undo: it is forgotten (listed again, as a
            // new device, when it is next heard).
            let d = crate::localsend::remove(inner, id).await?;
            inner.emit(Event::DeviceRemoved { device: id.to_string(), name: dev.name.clone(), by: None });
            return Ok(d);
        }
        if inner.db(move |s| s.removal(&id)).await?.is_some_and(|r| r.by == RemovedBy::Us) {
            return Err(ApiError::new(ErrorCode::Conflict, format!("{} is already removed", dev.name)));
        }
        crate::removal::remove(inner, id, &dev.name).await?;
        let sid = id.to_string();
        self.devices()
            .await?
            .into_iter()
            .find(|d| d.id == sid)
            .ok_or_else(|| ApiError::internal("device vanished after its removal"))
    }

    /// Asks every other address of this computer's networks for LocalSend (opt-in: where
    /// multicast does not reach).
    pub async fn localsend_scan(&self) -> ApiResult<LsScanDto> {
        crate::localsend::scan(&self.inner).await
    }

    /// Keeps a LocalSend device listed while away (or only while nearby).
    pub async fn device_favorite(&self, device: &str, on: bool) -> ApiResult<DeviceDto> {
        let inner = &self.inner;
        let dev = super::resolve_target(inner, device).await?;
        if !crate::localsend::is_localsend(inner, dev.id).await? {
            return Err(ApiError::bad(format!(
                "{} is not a LocalSend device; paired devices are always listed",
                dev.name
            )));
        }
        crate::localsend::set_favorite(inner, dev.id, on).await?;
        self.device_dto(dev.id).await
    }

    pub async fn ping(&self, device: &str) -> ApiResult<PingDto> {
        let inner = &self.inner;
        let dev = inner.resolve_device(device).await?;
        if inner.kde.link(&dev.id).is_some() {
            return Err(ApiError::bad(format!(
                "{} is a KDE Connect device, which answers no ping; `ferry note send` rings it",
                dev.name
            )));
        }
        let peer = inner
            .peer(&dev.id)
            .ok_or_else(|| ApiError::new(ErrorCode::Unreachable, format!("{} is not connected", dev.name)))?;
        let rtt = peer.ping().await?;
        Ok(PingDto { device: dev.id.to_string(), rtt_ms: rtt.as_secs_f64() * 1000.0 })
    }

    /// Adds a static address to a device (kept, and tried on every dial before the remembered
    /// ones). A nearby device not yet known is recorded (unpaired) to carry it.
    pub async fn device_add_address(&self, req: AddAddressDto) -> ApiResult<DeviceDto> {
        let inner = &self.inner;
        let addr: SocketAddr = match req.address.parse() {
            Ok(a) => a,
            Err(_) => tokio::net::lookup_host(&req.address)
                .await
                .map_err(|e| ApiError::bad(format!("{:?} is not HOST:PORT: {e}", req.address)))?
                .next()
                .ok_or_else(|| ApiError::bad(format!("{:?} resolves to no address", req.address)))?,
        };
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(ApiError::bad(format!("{addr} cannot be dialed: give a real IP and port")));
        }
        let id = match inner.resolve_device(&req.device).await {
            Ok(d) => d.id,
            Err(e) if e.code == ErrorCode::NotFound => match find_nearby(inner, &req.device)? {
                Some(s) => s.id,
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let name = find_nearby(inner, &id.to_string())?.map(|s| s.name);
        let a = addr.to_string();
        inner
            .db(move |s| {
                let mut d = s.device(&id)?.unwrap_or_else(|| ferry_store::DeviceRecord {
                    id,
                    name: name.unwrap_or_else(|| id.short()),
                    owner: String::new(),
                    paired: false,
                    addresses: vec![],
                    static_addresses: vec![],
                    last_seen_ms: None,
                });
                if !d.static_addresses.contains(&a) {
                    d.static_addresses.push(a);
                }
                s.put_device(&d)
            })
            .await?;
        crate::removal::refresh_admission(inner).await;
        inner.dial_wake.notify_one();
        let sid = id.to_string();
        self.devices()
            .await?
            .into_iter()
            .find(|d| d.id == sid)
            .ok_or_else(|| ApiError::internal("device vanished after adding its address"))
    }

    /// One device as `ferry devices` lists it.
    async fn device_dto(&self, id: ferry_proto::DeviceId) -> ApiResult<DeviceDto> {
        let sid = id.to_string();
        self.devices()
            .await?
            .into_iter()
            .find(|d| d.id == sid)
            .ok_or_else(|| ApiError::internal("the device vanished from the list"))
    }
}
