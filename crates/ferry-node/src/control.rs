//! The control API: HTTP/1.1 + JSON over a Unix socket in the home (mode 0600, so only this
//! user can drive the node; still curl-able with `curl --unix-socket`). Each handler is a line
//! or two that calls one [`Node`] method.

use std::os::unix::fs::PermissionsExt;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::api::*;
use crate::event_log::Stamped;
use crate::node::Node;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.code {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Ambiguous | ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::Unreachable => StatusCode::BAD_GATEWAY,
            ErrorCode::Rejected => StatusCode::FORBIDDEN,
            ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(self)).into_response()
    }
}

#[derive(Serialize, Deserialize)]
pub struct Empty {}

#[derive(Serialize, Deserialize)]
pub struct IdArg {
    pub id: u64,
}

#[derive(Serialize, Deserialize)]
pub struct NameArg {
    pub name: String,
}

#[derive(Serialize, Deserialize)]
pub struct MuteArg {
    pub name: String,
    pub muted: bool,
}

#[derive(Serialize, Deserialize)]
pub struct AutoAcceptArg {
    pub name: String,
    pub on: bool,
}

pub(crate) fn router(node: Node) -> Router {
    Router::new()
        .route("/v1/id", get(|State(n): State<Node>| async move { Json(n.id_info()) }))
        .route("/v1/status", get(|State(n): State<Node>| async move { n.status().await.map(Json) }))
        .route("/v1/devices", get(|State(n): State<Node>| async move { n.devices().await.map(Json) }))
        .route("/v1/pending", get(|State(n): State<Node>| async move { n.pending().await.map(Json) }))
        .route("/v1/pair", post(|State(n): State<Node>, Json(b): Json<PairRequestDto>| async move { n.pair(&b.address).await.map(Json) }))
        .route("/v1/pair/{ticket}", get(|State(n): State<Node>, UrlPath(t): UrlPath<u64>| async move { n.pair_wait(t).await.map(Json) }))
        .route("/v1/accept", post(|State(n): State<Node>, Json(b): Json<AcceptDto>| async move { n.accept(b).await.map(|_| Json(Empty {})) }))
        .route("/v1/reject", post(|State(n): State<Node>, Json(b): Json<IdArg>| async move { n.reject(b.id).await.map(|_| Json(Empty {})) }))
        .route("/v1/shares", get(|State(n): State<Node>| async move { n.share_list().await.map(Json) }))
        .route("/v1/shares/add", post(|State(n): State<Node>, Json(b): Json<ShareAddDto>| async move { n.share_add(b).await.map(Json) }))
        .route("/v1/shares/invite", post(|State(n): State<Node>, Json(b): Json<InviteDto>| async move { n.share_invite(b).await.map(Json) }))
        .route("/v1/shares/remove", post(|State(n): State<Node>, Json(b): Json<NameArg>| async move { n.share_remove(&b.name).await.map(Json) }))
        .route("/v1/versions", post(|State(n): State<Node>, Json(b): Json<VersionsQuery>| async move { n.versions(&b.path).await.map(Json) }))
        .route("/v1/ping", post(|State(n): State<Node>, Json(b): Json<NameArg>| async move { n.ping(&b.name).await.map(Json) }))
        .route("/v1/notes/send", post(|State(n): State<Node>, Json(b): Json<NoteSendDto>| async move { n.note_send(b).await.map(Json) }))
        .route("/v1/notes", get(|State(n): State<Node>| async move { n.notes(NotesQuery::default()).await.map(Json) }).post(|State(n): State<Node>, Json(b): Json<NotesQuery>| async move { n.notes(b).await.map(Json) }))
        .route("/v1/notes/read", post(|State(n): State<Node>, Json(b): Json<NoteReadDto>| async move { n.note_read(&b.id).await.map(Json) }))
        .route("/v1/devices/mute", post(|State(n): State<Node>, Json(b): Json<MuteArg>| async move { n.device_mute(&b.name, b.muted).await.map(Json) }))
        .route("/v1/send", post(|State(n): State<Node>, Json(b): Json<SendDto>| async move { n.send(b).await.map(Json) }))
        .route("/v1/transfers", get(|State(n): State<Node>| async move { n.transfers().await.map(Json) }))
        .route("/v1/transfer", post(|State(n): State<Node>, Json(b): Json<NameArg>| async move { n.transfer(&b.name).await.map(Json) }))
        .route("/v1/devices/auto-accept", post(|State(n): State<Node>, Json(b): Json<AutoAcceptArg>| async move { n.device_auto_accept(&b.name, b.on).await.map(Json) }))
        .route("/v1/devices/scan", post(|State(n): State<Node>| async move { n.localsend_scan().await.map(Json) }))
        .route("/v1/devices/favorite", post(|State(n): State<Node>, Json(b): Json<AutoAcceptArg>| async move { n.device_favorite(&b.name, b.on).await.map(Json) }))
        .route("/v1/devices/remove", post(|State(n): State<Node>, Json(b): Json<NameArg>| async move { n.device_remove(&b.name).await.map(Json) }))
        .route("/v1/devices/add-address", post(|State(n): State<Node>, Json(b): Json<AddAddressDto>| async move { n.device_add_address(b).await.map(Json) }))
        .route("/v1/doctor", get(|State(n): State<Node>| async move { n.doctor().await.map(Json) }))
        .route("/v1/rescan", post(|State(n): State<Node>, b: Option<Json<RescanDto>>| async move { n.rescan(b.map(|Json(b)| b).unwrap_or_default()).await.map(|_| Json(Empty {})) }))
        .route("/v1/events", get(events))
        .route("/v1/events/recent", get(|State(n): State<Node>| async move { Json(n.recent_events()) }))
        .route("/v1/restore", post(|State(n): State<Node>, Json(b): Json<RestoreDto>| async move { n.restore(b).await.map(Json) }))
        .route("/v1/rewind", post(|State(n): State<Node>, Json(b): Json<RewindReqDto>| async move { n.rewind(b).await.map(Json) }))
        .route("/v1/conflicts", post(|State(n): State<Node>, Json(b): Json<ConflictsQuery>| async move { n.conflicts(b).await.map(Json) }))
        .route("/v1/resolve", post(|State(n): State<Node>, Json(b): Json<ResolveDto>| async move { n.resolve(b).await.map(Json) }))
        .route("/v1/shares/policy", post(|State(n): State<Node>, Json(b): Json<SharePolicyDto>| async move { n.share_policy(b).await.map(Json) }))
        .route("/v1/shares/override", post(|State(n): State<Node>, Json(b): Json<NameArg>| async move { n.share_override(&b.name).await.map(Json) }))
        .route("/v1/shares/revert", post(|State(n): State<Node>, Json(b): Json<NameArg>| async move { n.share_revert(&b.name).await.map(Json) }))
        .route("/v1/shares/ack", post(|State(n): State<Node>, Json(b): Json<NameArg>| async move { n.share_ack(&b.name).await.map(Json) }))
        .route("/v1/prune", post(|State(n): State<Node>| async move { n.prune_versions(None).await.map(Json) }))
        .route("/v1/pause", post(|State(n): State<Node>| async move { n.set_paused(true).await.map(|_| Json(Empty {})) }))
        .route("/v1/resume", post(|State(n): State<Node>| async move { n.set_paused(false).await.map(|_| Json(Empty {})) }))
        .route("/v1/first-run", post(|State(n): State<Node>, Json(b): Json<crate::settings::FirstRunDto>| async move { n.first_run(b).await.map(Json) }))
        .route("/v1/settings", get(|State(n): State<Node>| async move { n.settings().await.map(Json) }).post(|State(n): State<Node>, Json(b): Json<crate::settings::SettingsUpdateDto>| async move { n.save_settings(b).await.map(Json) }))
        .with_state(node)
}

/// `?since=N`: replay the kept events numbered after N before the live ones.
#[derive(Deserialize)]
pub struct SinceQuery {
    pub since: Option<u64>,
}

/// A live stream of events, one JSON object per line (the event's fields with `seq` and
/// `at_ms`), after the kept ones numbered past `since` if asked.
async fn events(State(n): State<Node>, Query(q): Query<SinceQuery>) -> Response {
    let (backlog, sub) = match q.since {
        Some(since) => n.events_since(since),
        None => (Vec::new(), n.subscribe()),
    };
    let line = |s: &Stamped| {
        let mut line = serde_json::to_vec(s).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::io::Error>(bytes::Bytes::from(line))
    };
    let backlog = futures::stream::iter(backlog.iter().map(line).collect::<Vec<_>>());
    let live = futures::stream::unfold(sub, move |mut sub| async move {
        let s = sub.next().await?;
        Some((line(&s), sub))
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(backlog.chain(live)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

pub(crate) async fn serve(node: Node) -> Result<(), ApiError> {
    let path = node.inner.cfg.socket_path();
    if path.exists() {
        // A live node answers; a stale socket from a crash does not and is replaced.
        if tokio::net::UnixStream::connect(&path).await.is_ok() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("another Ferry node is already running with home {}", node.home().display()),
            ));
        }
        std::fs::remove_file(&path).map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
    }
    let listener = tokio::net::UnixListener::bind(&path)
        .map_err(|e| ApiError::internal(format!("cannot bind control socket {}: {e}", path.display())))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
    let mut stop = node.inner.stop.subscribe();
    axum::serve(listener, router(node.clone()))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
        .map_err(|e| ApiError::internal(format!("control API: {e}")))
}

impl Node {
    /// Serves the control API on the home's Unix socket until shutdown.
    pub async fn serve_control(&self) -> Result<(), ApiError> {
        crate::control::serve(self.clone()).await
    }
}
