//! A hand-driven peer for the safety tests: a bare `ferry_net::Endpoint` with a fresh identity
//! that speaks the wire protocol by hand, so it can send what a real node never would (hostile
//! paths patched into an encoded record, oversized headers, blocks that do not match their
//! hash), and the helpers those tests share.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ferry_net::{Endpoint, Identity, PeerConn, read_frame, write_frame};
use ferry_node::Event;
use ferry_proto::wire::{self, ErrorCode, Hello, Message, PROTOCOL_VERSION};
use ferry_proto::{ChunkHash, ChunkInfo, DeviceId, FileKind, FileRecord, RelPath, Seq, ShareId, VersionVector};

use crate::*;

/// The epoch the rogue claims for its index.
pub const EPOCH: u64 = 77;
pub const MTIME: i64 = 1_700_000_000_000_000_000;

/// A hand-driven peer. It answers the requests a node sends it (cluster config, index
/// updates, block requests) from its own tables, and records what it was asked.
pub struct Rogue {
    pub ep: Endpoint,
    pub id: DeviceId,
    /// What to answer to a block request, by path (every file here is one chunk).
    pub blocks: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    /// Paths the node asked blocks of, in order.
    pub block_requests: Arc<Mutex<Vec<String>>>,
    /// Paths of every record the node sent us in its index.
    pub index_seen: Arc<Mutex<Vec<String>>>,
    /// Every record the node sent us with its chunk list, and the paths of those it sent
    /// without (a reference in an `IndexUpdateCompact`).
    pub index_whole: Arc<Mutex<Vec<FileRecord>>>,
    pub index_by_ref: Arc<Mutex<Vec<String>>>,
    /// Answer compact updates with "not found" (the node must send them again whole), and
    /// how many were answered so.
    pub refuse_compact: Arc<std::sync::atomic::AtomicBool>,
    pub compact_refused: Arc<std::sync::atomic::AtomicUsize>,
    pub seq: std::sync::atomic::AtomicU64,
}

// A rogue binds a socket: a `Default` that does IO would surprise.
#[allow(clippy::new_without_default)]
impl Rogue {
    pub fn new() -> Rogue {
        let ident = Identity::generate().unwrap();
        let ep = Endpoint::bind(&ident, "127.0.0.1:0".parse().unwrap()).unwrap();
        Rogue {
            id: ep.device_id(),
            ep,
            blocks: Default::default(),
            block_requests: Default::default(),
            index_seen: Default::default(),
            index_whole: Default::default(),
            index_by_ref: Default::default(),
            refuse_compact: Default::default(),
            compact_refused: Default::default(),
            seq: 1.into(),
        }
    }

    pub fn id_str(&self) -> String {
        self.id.to_string()
    }

    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    pub fn serve_block(&self, path: &str, data: &[u8]) {
        self.blocks.lock().unwrap().insert(path.to_string(), data.to_vec());
    }

    pub fn asked_for(&self, path: &str) -> bool {
        self.block_requests.lock().unwrap().iter().any(|p| p == path)
    }

    /// Dials `n`, exchanges Hellos and starts answering the node's requests.
    pub async fn connect(&self, n: &TestNode) -> PeerConn {
        let conn = self.ep.connect(n.node.listen_addr(), Some(n.node.device_id())).await.expect("rogue dials");
        let hello = Hello { protocol: PROTOCOL_VERSION, name: "rogue".into(), owner: "mallory".into() };
        let theirs = conn.handshake(&hello).await.expect("hello exchange");
        assert_eq!(theirs.name, n.name);
        self.answer_requests(conn.clone());
        conn
    }

    pub fn answer_requests(&self, conn: PeerConn) {
        let blocks = self.blocks.clone();
        let asked = self.block_requests.clone();
        let seen = self.index_seen.clone();
        let (whole, by_ref) = (self.index_whole.clone(), self.index_by_ref.clone());
        let (refuse, refused) = (self.refuse_compact.clone(), self.compact_refused.clone());
        tokio::spawn(async move {
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                let (blocks, asked, seen) = (blocks.clone(), asked.clone(), seen.clone());
                let (whole, by_ref) = (whole.clone(), by_ref.clone());
                let (refuse, refused) = (refuse.clone(), refused.clone());
                tokio::spawn(async move {
                    let Ok(msg) = read_frame(&mut recv).await else { return };
                    let reply = match msg {
                        Message::ClusterConfig { .. } => Message::Ack,
                        Message::IndexUpdate { records, .. } => {
                            seen.lock().unwrap().extend(records.iter().map(|r| r.path.to_string()));
                            whole.lock().unwrap().extend(records);
                            Message::Ack
                        }
                        Message::IndexUpdateCompact { records, chunks_from, .. } => {
                            if refuse.load(std::sync::atomic::Ordering::SeqCst) {
                                refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                Message::Error { code: ErrorCode::NotFound, message: "not here".into() }
                            } else {
                                seen.lock().unwrap().extend(records.iter().map(|r| r.path.to_string()));
                                let refs: Vec<usize> = chunks_from.iter().map(|c| c.record as usize).collect();
                                let (r, w): (Vec<_>, Vec<_>) =
                                    records.into_iter().enumerate().partition(|(i, _)| refs.contains(i));
                                by_ref.lock().unwrap().extend(r.into_iter().map(|(_, r)| r.path.to_string()));
                                whole.lock().unwrap().extend(w.into_iter().map(|(_, r)| r));
                                Message::Ack
                            }
                        }
                        Message::BlockRequest { path, .. } => {
                            asked.lock().unwrap().push(path.to_string());
                            match blocks.lock().unwrap().get(path.as_str()) {
                                Some(data) => Message::Block { data: data.clone() },
                                None => Message::Error { code: ErrorCode::NotFound, message: "no".into() },
                            }
                        }
                        Message::Ping { nonce } => Message::Pong { nonce },
                        _ => Message::Error { code: ErrorCode::BadRequest, message: "?".into() },
                    };
                    let _ = write_frame(&mut send, &reply).await;
                    let _ = send.finish();
                });
            }
        });
    }

    /// Connects and gets paired with `n` the way a real device asks: PairRequest, the user
    /// accepts the prompt on `n`.
    pub async fn pair_with(&self, n: &TestNode) -> PeerConn {
        let conn = self.connect(n).await;
        let c = conn.clone();
        let req = tokio::spawn(async move {
            c.request(&Message::PairRequest { name: "rogue".into(), owner: "mallory".into() }, WAIT).await
        });
        let me = self.id_str();
        let prompt = wait_some(&[n], "pair prompt for the rogue", || {
            let (node, me) = (n.node.clone(), me.clone());
            async move { node.pending().await.unwrap().into_iter().find(|p| p.kind == "pair" && p.device == me) }
        })
        .await;
        assert_eq!(prompt.code.as_deref(), Some(conn.pairing_code().unwrap().as_str()));
        n.node.accept(AcceptDto { id: prompt.id, path: None }).await.expect("accept pairing");
        let resp = req.await.unwrap().expect("pair response");
        assert!(matches!(resp, Message::PairResponse { accepted: true, .. }), "{resp:?}");
        wait_for(&[n], "rogue connected", || connected(n, &me)).await;
        conn
    }

    pub fn record(&self, path: &str, kind: FileKind, size: u64, hash: ChunkHash, chunks: Vec<ChunkInfo>) -> FileRecord {
        FileRecord {
            path: RelPath::new(path).unwrap(),
            kind,
            deleted: false,
            size,
            mtime_ns: MTIME,
            executable: false,
            version: VersionVector::new().bumped(self.id),
            seq: Seq(self.next_seq()),
            hash,
            chunks,
            modified_by: self.id,
        }
    }

    /// A one-chunk file record for `data` (no chunk at all when empty).
    pub fn file(&self, path: &str, data: &[u8]) -> FileRecord {
        let h = ChunkHash::of(data);
        let chunks = if data.is_empty() { vec![] } else { vec![ChunkInfo { hash: h, len: data.len() as u32 }] };
        self.record(path, FileKind::File, data.len() as u64, h, chunks)
    }

    pub fn dir(&self, path: &str) -> FileRecord {
        self.record(path, FileKind::Dir, 0, ChunkHash([0; 32]), vec![])
    }

    pub fn symlink(&self, path: &str, target: &str) -> FileRecord {
        let h = ChunkHash::of(target.as_bytes());
        self.record(path, FileKind::Symlink { target: target.into() }, target.len() as u64, h, vec![])
    }
}

/// Sends an index update the ordinary way and returns the reply.
pub async fn send_index(conn: &PeerConn, share: ShareId, records: Vec<FileRecord>) -> Message {
    conn.request(&Message::IndexUpdate { share, epoch: EPOCH, records }, WAIT).await.expect("index update answered")
}

/// The frame of an index update carrying `rec` under the path `hostile`, which the encoder
/// would never produce: the record is encoded under a placeholder of the same length, whose
/// bytes are then overwritten in the frame.
pub fn hostile_index_frame(share: ShareId, mut rec: FileRecord, hostile: &str) -> Vec<u8> {
    let n = hostile.len();
    let placeholder: String = (0..n).map(|i| if i == 0 { 'P' } else { 'q' }).collect();
    rec.path = RelPath::new(&placeholder).unwrap();
    let mut frame = wire::encode(&Message::IndexUpdate { share, epoch: EPOCH, records: vec![rec] }).unwrap();
    let hits: Vec<usize> =
        frame.windows(n).enumerate().filter(|(_, w)| *w == placeholder.as_bytes()).map(|(i, _)| i).collect();
    assert_eq!(hits.len(), 1, "placeholder must occur exactly once in the frame");
    frame[hits[0]..hits[0] + n].copy_from_slice(hostile.as_bytes());
    frame
}

/// Same trick for a block request naming `hostile`.
pub fn hostile_block_frame(share: ShareId, hostile: &str, len: u32, hash: ChunkHash) -> Vec<u8> {
    let n = hostile.len();
    let placeholder: String = (0..n).map(|i| if i == 0 { 'P' } else { 'q' }).collect();
    let msg = Message::BlockRequest { share, path: RelPath::new(&placeholder).unwrap(), offset: 0, len, hash };
    let mut frame = wire::encode(&msg).unwrap();
    let pos = frame.windows(n).position(|w| w == placeholder.as_bytes()).unwrap();
    frame[pos..pos + n].copy_from_slice(hostile.as_bytes());
    frame
}

/// Writes raw bytes on a new stream and reads one reply frame. `Err` when the node closed the
/// stream or the connection instead of answering. Bounded by `WAIT`.
pub async fn send_raw(conn: &PeerConn, bytes: &[u8]) -> Result<Message, String> {
    let exchange = async {
        let (mut send, mut recv) = conn.connection().open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(bytes).await.map_err(|e| e.to_string())?;
        let _ = send.finish();
        read_frame(&mut recv).await.map_err(|e| e.to_string())
    };
    tokio::time::timeout(WAIT, exchange).await.expect("the node neither answered nor closed within WAIT")
}

pub async fn closed_within_wait(conn: &PeerConn) -> String {
    tokio::time::timeout(WAIT, conn.closed()).await.expect("the node did not close the connection").to_string()
}

/// Events already emitted, without waiting.
pub fn drain(rx: &mut ferry_node::Subscription) -> Vec<Event> {
    use tokio::sync::broadcast::error::TryRecvError;
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) => out.push(e),
            Err(TryRecvError::Lagged(n)) => panic!("missed {n} events"),
            Err(_) => return out,
        }
    }
}

/// Names of every entry below `root` (including Ferry's temp files, excluding `.ferry`).
pub fn names(root: &Path) -> Vec<String> {
    tree(root).into_keys().collect()
}

pub async fn add_share(n: &TestNode, dir: &Path, mode: Option<&str>) -> ShareId {
    let s = n
        .node
        .share_add(ShareAddDto { path: dir.display().to_string(), label: None, mode: mode.map(String::from) })
        .await
        .expect("share add");
    s.id.parse().unwrap()
}

pub async fn share_idle(n: &TestNode) -> bool {
    n.node.status().await.unwrap().shares.iter().all(|s| s.state == "idle")
}

// ---------------------------------------------------------------------------------------------
