//! Helpers of the one-shot send tests (tests/tests/send.rs, send_resume.rs): two paired nodes,
//! sending, and reading a transfer's state on either side.

use std::path::{Path, PathBuf};

use ferry_node::api::{PendingDto, SendDto, TransferDto};

use crate::*;

pub fn inbox(n: &TestNode) -> PathBuf {
    n.home.join("Inbox")
}

pub async fn send(from: &TestNode, to: &TestNode, paths: &[&Path]) -> TransferDto {
    from.node
        .send(SendDto { pin: None, device: to.id(), paths: paths.iter().map(|p| p.display().to_string()).collect() })
        .await
        .expect("send")
}

pub async fn transfer(n: &TestNode, id: &str) -> Option<TransferDto> {
    n.node.transfers().await.unwrap().into_iter().find(|t| t.id == id)
}

pub async fn state(n: &TestNode, id: &str) -> String {
    transfer(n, id).await.map(|t| t.state).unwrap_or_default()
}

pub async fn send_prompt(n: &TestNode, id: &str) -> PendingDto {
    wait_some(&[n], "send prompt", || {
        let n = n.node.clone();
        let id = id.to_string();
        async move {
            n.pending().await.unwrap().into_iter().find(|p| p.kind == "send" && p.transfer.as_deref() == Some(&id))
        }
    })
    .await
}

pub async fn wait_state(a: &TestNode, b: &TestNode, id: &str, want: &str) {
    wait_for(&[a, b], &format!("{want} on both sides"), || async {
        state(a, id).await == want && state(b, id).await == want
    })
    .await;
}

/// Every name under `dir` (recursively), to show nothing else was left there.
pub fn all_names(dir: &Path) -> Vec<String> {
    tree(dir).keys().cloned().collect()
}

pub async fn two_nodes() -> (TestNode, TestNode) {
    let a = TestNode::start("alpha").await;
    let b = TestNode::start("beta").await;
    pair(&a, &b).await;
    (a, b)
}
