//! Hostile peers are refused: an unpaired device may only ask to pair, a paired one cannot write
//! or read outside its shares, an oversized frame closes the connection. Every "this never
//! happens" check is made after something that must happen later has happened (a legit file
//! arriving, a reply to a later request), never after a sleep. The rogue peer is
//! `ferry_e2e::rogue`.

use std::fs;
use std::path::Path;

use ferry_net::PeerConn;

use ferry_e2e::rogue::*;
use ferry_e2e::*;
use ferry_node::Event;
use ferry_node::api::InviteDto;
use ferry_proto::wire::{BlockRef, BlockReply, ErrorCode, MAX_BATCH_BLOCKS, Message, ShareAnnounce};
use ferry_proto::{ChunkHash, ChunkInfo, FileRecord, RelPath, ShareId};

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

    let rogue = Rogue::new();
    let conn = rogue.pair_with(&n).await;
    let share = add_share(&n, &root, None).await;
    n.node.share_invite(InviteDto { share: share.to_string(), device: rogue.id_str() }).await.expect("invite");
    // Announce the share back so the node sends us its index (we watch what it indexes).
    let ann = ShareAnnounce { share, label: "s".into(), my_epoch: EPOCH, your_epoch: 0, your_seq: 0 };
    let r = conn.request(&Message::ClusterConfig { shares: vec![ann] }, WAIT).await.unwrap();
    assert_eq!(r, Message::Ack);
    let w = Writes { n: &n, rogue: &rogue, share, root: &root, outside: &outside };
    w.bad_blocks_and_records(&conn).await;
    w.nothing_through_a_symlink(&conn).await;
    w.hostile_paths(conn, base.path()).await;
    n.node.shutdown().await;
}

/// The scene of [`paired_peer_cannot_write_outside_the_share`]: a node sharing `root` with the
/// rogue, and a folder `outside` it that must stay as it is.
struct Writes<'a> {
    n: &'a TestNode,
    rogue: &'a Rogue,
    share: ShareId,
    root: &'a Path,
    outside: &'a Path,
}

impl Writes<'_> {
    /// Blocks that do not match their hash, whole-file hashes that lie, records whose chunks do
    /// not add up: nothing of them is written, and a legit file after them is.
    async fn bad_blocks_and_records(&self, conn: &PeerConn) {
        let (n, rogue, share, root) = (self.n, self.rogue, self.share, self.root);
        let mut events = n.node.subscribe();
        // 1. A block that does not match its hash is never written.
        let right = b"0123456789";
        let wrong = b"ABCDEFGHIJ";
        rogue.serve_block("evil.txt", wrong);
        assert_eq!(send_index(conn, share, vec![rogue.file("evil.txt", right)]).await, Message::Ack);
        wait_for(&[n], "node asks for evil.txt's block", || async { rogue.asked_for("evil.txt") }).await;
        // A record whose chunks are right but whose whole-file hash lies is not applied either.
        let liar_data = b"chunks are fine";
        rogue.serve_block("liar.txt", liar_data);
        let mut liar = rogue.file("liar.txt", liar_data);
        liar.hash = ChunkHash::of(b"something else");
        assert_eq!(send_index(conn, share, vec![liar]).await, Message::Ack);
        wait_for(&[n], "node asks for liar.txt's block", || async { rogue.asked_for("liar.txt") }).await;

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
        assert_eq!(send_index(conn, share, vec![badsize, zerochunk, short]).await, Message::Ack);
        let refused = drain(&mut events)
            .into_iter()
            .any(|e| matches!(&e, Event::Error { message, .. } if message.contains("refused 3 malformed records")));
        assert!(refused, "the node did not report the malformed records");

        // A legit file goes through: the pipeline works and ran after the records above.
        let good = b"good content";
        rogue.serve_block("good.txt", good);
        assert_eq!(send_index(conn, share, vec![rogue.file("good.txt", good)]).await, Message::Ack);
        wait_for(&[n], "good.txt on the node", || async {
            fs::read(root.join("good.txt")).ok().as_deref() == Some(good)
        })
        .await;
        for p in ["evil.txt", "liar.txt", "badsize.txt", "zerochunk.txt", "short.txt"] {
            assert!(fs::symlink_metadata(root.join(p)).is_err(), "{p} was written");
        }
        for p in ["badsize.txt", "zerochunk.txt", "short.txt"] {
            assert!(!rogue.asked_for(p), "the node fetched blocks of the malformed record {p}");
        }
        let wrong_hash = format!("file:{}", blake3::hash(wrong).to_hex());
        assert!(
            tree(root).values().all(|v| !v.starts_with(&wrong_hash)),
            "unverified bytes reached the disk: {:?}",
            tree(root)
        );
    }

    /// A symlink to a folder outside the share, then files "through" it: nothing is written
    /// outside, and the scanner never follows the link.
    async fn nothing_through_a_symlink(&self, conn: &PeerConn) {
        let (n, rogue, share, root, outside) = (self.n, self.rogue, self.share, self.root, self.outside);
        // 3. A symlink to a folder outside the share, then a file "through" it.
        let target = outside.display().to_string();
        assert_eq!(send_index(conn, share, vec![rogue.symlink("lnk", &target)]).await, Message::Ack);
        wait_for(&[n], "the link exists", || async {
            fs::read_link(root.join("lnk")).ok().is_some_and(|t| t == outside)
        })
        .await;
        rogue.serve_block("lnk/pwned.txt", b"pwned");
        rogue.serve_block("lnk/sub/pwned.txt", b"pwned");
        let recs = vec![
            rogue.file("lnk/pwned.txt", b"pwned"),
            rogue.dir("lnk/newdir"),
            rogue.file("lnk/sub/pwned.txt", b"pwned"),
        ];
        assert_eq!(send_index(conn, share, recs).await, Message::Ack);
        // A full rescan now: if the scanner followed the link, it would index the outside files
        // before good2.txt (which is committed after it) and send them to us.
        n.node.rescan_all();
        let good2 = b"good two";
        rogue.serve_block("good2.txt", good2);
        assert_eq!(send_index(conn, share, vec![rogue.file("good2.txt", good2)]).await, Message::Ack);
        wait_for(&[n], "good2.txt on the node", || async {
            fs::read(root.join("good2.txt")).ok().as_deref() == Some(good2)
        })
        .await;
        wait_for(&[n], "good2.txt in the node's index sent to us", || async {
            rogue.index_seen.lock().unwrap().iter().any(|p| p == "good2.txt")
        })
        .await;
        assert_eq!(names(outside), vec!["keep.txt".to_string()], "something was written through the link");
        let seen = rogue.index_seen.lock().unwrap().clone();
        assert!(!seen.iter().any(|p| p.starts_with("lnk/")), "the node indexed through a symlink: {seen:?}");
    }

    /// Hostile paths, which the encoder refuses to produce, patched into the frame: each is
    /// refused, nothing appears outside the share, beside it, or in Ferry's own folders.
    async fn hostile_paths(&self, conn: PeerConn, base: &Path) {
        let (n, rogue, share, root, outside) = (self.n, self.rogue, self.share, self.root, self.outside);
        let tag: u32 = rand::random();
        let target = outside.display().to_string();
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
                    conn = rogue.connect(n).await;
                }
                Ok(other) => panic!("record for {path:?} was answered with {other:?}"),
            }
        }
        let good3 = b"good three";
        rogue.serve_block("good3.txt", good3);
        assert_eq!(send_index(&conn, share, vec![rogue.file("good3.txt", good3)]).await, Message::Ack);
        wait_for(&[n], "good3.txt on the node", || async {
            fs::read(root.join("good3.txt")).ok().as_deref() == Some(good3)
        })
        .await;
        // A backslash is an ordinary character on Linux: `..\x` is one name inside the share, not
        // a way out (only a system that reads `\` as a separator refuses it, and there as an
        // item that cannot be synced: `RelPath::problem_on`).
        let odd = format!("..\\backslash-{tag}.txt");
        rogue.serve_block(&odd, b"one name");
        assert_eq!(send_index(&conn, share, vec![rogue.file(&odd, b"one name")]).await, Message::Ack);
        wait_for(&[n], "the backslash name inside the share", || async {
            fs::read(root.join(&odd)).ok().as_deref() == Some(b"one name".as_slice())
        })
        .await;
        assert_eq!(names(outside), vec!["keep.txt".to_string()], "something was written outside the share");
        let mut around: Vec<String> = names(base).into_iter().filter(|p| !p.starts_with("share/")).collect();
        around.sort();
        assert_eq!(around, ["outside", "outside/keep.txt", "share"], "something appeared beside the share");
        let inside = names(root);
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
    }
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

    batched_reads_are_checked(&conn, share, private_share, (shared, secret, mine)).await;
    version_reads_are_checked(&conn, share, private_share, (shared, secret, mine)).await;
    n.node.shutdown().await;
}

/// Requests for kept content by whole-file hash (how a device fetches an old version another
/// device archived) get the same checks: members only, only content the index names with that
/// hash, in bounds, capped. `contents` as for [`batched_reads_are_checked`].
async fn version_reads_are_checked(
    conn: &PeerConn,
    share: ShareId,
    private_share: ShareId,
    contents: (&[u8], &[u8], &[u8]),
) {
    let (shared, secret, mine) = contents;
    let req = |share: ShareId, path: &str, hash: ChunkHash, offset: u64, len: u32| {
        let m = Message::VersionBlockRequest { share, path: RelPath::new(path).unwrap(), hash, offset, len };
        let c = conn.clone();
        async move { c.request(&m, WAIT).await.map_err(|e| e.to_string()) }
    };
    let code = |r: Result<Message, String>| match r {
        Ok(Message::Error { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let h = ChunkHash::of(shared);
    assert_eq!(req(share, "shared.txt", h, 0, 0).await.unwrap(), Message::Block { data: vec![] }, "kept: yes");
    let r = req(share, "shared.txt", h, 0, shared.len() as u32).await;
    assert_eq!(r.unwrap(), Message::Block { data: shared.to_vec() });
    assert_eq!(code(req(private_share, "private.txt", ChunkHash::of(mine), 0, 4).await), ErrorCode::Refused);
    assert_eq!(code(req(share, "secret.txt", ChunkHash::of(secret), 0, 4).await), ErrorCode::NotFound);
    assert_eq!(code(req(share, "shared.txt", ChunkHash::of(b"other"), 0, 4).await), ErrorCode::NotFound);
    assert_eq!(code(req(share, "shared.txt", h, 4, shared.len() as u32).await), ErrorCode::BadRequest);
    assert_eq!(code(req(share, "shared.txt", h, u64::MAX - 1, 4).await), ErrorCode::BadRequest);
    assert_eq!(code(req(share, "shared.txt", h, 0, u32::MAX).await), ErrorCode::BadRequest);
}

/// Batched block requests get the same checks as single ones, block by block; a batch that
/// is not a member's, too big or malformed is refused whole. `contents`: the shared file's,
/// the secret beside the share's, the private share's.
async fn batched_reads_are_checked(
    conn: &PeerConn,
    share: ShareId,
    private_share: ShareId,
    contents: (&[u8], &[u8], &[u8]),
) {
    let (shared, secret, mine) = contents;
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
