//! A client for a running node's control socket, used by the CLI and tests.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::ApiError;
use crate::config::socket_path;
use crate::event_log::Stamped;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no Ferry node is running for home {home} (start one with `ferry daemon`)")]
    NotRunning { home: PathBuf },
    #[error("{0}")]
    Api(ApiError),
    #[error("talking to the node failed: {0}")]
    Protocol(String),
}

#[derive(Clone)]
pub struct Client {
    home: PathBuf,
    socket: PathBuf,
}

impl Client {
    pub fn new(home: &Path) -> Self {
        Client { home: home.to_path_buf(), socket: socket_path(home) }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|_| ClientError::NotRunning { home: self.home.clone() })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .method(method)
            .uri(format!("http://ferry{path}"))
            .header("host", "ferry")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        sender.send_request(req).await.map_err(|e| ClientError::Protocol(e.to_string()))
    }

    async fn decode<T: DeserializeOwned>(resp: hyper::Response<Incoming>) -> Result<T, ClientError> {
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(|e| ClientError::Protocol(e.to_string()))?.to_bytes();
        if !status.is_success() {
            let err: ApiError = serde_json::from_slice(&bytes)
                .map_err(|_| ClientError::Protocol(format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes))))?;
            return Err(ClientError::Api(err));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(format!("bad answer: {e}")))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Self::decode(self.send("GET", path, None).await?).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        Self::decode(self.send("POST", path, Some(body)).await?).await
    }

    /// Subscribes to the live event stream; with `since`, the kept events numbered after it
    /// come first.
    pub async fn events(&self, since: Option<u64>) -> Result<EventStream, ClientError> {
        let path = match since {
            Some(n) => format!("/v1/events?since={n}"),
            None => "/v1/events".to_string(),
        };
        let resp = self.send("GET", &path, None).await?;
        if !resp.status().is_success() {
            return Err(ClientError::Protocol(format!("HTTP {}", resp.status())));
        }
        Ok(EventStream { body: resp.into_body(), buf: Vec::new() })
    }
}

pub struct EventStream {
    body: Incoming,
    buf: Vec<u8>,
}

impl EventStream {
    /// The next event, or None when the node went away.
    pub async fn next(&mut self) -> Option<Result<Stamped, ClientError>> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line[..i]).map_err(|e| ClientError::Protocol(e.to_string())));
            }
            match self.body.frame().await? {
                Ok(f) => {
                    if let Ok(data) = f.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Err(e) => return Some(Err(ClientError::Protocol(e.to_string()))),
            }
        }
    }
}
