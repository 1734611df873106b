//! The facade for one-shot sends.

use std::path::PathBuf;

use crate::api::*;
use crate::context::ApiResult;
use crate::events::Event;

use crate::clock::now_ms;
use crate::send::{RECENT, collect, describe_files, dto, flush_soon, top_names};
use ferry_proto::TransferId;
use ferry_proto::wire::{MAX_FRAME, MAX_SEND_DIRS, MAX_SEND_FILES, Message};
use ferry_store::{TransferRecord, TransferState};
use std::collections::HashSet;

use super::Node;

impl Node {
    /// Offers files and folders to a paired device: walks and chunks them, stores the transfer
    /// (state `queued`) and delivers the offer now or when the device is next connected.
    pub async fn send(&self, req: SendDto) -> ApiResult<TransferDto> {
        let inner = &self.inner;
        if req.paths.is_empty() {
            return Err(ApiError::bad("nothing to send: give at least one file or folder"));
        }
        let dev = super::resolve_target(inner, &req.device).await?;
        let did = dev.id;
        let ls = crate::localsend::is_localsend(inner, did).await?;
        if !dev.paired && !ls {
            return Err(ApiError::bad(format!("{} is not paired; pair it first", dev.name)));
        }
        let kde = inner.db(move |s| s.kde_device(&did)).await?.is_some();
        let paths: Vec<PathBuf> = req.paths.iter().map(PathBuf::from).collect();
        if let Some(p) = paths.iter().find(|p| !p.is_absolute()) {
            return Err(ApiError::bad(format!("{} must be an absolute path", p.display())));
        }
        let (files, sources, dirs) = tokio::task::spawn_blocking(move || {
            let (mut list, mut dirs) = (Vec::new(), Vec::new());
            let mut tops = HashSet::new();
            for p in &paths {
                collect(p, &mut list, &mut dirs)?;
                let top = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if !tops.insert(top.clone()) {
                    return Err(format!("two of the paths are named {top:?}; send them separately"));
                }
            }
            if list.len() > MAX_SEND_FILES || dirs.len() > MAX_SEND_DIRS {
                return Err(format!("more than {MAX_SEND_FILES} files or folders; send fewer at a time"));
            }
            if kde && (!dirs.is_empty() || list.iter().any(|(rel, _)| rel.as_str().contains('/'))) {
                return Err("a KDE Connect device receives files, not folders: send the files inside".to_string());
            }
            let files = describe_files(&list)?;
            let sources = list.iter().map(|(_, p)| p.display().to_string()).collect::<Vec<_>>();
            Ok::<_, String>((files, sources, dirs))
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::bad)?;
        let id = TransferId(rand::random());
        let offer = Message::SendOffer { id, files, dirs };
        let size = ferry_proto::wire::encode(&offer).map(|f| f.len()).unwrap_or(usize::MAX);
        if size > MAX_FRAME {
            return Err(ApiError::bad("too many files or chunks for one send; send fewer at a time"));
        }
        let Message::SendOffer { files, dirs, .. } = offer else { unreachable!("built above") };
        let rec = TransferRecord {
            id,
            peer: dev.id,
            outgoing: true,
            created_ms: now_ms(),
            files,
            dirs,
            sources,
            state: TransferState::Queued,
            done_bytes: 0,
            notify: None,
            placed: vec![],
            finished_ms: None,
        };
        let r = rec.clone();
        inner.db(move |s| s.put_transfer(&r)).await?;
        inner.emit(Event::SendOffered {
            id: id.to_hex(),
            device: dev.id.to_string(),
            device_name: dev.name.clone(),
            direction: "out".into(),
            files: rec.files.len() as u64,
            bytes: rec.total_bytes(),
            names: top_names(&rec),
        });
        let out = dto(inner, &rec).await?;
        if kde {
            crate::kdeconnect::send_files(inner, dev.id);
        } else if ls {
            crate::localsend::set_pin(inner, dev.id, req.pin.clone());
            crate::localsend::flush_soon(inner, dev.id);
        } else {
            flush_soon(inner, dev.id);
        }
        Ok(out)
    }

    /// Active and recent transfers, both directions, newest first.
    pub async fn transfers(&self) -> ApiResult<Vec<TransferDto>> {
        let inner = &self.inner;
        let mut all = inner.db(|s| s.transfers()).await?;
        all.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(a.id.cmp(&b.id)));
        let mut out = Vec::new();
        let mut recent = 0;
        for t in &all {
            if t.state.is_final() {
                recent += 1;
                if recent > RECENT {
                    continue;
                }
            }
            out.push(dto(inner, t).await?);
        }
        Ok(out)
    }

    /// One transfer by id or unique id prefix.
    pub async fn transfer(&self, id: &str) -> ApiResult<TransferDto> {
        let inner = &self.inner;
        let arg = id.to_ascii_lowercase();
        let all = inner.db(|s| s.transfers()).await?;
        let found: Vec<&TransferRecord> =
            all.iter().filter(|t| !arg.is_empty() && t.id.to_hex().starts_with(&arg)).collect();
        match found.len() {
            1 => dto(inner, found[0]).await,
            0 => Err(ApiError::not_found(format!("no transfer matches {id:?} (see `ferry transfers`)"))),
            _ => Err(ApiError::new(ErrorCode::Ambiguous, format!("{id:?} matches several transfers"))),
        }
    }

    /// Accepts sends from a device without a prompt (or asks again).
    pub async fn device_auto_accept(&self, device: &str, on: bool) -> ApiResult<AutoAcceptDto> {
        let inner = &self.inner;
        let dev = super::resolve_target(inner, device).await?;
        // A LocalSend device has no pairing; auto-accept is bound to its certificate's
        // fingerprint, which its id is made from.
        if on && !dev.paired && !crate::localsend::is_localsend(inner, dev.id).await? {
            return Err(ApiError::bad(format!("{} is not paired; pair it first", dev.name)));
        }
        let id = dev.id;
        inner.db(move |s| s.set_auto_accept(&id, on)).await?;
        Ok(AutoAcceptDto { device: dev.id.to_string(), name: dev.name, auto_accept: on })
    }
}
