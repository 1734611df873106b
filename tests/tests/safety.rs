//! Hostile input is refused and crashes leave no partial files.
//!
//! A "rogue" here is a bare `ferry_net::Endpoint` with a fresh identity that speaks the wire
//! protocol by hand: it can send frames a real node never would (hostile paths patched into
//! an encoded record, oversized headers, blocks that do not match their hash). Every "this
//! never happens" check is made after something that must happen later has happened (a legit
//! file arriving, a reply to a later request), never after a sleep.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ferry_e2e::*;
use ferry_net::{Endpoint, Identity, PeerConn, read_frame, write_frame};
use ferry_node::Event;
use ferry_node::api::{AcceptDto, InviteDto, ShareAddDto};
use ferry_proto::wire::{
    self, BlockRef, BlockReply, ChunksFrom, ErrorCode, Hello, MAX_BATCH_BLOCKS, Message, PROTOCOL_VERSION,
    ShareAnnounce,
};
use ferry_proto::{ChunkHash, ChunkInfo, DeviceId, FileKind, FileRecord, RelPath, Seq, ShareId, VersionVector};

/// The epoch the rogue claims for its index.
const EPOCH: u64 = 77;
const MTIME: i64 = 1_700_000_000_000_000_000;

/// A hand-driven peer. It answers the requests a node sends it (cluster config, index
/// updates, block requests) from its own tables, and records what it was asked.
struct Rogue {
    ep: Endpoint,
    id: DeviceId,
    /// What to answer to a block request, by path (every file here is one chunk).
    blocks: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    /// Paths the node asked blocks of, in order.
    block_requests: Arc<Mutex<Vec<String>>>,
    /// Paths of every record the node sent us in its index.
    index_seen: Arc<Mutex<Vec<String>>>,
    /// Every record the node sent us with its chunk list, and the paths of those it sent
    /// without (a reference in an `IndexUpdateCompact`).
    index_whole: Arc<Mutex<Vec<FileRecord>>>,
    index_by_ref: Arc<Mutex<Vec<String>>>,
    /// Answer compact updates with "not found" (the node must send them again whole), and
    /// how many were answered so.
    refuse_compact: Arc<std::sync::atomic::AtomicBool>,
    compact_refused: Arc<std::sync::atomic::AtomicUsize>,
    seq: std::sync::atomic::AtomicU64,
}

impl Rogue {
    fn new() -> Rogue {
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

    fn id_str(&self) -> String {
        self.id.to_string()
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn serve_block(&self, path: &str, data: &[u8]) {
        self.blocks.lock().unwrap().insert(path.to_string(), data.to_vec());
    }

    fn asked_for(&self, path: &str) -> bool {
        self.block_requests.lock().unwrap().iter().any(|p| p == path)
    }

    /// Dials `n`, exchanges Hellos and starts answering the node's requests.
    async fn connect(&self, n: &TestNode) -> PeerConn {
        let conn = self.ep.connect(n.node.listen_addr(), Some(n.node.device_id())).await.expect("rogue dials");
        let hello = Hello { protocol: PROTOCOL_VERSION, name: "rogue".into(), owner: "mallory".into() };
        let theirs = conn.handshake(&hello).await.expect("hello exchange");
        assert_eq!(theirs.name, n.name);
        self.answer_requests(conn.clone());
        conn
    }

    fn answer_requests(&self, conn: PeerConn) {
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
    async fn pair_with(&self, n: &TestNode) -> PeerConn {
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

    fn record(&self, path: &str, kind: FileKind, size: u64, hash: ChunkHash, chunks: Vec<ChunkInfo>) -> FileRecord {
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
    fn file(&self, path: &str, data: &[u8]) -> FileRecord {
        let h = ChunkHash::of(data);
        let chunks = if data.is_empty() { vec![] } else { vec![ChunkInfo { hash: h, len: data.len() as u32 }] };
        self.record(path, FileKind::File, data.len() as u64, h, chunks)
    }

    fn dir(&self, path: &str) -> FileRecord {
        self.record(path, FileKind::Dir, 0, ChunkHash([0; 32]), vec![])
    }

    fn symlink(&self, path: &str, target: &str) -> FileRecord {
        let h = ChunkHash::of(target.as_bytes());
        self.record(path, FileKind::Symlink { target: target.into() }, target.len() as u64, h, vec![])
    }
}

/// Sends an index update the ordinary way and returns the reply.
async fn send_index(conn: &PeerConn, share: ShareId, records: Vec<FileRecord>) -> Message {
    conn.request(&Message::IndexUpdate { share, epoch: EPOCH, records }, WAIT).await.expect("index update answered")
}

/// The frame of an index update carrying `rec` under the path `hostile`, which the encoder
/// would never produce: the record is encoded under a placeholder of the same length, whose
/// bytes are then overwritten in the frame.
fn hostile_index_frame(share: ShareId, mut rec: FileRecord, hostile: &str) -> Vec<u8> {
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
fn hostile_block_frame(share: ShareId, hostile: &str, len: u32, hash: ChunkHash) -> Vec<u8> {
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
async fn send_raw(conn: &PeerConn, bytes: &[u8]) -> Result<Message, String> {
    let exchange = async {
        let (mut send, mut recv) = conn.connection().open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(bytes).await.map_err(|e| e.to_string())?;
        let _ = send.finish();
        read_frame(&mut recv).await.map_err(|e| e.to_string())
    };
    tokio::time::timeout(WAIT, exchange).await.expect("the node neither answered nor closed within WAIT")
}

async fn closed_within_wait(conn: &PeerConn) -> String {
    tokio::time::timeout(WAIT, conn.closed()).await.expect("the node did not close the connection").to_string()
}

/// Events already emitted, without waiting.
fn drain(rx: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<Event> {
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
fn names(root: &Path) -> Vec<String> {
    tree(root).into_keys().collect()
}

async fn add_share(n: &TestNode, dir: &Path, mode: Option<&str>) -> ShareId {
    let s = n
        .node
        .share_add(ShareAddDto { path: dir.display().to_string(), label: None, mode: mode.map(String::from) })
        .await
        .expect("share add");
    s.id.parse().unwrap()
}

async fn share_idle(n: &TestNode) -> bool {
    n.node.status().await.unwrap().shares.iter().all(|s| s.state == "idle")
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unpaired_device_can_only_ask_to_pair() {
    let n = TestNode::start("node").await;
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("secret.txt"), b"for paired eyes only").unwrap();
    let share = add_share(&n, dir.path(), None).await;
    wait_for(&[&n], "share scanned", || async { n.node.status().await.unwrap().shares[0].files == 1 }).await;
    let before = tree(dir.path());

    let rogue = Rogue::new();
    let data = b"0123456789";
    rogue.serve_block("evil.txt", data);
    let secret = b"for paired eyes only";
    let requests = vec![
        ("IndexUpdate", Message::IndexUpdate { share, epoch: EPOCH, records: vec![rogue.file("evil.txt", data)] }),
        (
            "BlockRequest",
            Message::BlockRequest {
                share,
                path: RelPath::new("secret.txt").unwrap(),
                offset: 0,
                len: secret.len() as u32,
                hash: ChunkHash::of(secret),
            },
        ),
        (
            "ClusterConfig",
            Message::ClusterConfig {
                shares: vec![ShareAnnounce {
                    share: ShareId([9; 10]),
                    label: "take this".into(),
                    my_epoch: EPOCH,
                    your_epoch: 0,
                    your_seq: 0,
                }],
            },
        ),
        ("Ping", Message::Ping { nonce: 5 }),
        ("PairResponse", Message::PairResponse { accepted: true, message: "we are friends now".into() }),
    ];
    for (what, msg) in requests {
        // Each refusal closes the connection, so each request gets a fresh one.
        let conn = rogue.connect(&n).await;
        match conn.request(&msg, WAIT).await {
            Ok(Message::Error { code: ErrorCode::NotPaired, .. }) => {}
            Err(_) => {}
            Ok(other) => panic!("unpaired {what} was answered with {other:?}"),
        }
        closed_within_wait(&conn).await;
    }

    // A request after the pairing request on the same connection is not served either: the
    // node only ever reads the one pairing request from an unpaired device.
    let conn = rogue.connect(&n).await;
    let c = conn.clone();
    let pair_req = tokio::spawn(async move {
        c.request(&Message::PairRequest { name: "rogue".into(), owner: "m".into() }, WAIT).await
    });
    let me = rogue.id_str();
    let prompt = wait_some(&[&n], "pair prompt", || {
        let (node, me) = (n.node.clone(), me.clone());
        async move { node.pending().await.unwrap().into_iter().find(|p| p.kind == "pair" && p.device == me) }
    })
    .await;
    let c = conn.clone();
    let sneaky_msg = Message::IndexUpdate { share, epoch: EPOCH, records: vec![rogue.file("sneaky.txt", data)] };
    let sneaky = tokio::spawn(async move { c.request(&sneaky_msg, WAIT).await });
    n.node.reject(prompt.id).await.expect("reject");
    let resp = pair_req.await.unwrap();
    assert!(
        matches!(resp, Ok(Message::PairResponse { accepted: false, .. }) | Err(_)),
        "declined pairing answered {resp:?}"
    );
    closed_within_wait(&conn).await;
    let sneaky = sneaky.await.unwrap();
    assert!(!matches!(sneaky, Ok(Message::Ack)), "an index update was accepted during pairing: {sneaky:?}");

    // Something that must come after: a real device pairs with the node.
    let b = TestNode::start("beta").await;
    pair(&b, &n).await;
    let devices = n.node.devices().await.unwrap();
    assert!(!devices.iter().any(|d| d.id == me && d.paired), "rogue listed as paired: {devices:?}");
    assert!(!devices.iter().any(|d| d.id == me && d.connected));
    let pending = n.node.pending().await.unwrap();
    assert!(pending.is_empty(), "an unpaired device left a prompt: {pending:?}");
    assert_eq!(tree(dir.path()), before, "an unpaired device changed the share");
    assert!(rogue.block_requests.lock().unwrap().is_empty(), "the node asked an unpaired device for blocks");
    assert_eq!(n.node.share_list().await.unwrap().len(), 1);
    n.node.status().await.expect("node still runs");

    n.node.shutdown().await;
    b.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paired_peer_cannot_write_outside_the_share() {
    let n = TestNode::start("node").await;
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("share");
    let outside = base.path().join("outside");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("keep.txt"), b"outside content").unwrap();
    let tag: u32 = rand::random();

    let rogue = Rogue::new();
    let conn = rogue.pair_with(&n).await;
    let share = add_share(&n, &root, None).await;
    n.node.share_invite(InviteDto { share: share.to_string(), device: rogue.id_str() }).await.expect("invite");
    // Announce the share back so the node sends us its index (we watch what it indexes).
    let ann = ShareAnnounce { share, label: "s".into(), my_epoch: EPOCH, your_epoch: 0, your_seq: 0 };
    let r = conn.request(&Message::ClusterConfig { shares: vec![ann] }, WAIT).await.unwrap();
    assert_eq!(r, Message::Ack);
    let mut events = n.node.subscribe();

    // 1. A block that does not match its hash is never written.
    let right = b"0123456789";
    let wrong = b"ABCDEFGHIJ";
    rogue.serve_block("evil.txt", wrong);
    assert_eq!(send_index(&conn, share, vec![rogue.file("evil.txt", right)]).await, Message::Ack);
    wait_for(&[&n], "node asks for evil.txt's block", || async { rogue.asked_for("evil.txt") }).await;
    // A record whose chunks are right but whose whole-file hash lies is not applied either.
    let liar_data = b"chunks are fine";
    rogue.serve_block("liar.txt", liar_data);
    let mut liar = rogue.file("liar.txt", liar_data);
    liar.hash = ChunkHash::of(b"something else");
    assert_eq!(send_index(&conn, share, vec![liar]).await, Message::Ack);
    wait_for(&[&n], "node asks for liar.txt's block", || async { rogue.asked_for("liar.txt") }).await;

    // 2. Records whose chunks do not add up to their size, or have an empty chunk, are refused.
    let ten = b"abcdefghij";
    rogue.serve_block("badsize.txt", ten);
    rogue.serve_block("zerochunk.txt", ten);
    let mut badsize = rogue.file("badsize.txt", ten);
    badsize.size = 100;
    let mut zerochunk = rogue.file("zerochunk.txt", ten);
    zerochunk.chunks.push(ChunkInfo { hash: ChunkHash::of(b""), len: 0 });
    let mut short = rogue.file("short.txt", ten);
    short.size = 4;
    rogue.serve_block("short.txt", ten);
    assert_eq!(send_index(&conn, share, vec![badsize, zerochunk, short]).await, Message::Ack);
    let refused = drain(&mut events)
        .into_iter()
        .any(|e| matches!(&e, Event::Error { message, .. } if message.contains("refused 3 malformed records")));
    assert!(refused, "the node did not report the malformed records");

    // A legit file goes through: the pipeline works and ran after the records above.
    let good = b"good content";
    rogue.serve_block("good.txt", good);
    assert_eq!(send_index(&conn, share, vec![rogue.file("good.txt", good)]).await, Message::Ack);
    wait_for(&[&n], "good.txt on the node", || async { fs::read(root.join("good.txt")).ok().as_deref() == Some(good) })
        .await;
    for p in ["evil.txt", "liar.txt", "badsize.txt", "zerochunk.txt", "short.txt"] {
        assert!(fs::symlink_metadata(root.join(p)).is_err(), "{p} was written");
    }
    for p in ["badsize.txt", "zerochunk.txt", "short.txt"] {
        assert!(!rogue.asked_for(p), "the node fetched blocks of the malformed record {p}");
    }
    let wrong_hash = format!("file:{}", blake3::hash(wrong).to_hex());
    assert!(
        tree(&root).values().all(|v| !v.starts_with(&wrong_hash)),
        "unverified bytes reached the disk: {:?}",
        tree(&root)
    );

    // 3. A symlink to a folder outside the share, then a file "through" it.
    let target = outside.display().to_string();
    assert_eq!(send_index(&conn, share, vec![rogue.symlink("lnk", &target)]).await, Message::Ack);
    wait_for(&[&n], "the link exists", || async { fs::read_link(root.join("lnk")).ok().is_some_and(|t| t == outside) })
        .await;
    rogue.serve_block("lnk/pwned.txt", b"pwned");
    rogue.serve_block("lnk/sub/pwned.txt", b"pwned");
    let recs =
        vec![rogue.file("lnk/pwned.txt", b"pwned"), rogue.dir("lnk/newdir"), rogue.file("lnk/sub/pwned.txt", b"pwned")];
    assert_eq!(send_index(&conn, share, recs).await, Message::Ack);
    // A full rescan now: if the scanner followed the link, it would index the outside files
    // before good2.txt (which is committed after it) and send them to us.
    n.node.rescan_all();
    let good2 = b"good two";
    rogue.serve_block("good2.txt", good2);
    assert_eq!(send_index(&conn, share, vec![rogue.file("good2.txt", good2)]).await, Message::Ack);
    wait_for(&[&n], "good2.txt on the node", || async {
        fs::read(root.join("good2.txt")).ok().as_deref() == Some(good2)
    })
    .await;
    wait_for(&[&n], "good2.txt in the node's index sent to us", || async {
        rogue.index_seen.lock().unwrap().iter().any(|p| p == "good2.txt")
    })
    .await;
    assert_eq!(names(&outside), vec!["keep.txt".to_string()], "something was written through the link");
    let seen = rogue.index_seen.lock().unwrap().clone();
    assert!(!seen.iter().any(|p| p.starts_with("lnk/")), "the node indexed through a symlink: {seen:?}");

    // 4. Hostile paths, which the encoder refuses to produce, patched into the frame.
    let hostile: Vec<(String, FileRecord)> = vec![
        (format!("../escaped-{tag}.txt"), rogue.file("x", b"")),
        (format!("a/../../escaped2-{tag}.txt"), rogue.file("x", b"")),
        (format!("../escaped-dir-{tag}"), rogue.dir("x")),
        (format!("{}/abs-{tag}.txt", outside.display()), rogue.file("x", b"")),
        (format!("{}/abs-dir-{tag}", outside.display()), rogue.dir("x")),
        (".ferry/versions/planted.txt".into(), rogue.file("x", b"")),
        (".ferry/planted-dir".into(), rogue.dir("x")),
        (".ferry".into(), rogue.symlink("x", &target)),
        (".ferry-tmp-planted".into(), rogue.file("x", b"")),
        ("sub/.ferry-tmp-planted".into(), rogue.file("x", b"")),
        (format!("..\\escaped3-{tag}.txt"), rogue.file("x", b"")),
        ("a\0b".into(), rogue.file("x", b"")),
        ("a//b".into(), rogue.file("x", b"")),
        ("./dot".into(), rogue.file("x", b"")),
    ];
    let mut conn = conn;
    for (path, rec) in hostile {
        let frame = hostile_index_frame(share, rec, &path);
        match send_raw(&conn, &frame).await {
            Ok(Message::Error { .. }) => {}
            // Refused by closing: wait for the close (the stream may be reset first), then
            // come back with a fresh connection.
            Err(_) => {
                closed_within_wait(&conn).await;
                conn = rogue.connect(&n).await;
            }
            Ok(other) => panic!("record for {path:?} was answered with {other:?}"),
        }
    }
    let good3 = b"good three";
    rogue.serve_block("good3.txt", good3);
    assert_eq!(send_index(&conn, share, vec![rogue.file("good3.txt", good3)]).await, Message::Ack);
    wait_for(&[&n], "good3.txt on the node", || async {
        fs::read(root.join("good3.txt")).ok().as_deref() == Some(good3)
    })
    .await;
    assert_eq!(names(&outside), vec!["keep.txt".to_string()], "something was written outside the share");
    let mut around: Vec<String> = names(base.path()).into_iter().filter(|p| !p.starts_with("share/")).collect();
    around.sort();
    assert_eq!(around, ["outside", "outside/keep.txt", "share"], "something appeared beside the share");
    let inside = names(&root);
    assert!(
        inside.iter().all(|p| !p.contains(".ferry-tmp-planted") && !p.contains("escaped") && p != "a"),
        "hostile entries inside the share: {inside:?}"
    );
    for p in [".ferry/versions/planted.txt", ".ferry/planted-dir"] {
        assert!(fs::symlink_metadata(root.join(p)).is_err(), "{p} was written");
    }
    assert!(fs::symlink_metadata(root.join(".ferry")).unwrap().is_dir(), ".ferry was replaced");
    assert!(!root.join("evil.txt").exists());
    let status = n.node.status().await.expect("node still runs");
    assert_eq!(status.shares.len(), 1);

    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paired_peer_cannot_read_outside_its_shares() {
    let n = TestNode::start("node").await;
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("share");
    let private = base.path().join("private");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&private).unwrap();
    let secret = b"outside the share";
    fs::write(base.path().join("secret.txt"), secret).unwrap();
    let mine = b"private share content";
    fs::write(private.join("private.txt"), mine).unwrap();
    let shared = b"shared content";
    fs::write(root.join("shared.txt"), shared).unwrap();

    let rogue = Rogue::new();
    let conn = rogue.pair_with(&n).await;
    let share = add_share(&n, &root, None).await;
    let private_share = add_share(&n, &private, None).await;
    n.node.share_invite(InviteDto { share: share.to_string(), device: rogue.id_str() }).await.expect("invite");
    wait_for(&[&n], "both shares scanned", || async {
        let st = n.node.status().await.unwrap();
        st.shares.len() == 2 && st.shares.iter().all(|s| s.files == 1 && s.state == "idle")
    })
    .await;

    let block = |share: ShareId, path: &str, offset: u64, len: u32, hash: ChunkHash| Message::BlockRequest {
        share,
        path: RelPath::new(path).unwrap(),
        offset,
        len,
        hash,
    };
    // Sanity: a member may read the shared file.
    let r = conn.request(&block(share, "shared.txt", 0, shared.len() as u32, ChunkHash::of(shared)), WAIT).await;
    assert_eq!(r.unwrap(), Message::Block { data: shared.to_vec() });

    let not_block = |what: &str, r: Result<Message, String>| {
        assert!(!matches!(r, Ok(Message::Block { .. })), "{what} was served: {r:?}");
    };
    let req = |m: Message| {
        let c = conn.clone();
        async move { c.request(&m, WAIT).await.map_err(|e| e.to_string()) }
    };
    // A share it is not a member of.
    let r = req(block(private_share, "private.txt", 0, mine.len() as u32, ChunkHash::of(mine))).await;
    assert!(matches!(r, Ok(Message::Error { code: ErrorCode::Refused, .. })), "{r:?}");
    // A file that is not indexed (exists outside only) and reads beyond the end.
    not_block("unindexed", req(block(share, "secret.txt", 0, secret.len() as u32, ChunkHash::of(secret))).await);
    let r = req(block(share, "shared.txt", 4, shared.len() as u32, ChunkHash::of(shared))).await;
    assert!(matches!(r, Ok(Message::Error { code: ErrorCode::BadRequest, .. })), "{r:?}");
    let r = req(block(share, "shared.txt", u64::MAX - 1, 4, ChunkHash::of(shared))).await;
    assert!(matches!(r, Ok(Message::Error { code: ErrorCode::BadRequest, .. })), "{r:?}");
    let r = req(block(share, "shared.txt", 0, 0, ChunkHash::of(b""))).await;
    assert!(matches!(r, Ok(Message::Error { code: ErrorCode::BadRequest, .. })), "{r:?}");
    let r = req(block(share, "shared.txt", 0, u32::MAX, ChunkHash::of(shared))).await;
    assert!(matches!(r, Ok(Message::Error { code: ErrorCode::BadRequest, .. })), "{r:?}");

    // Through a symlink the rogue planted in the share.
    let target = base.path().display().to_string();
    assert_eq!(send_index(&conn, share, vec![rogue.symlink("lnk", &target)]).await, Message::Ack);
    wait_for(&[&n], "the link exists", || async { fs::read_link(root.join("lnk")).is_ok() }).await;
    let r = req(block(share, "lnk/secret.txt", 0, secret.len() as u32, ChunkHash::of(secret))).await;
    not_block("lnk/secret.txt", r);
    let r = req(block(share, "lnk", 0, 1, ChunkHash::of(b"/"))).await;
    not_block("the link itself", r);

    // Hostile paths patched into the request frame.
    let mut conn = conn;
    for path in
        ["../secret.txt".to_string(), format!("{}/secret.txt", base.path().display()), "../private/private.txt".into()]
    {
        let h = if path.contains("private") { ChunkHash::of(mine) } else { ChunkHash::of(secret) };
        let frame = hostile_block_frame(share, &path, secret.len().min(mine.len()) as u32, h);
        let r = send_raw(&conn, &frame).await;
        let refused_by_closing = r.is_err();
        not_block(&path, r);
        if refused_by_closing {
            closed_within_wait(&conn).await;
            conn = rogue.connect(&n).await;
        }
    }
    // Still serves the legit request afterwards.
    let r = conn.request(&block(share, "shared.txt", 0, shared.len() as u32, ChunkHash::of(shared)), WAIT).await;
    assert_eq!(r.unwrap(), Message::Block { data: shared.to_vec() });

    // Batched requests get the same checks, block by block.
    let req = |m: Message| {
        let c = conn.clone();
        async move { c.request(&m, WAIT).await.map_err(|e| e.to_string()) }
    };
    let bref = |path: &str, offset: u64, len: u32, hash: ChunkHash| BlockRef {
        path: RelPath::new(path).unwrap(),
        offset,
        len,
        hash,
    };
    let good = bref("shared.txt", 0, shared.len() as u32, ChunkHash::of(shared));
    let r = req(Message::BlocksRequest {
        share,
        blocks: vec![
            good.clone(),
            bref("secret.txt", 0, secret.len() as u32, ChunkHash::of(secret)),
            bref("lnk/secret.txt", 0, secret.len() as u32, ChunkHash::of(secret)),
            bref("lnk", 0, 1, ChunkHash::of(b"/")),
            bref("shared.txt", 4, shared.len() as u32, ChunkHash::of(shared)),
            bref("shared.txt", u64::MAX - 1, 4, ChunkHash::of(shared)),
            bref("shared.txt", 0, shared.len() as u32, ChunkHash::of(b"something else")),
        ],
    })
    .await;
    let Ok(Message::Blocks { blocks }) = r else { panic!("batch answer: {r:?}") };
    assert_eq!(blocks.len(), 7);
    assert_eq!(blocks[0], BlockReply::Data(shared.to_vec()));
    for (i, b) in blocks.iter().enumerate().skip(1) {
        assert!(matches!(b, BlockReply::Missing(_)), "block {i} was served: {b:?}");
    }
    // Not a member, too many blocks, too many bytes, a zero length: the whole batch is refused.
    let r = req(Message::BlocksRequest {
        share: private_share,
        blocks: vec![bref("private.txt", 0, mine.len() as u32, ChunkHash::of(mine))],
    })
    .await;
    assert!(matches!(r, Ok(Message::Error { code: ErrorCode::Refused, .. })), "{r:?}");
    let r = req(Message::BlocksRequest { share, blocks: vec![good.clone(); MAX_BATCH_BLOCKS + 1] }).await;
    assert!(matches!(r, Ok(Message::Error { code: ErrorCode::BadRequest, .. })), "{r:?}");
    let r =
        req(Message::BlocksRequest { share, blocks: vec![bref("shared.txt", 0, 4 << 20, ChunkHash::of(shared)); 2] })
            .await;
    assert!(matches!(r, Ok(Message::Error { code: ErrorCode::BadRequest, .. })), "{r:?}");
    let r = req(Message::BlocksRequest { share, blocks: vec![bref("shared.txt", 0, 0, ChunkHash::of(b""))] }).await;
    assert!(matches!(r, Ok(Message::Error { code: ErrorCode::BadRequest, .. })), "{r:?}");
    let r = req(Message::BlocksRequest { share, blocks: vec![] }).await;
    assert!(matches!(r, Ok(Message::Error { code: ErrorCode::BadRequest, .. })), "{r:?}");
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_frame_closes_the_connection() {
    let n = TestNode::start("node").await;
    let rogue = Rogue::new();
    let conn = rogue.pair_with(&n).await;

    // A paired device announcing a 100 MiB frame.
    let (mut send, _recv) = conn.connection().open_bi().await.unwrap();
    let mut bytes = (100u32 << 20).to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0xAB; 4096]);
    // The node may close as soon as it has read the header, so the rest may not get through.
    let _ = send.write_all(&bytes).await;
    let reason = closed_within_wait(&conn).await;
    assert!(reason.contains("bad frame") || reason.contains("exceeds"), "closed for another reason: {reason}");
    n.node.status().await.expect("node still runs");

    // An unpaired device announcing u32::MAX bytes instead of its pairing request.
    let stranger = Rogue::new();
    let c = stranger.connect(&n).await;
    let (mut send, _recv) = c.connection().open_bi().await.unwrap();
    let _ = send.write_all(&[&u32::MAX.to_be_bytes()[..], &[0xCD; 4096]].concat()).await;
    closed_within_wait(&c).await;

    // ... and in place of its Hello.
    let c = stranger.ep.connect(n.node.listen_addr(), Some(n.node.device_id())).await.unwrap();
    let (mut send, _recv) = c.connection().open_bi().await.unwrap();
    let _ = send.write_all(&[&(64u32 << 20).to_be_bytes()[..], &[0xEF; 4096]].concat()).await;
    closed_within_wait(&c).await;

    // The node answers a fresh connection from the paired device.
    let conn = rogue.connect(&n).await;
    let me = rogue.id_str();
    wait_for(&[&n], "rogue connected again", || connected(&n, &me)).await;
    let r = conn.request(&Message::Ping { nonce: 42 }, WAIT).await.unwrap();
    assert_eq!(r, Message::Pong { nonce: 42 });
    let st = n.node.status().await.expect("node still runs");
    assert_eq!(st.connected, 1);
    let devices = n.node.devices().await.unwrap();
    assert!(!devices.iter().any(|d| d.id == stranger.id_str() && d.paired));
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_temp_files_are_removed_at_start_and_never_synced() {
    let a = TestNode::start("alpha").await;
    let da = tempfile::tempdir().unwrap();
    fs::create_dir_all(da.path().join("sub/deeper")).unwrap();
    fs::write(da.path().join("keep.txt"), b"keep").unwrap();
    fs::write(da.path().join("sub/real.txt"), b"real").unwrap();
    let share = add_share(&a, da.path(), None).await;
    wait_for(&[&a], "share scanned", || async {
        share_idle(&a).await && a.node.status().await.unwrap().shares[0].files == 2
    })
    .await;

    // What a crash in the middle of a transfer leaves: temp files beside their targets, one
    // of them half written. (Written while the node runs: it must neither index nor remove
    // them until it restarts.)
    let temps = [".ferry-tmp-foo-123", "sub/.ferry-tmp-real.txt-00000000deadbeef", "sub/deeper/.ferry-tmp-big.bin-1"];
    fs::write(da.path().join(temps[0]), b"").unwrap();
    fs::write(da.path().join(temps[1]), random_bytes(3, 100_000)).unwrap();
    fs::write(da.path().join(temps[2]), random_bytes(4, 10)).unwrap();
    std::os::unix::fs::symlink("/etc", da.path().join("sub/.ferry-tmp-link-2")).unwrap();
    let (home, guard) = a.stop().await;
    for t in temps {
        assert!(da.path().join(t).exists(), "{t} vanished before the restart");
    }

    let a = TestNode::start_at("alpha", &home).await;
    let _guard = guard;
    wait_for(&[&a], "temp files removed", || async {
        temps.iter().all(|t| !da.path().join(t).exists())
            && fs::symlink_metadata(da.path().join("sub/.ferry-tmp-link-2")).is_err()
    })
    .await;
    wait_for(&[&a], "rescanned", || async { share_idle(&a).await }).await;
    assert_eq!(fs::read(da.path().join("keep.txt")).unwrap(), b"keep");
    assert_eq!(fs::read(da.path().join("sub/real.txt")).unwrap(), b"real");
    assert!(da.path().join("sub/deeper").is_dir());
    assert_eq!(a.node.status().await.unwrap().shares[0].files, 2, "a temp file was indexed");

    // In a two-device share, temp files in A's folder never reach B.
    let b = TestNode::start("beta").await;
    pair(&a, &b).await;
    let db = tempfile::tempdir().unwrap();
    accept_share_offer(&a, &b, &share.to_string(), db.path()).await;
    wait_for(&[&a, &b], "initial sync", || async { db.path().join("sub/real.txt").exists() }).await;
    fs::write(da.path().join(".ferry-tmp-x"), b"not for syncing").unwrap();
    fs::write(da.path().join("sub/.ferry-tmp-y-1"), b"nor this").unwrap();
    fs::create_dir_all(da.path().join(".ferry-tmp-dir")).unwrap();
    fs::write(da.path().join(".ferry-tmp-dir/inside.txt"), b"nor this").unwrap();
    fs::write(da.path().join("after.txt"), b"later, legit").unwrap();
    let is_temp = |k: &String| k.split('/').any(|c| c.starts_with(".ferry-tmp-"));
    wait_for(&[&a, &b], "after.txt and the rest on b", || async {
        let want: std::collections::BTreeMap<_, _> = tree(da.path()).into_iter().filter(|(k, _)| !is_temp(k)).collect();
        tree(db.path()) == want
    })
    .await;
    wait_for(&[&a, &b], "in sync", || async {
        in_sync(&a, &share.to_string()).await && in_sync(&b, &share.to_string()).await
    })
    .await;
    let on_b = names(db.path());
    assert!(!on_b.iter().any(is_temp), "a temp file reached b: {on_b:?}");
    assert_eq!(b.node.status().await.unwrap().shares[0].files, 3);

    a.node.shutdown().await;
    b.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receive_only_and_send_only_modes() {
    let a = TestNode::start("alpha").await;
    let b = TestNode::start("beta").await;
    pair(&a, &b).await;

    // --- A send-only: A's changes reach B, B's never reach A.
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s1 = share(&a, da.path(), &b, db.path(), Some("send-only")).await;
    fs::write(da.path().join("a1.txt"), b"from a").unwrap();
    wait_for(&[&a, &b], "a1 on b", || async { fs::read(db.path().join("a1.txt")).ok().as_deref() == Some(b"from a") })
        .await;
    wait_for(&[&a, &b], "s1 in sync", || async { in_sync(&a, &s1).await && in_sync(&b, &s1).await }).await;
    fs::write(db.path().join("a1.txt"), b"edited on b").unwrap();
    fs::write(db.path().join("b1.txt"), b"from b").unwrap();
    // A has received B's edit once it no longer considers B up to date with it.
    wait_for(&[&a, &b], "a knows of b's edit", || async {
        let st = a.node.status().await.unwrap();
        let s = st.shares.iter().find(|s| s.id == s1).unwrap();
        s.state == "idle" && s.need == 0 && !s.in_sync
    })
    .await;
    fs::write(da.path().join("a2.txt"), b"later from a").unwrap();
    wait_for(&[&a, &b], "a2 on b", || async { db.path().join("a2.txt").exists() }).await;
    // A scanned a2 after B's index arrived, and the pull that index asked for ran no later
    // than that scan's round: once A is idle again, it has had its chance to apply.
    wait_for(&[&a], "a idle", || async { share_idle(&a).await }).await;
    assert_eq!(fs::read(da.path().join("a1.txt")).unwrap(), b"from a", "send-only share applied a remote edit");
    assert!(!da.path().join("b1.txt").exists(), "send-only share received a file");
    assert_eq!(fs::read(db.path().join("a1.txt")).unwrap(), b"edited on b", "b's edit was reverted");

    // --- A receive-only: B's changes reach A, A's never reach B.
    let (ea, eb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s2 = share(&a, ea.path(), &b, eb.path(), Some("receive-only")).await;
    fs::write(ea.path().join("a-local.txt"), b"stays on a").unwrap();
    wait_for(&[&a], "a indexed a-local", || async {
        let st = a.node.status().await.unwrap();
        st.shares.iter().any(|s| s.id == s2 && s.files == 1 && s.state == "idle")
    })
    .await;
    fs::write(eb.path().join("b1.txt"), b"from b").unwrap();
    wait_for(&[&a, &b], "b1 on a", || async { fs::read(ea.path().join("b1.txt")).ok().as_deref() == Some(b"from b") })
        .await;
    // A echoes b1 in its index (after a-local, had a-local been sent). Once B got that
    // index, a later change on B and an idle B prove B's pull of it has run.
    let mut b_events = b.node.subscribe();
    let a_id = a.id();
    wait_for(&[&a, &b], "b got a's index with b1", || async { in_sync(&b, &s2).await }).await;
    let _ = drain(&mut b_events);
    fs::write(eb.path().join("b2.txt"), b"later from b").unwrap();
    wait_for(&[&a, &b], "b2 on a", || async { ea.path().join("b2.txt").exists() }).await;
    wait_for(&[&b], "b idle", || async { share_idle(&b).await }).await;
    assert!(!eb.path().join("a-local.txt").exists(), "a receive-only share sent a local file");
    let st = b.node.status().await.unwrap();
    assert_eq!(st.shares.iter().find(|s| s.id == s2).unwrap().need, 0, "b wants something from a");
    let applied_from_a = drain(&mut b_events)
        .into_iter()
        .any(|e| matches!(&e, Event::Applied { share, from, .. } if *share == s2 && *from == a_id));
    assert!(!applied_from_a, "b applied a change made on the receive-only side");
    assert_eq!(fs::read(ea.path().join("a-local.txt")).unwrap(), b"stays on a");

    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// Index updates that leave chunk lists out (`IndexUpdateCompact`): a reference to content the
/// node holds is rebuilt from it (the file appears without a block fetched), a reference to
/// content it does not hold is answered "not found" with nothing stored, a malformed one is
/// refused; the node's own updates to us leave out what we hold, and go whole when we say we
/// do not hold it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compact_index_references_are_checked_and_fall_back_whole() {
    let n = TestNode::start("node").await;
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("share");
    fs::create_dir_all(&root).unwrap();
    let rogue = Rogue::new();
    let conn = rogue.pair_with(&n).await;
    let share = add_share(&n, &root, None).await;
    n.node.share_invite(InviteDto { share: share.to_string(), device: rogue.id_str() }).await.expect("invite");
    let ann = ShareAnnounce { share, label: "s".into(), my_epoch: EPOCH, your_epoch: 0, your_seq: 0 };
    assert_eq!(conn.request(&Message::ClusterConfig { shares: vec![ann] }, WAIT).await.unwrap(), Message::Ack);

    // A big file on the node (at least 12 chunks: chunks are at most 1 MiB), sent to us whole.
    let big = random_bytes(4242, 12 << 20);
    fs::write(root.join("big.bin"), &big).unwrap();
    let theirs = wait_some(&[&n], "big.bin in the node's index", || async {
        rogue.index_whole.lock().unwrap().iter().find(|r| r.path.as_str() == "big.bin").cloned()
    })
    .await;
    assert!(theirs.chunks.len() >= 12, "{} chunks", theirs.chunks.len());
    assert_eq!(theirs.hash, ChunkHash::of(&big));
    let same =
        |record: u32| ChunksFrom::between(record, theirs.path.clone(), theirs.hash, &theirs.chunks, &theirs.chunks);
    let bare = |path: &str| {
        let mut r = rogue.record(path, FileKind::File, big.len() as u64, theirs.hash, vec![]);
        r.mtime_ns = MTIME;
        r
    };
    let compact = |records: Vec<FileRecord>, chunks_from: Vec<ChunksFrom>| Message::IndexUpdateCompact {
        share,
        epoch: EPOCH,
        records,
        chunks_from,
    };

    // 1. A copy by reference: built from the node's own big.bin, no block asked of us.
    assert_eq!(conn.request(&compact(vec![bare("copy.bin")], vec![same(0)]), WAIT).await.unwrap(), Message::Ack);
    wait_for(&[&n], "copy.bin on the node", || async {
        fs::metadata(root.join("copy.bin")).is_ok_and(|m| m.len() == big.len() as u64)
            && fs::read(root.join("copy.bin")).unwrap() == big
    })
    .await;
    assert!(!rogue.asked_for("copy.bin"), "the node fetched content it holds");
    // Its echo to us leaves the list out: we hold it (we just sent copy.bin).
    wait_for(&[&n], "copy.bin's echo by reference", || async {
        rogue.index_by_ref.lock().unwrap().iter().any(|p| p == "copy.bin")
    })
    .await;

    // 2. A reference to content the node does not hold: "not found", nothing stored.
    let ghost = ChunksFrom { base_hash: ChunkHash::of(b"never seen"), ..same(0) };
    match conn.request(&compact(vec![bare("ghost.bin")], vec![ghost]), WAIT).await.unwrap() {
        Message::Error { code: ErrorCode::NotFound, .. } => {}
        other => panic!("unresolvable reference answered with {other:?}"),
    }
    // 3. Malformed: keeps more chunks than the base has; a reference to a tombstone; out of range.
    let over = ChunksFrom { suffix: 1, ..same(0) };
    let mut dead = bare("dead.bin");
    dead.deleted = true;
    for (records, chunks_from) in [
        (vec![bare("over.bin")], vec![over]),
        (vec![dead], vec![same(0)]),
        (vec![bare("range.bin")], vec![same(1)]),
        (vec![bare("twice.bin")], vec![same(0), same(0)]),
    ] {
        match conn.request(&compact(records, chunks_from), WAIT).await.unwrap() {
            Message::Error { code: ErrorCode::BadRequest, .. } => {}
            other => panic!("malformed reference answered with {other:?}"),
        }
    }
    // Later than all of that, a legit file arrives; none of the refused ones ever do.
    rogue.serve_block("after.txt", b"after");
    assert_eq!(send_index(&conn, share, vec![rogue.file("after.txt", b"after")]).await, Message::Ack);
    wait_for(&[&n], "after.txt on the node", || async { root.join("after.txt").exists() }).await;
    for p in ["ghost.bin", "over.bin", "dead.bin", "range.bin", "twice.bin"] {
        assert!(fs::symlink_metadata(root.join(p)).is_err(), "{p} was written");
        assert!(!rogue.asked_for(p), "the node fetched blocks for the refused {p}");
    }

    // 4. We tell the node we hold big.bin too (its own record: nothing for it to do). It renames
    // big.bin and names our copy in its update; we say we do not hold it, so it sends the same
    // records again, whole.
    let mut ours = theirs.clone();
    ours.seq = Seq(rogue.next_seq());
    assert_eq!(send_index(&conn, share, vec![ours]).await, Message::Ack);
    rogue.refuse_compact.store(true, std::sync::atomic::Ordering::SeqCst);
    fs::rename(root.join("big.bin"), root.join("moved.bin")).unwrap();
    let moved = wait_some(&[&n], "moved.bin sent whole", || async {
        rogue.index_whole.lock().unwrap().iter().find(|r| r.path.as_str() == "moved.bin").cloned()
    })
    .await;
    assert_eq!((moved.hash, moved.chunks.clone()), (theirs.hash, theirs.chunks.clone()));
    assert!(!rogue.index_by_ref.lock().unwrap().iter().any(|p| p == "moved.bin"));
    assert!(rogue.compact_refused.load(std::sync::atomic::Ordering::SeqCst) >= 1, "the node never tried a reference");
    assert_eq!(fs::read(root.join("moved.bin")).unwrap(), big);

    n.node.shutdown().await;
}
