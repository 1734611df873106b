//! The window process's way to the node: the control socket of the running Ferry (the tray
//! process that hosts the node), exactly as the `ferry` CLI uses it. Errors cross as the
//! node's `{code, message}`; a host that does not answer is `unreachable`.

use std::path::{Path, PathBuf};

use ferry_node::client::{Client, ClientError, EventStream};
use ferry_node::{ApiError, ErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct Remote {
    client: Client,
    home: PathBuf,
}

fn api_err(e: ClientError) -> ApiError {
    match e {
        ClientError::Api(e) => e,
        other => ApiError::new(ErrorCode::Unreachable, format!("Ferry's background process does not answer: {other}")),
    }
}

impl Remote {
    pub fn new(home: &Path) -> Self {
        Remote { client: Client::new(home), home: home.to_path_buf() }
    }

    /// The node's home (the shell's own preferences live beside its files).
    pub fn home(&self) -> &Path {
        &self.home
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.client.get(path).await.map_err(api_err)
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ApiError> {
        self.client.post(path, body).await.map_err(api_err)
    }

    /// The live events (the window replays the kept ones through `recent_events`).
    pub async fn events(&self) -> Result<EventStream, ApiError> {
        self.client.events(None).await.map_err(api_err)
    }
}
