//! One-shot file sends between two in-process nodes on loopback: content arrives byte-identical
//! (a 50 MiB file, a folder of 100 files), reject leaves nothing behind, collisions get ` (1)`,
//! auto-accept skips the prompt, an interrupted send resumes without starting over, and the
//! limits (unknown, muted, rate-limited devices) give clear errors.

use ferry_e2e::sends::*;
use ferry_e2e::*;
use ferry_node::Event;
use ferry_node::api::{AcceptDto, SendDto};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_50_mib_file_arrives_byte_identical_after_accept() {
    let (a, b) = two_nodes().await;
    let src = tempfile::tempdir().unwrap();
    let data = random_bytes(1, 50 << 20);
    let file = src.path().join("big.bin");
    std::fs::write(&file, &data).unwrap();

    let mut ev_a = a.node.subscribe();
    let t = send(&a, &b, &[&file]).await;
    assert_eq!((t.files, t.bytes_total, t.direction.as_str()), (1, 50 << 20, "out"));
    let prompt = send_prompt(&b, &t.id).await;
    assert_eq!(prompt.files, Some(1));
    assert_eq!(prompt.bytes, Some(50 << 20));
    assert_eq!(prompt.names, vec!["big.bin".to_string()]);
    assert_eq!(prompt.device, a.id());
    assert!(!inbox(&b).exists(), "nothing is written before the user accepts");
    b.node.accept(AcceptDto { id: prompt.id, path: None }).await.unwrap();
    wait_state(&a, &b, &t.id, "done").await;

    let got = std::fs::read(inbox(&b).join("big.bin")).unwrap();
    assert_eq!(blake3::hash(&got), blake3::hash(&data));
    assert_eq!(all_names(&inbox(&b)), vec!["big.bin".to_string()], "no temp files left");
    let out = transfer(&a, &t.id).await.unwrap();
    assert_eq!(out.bytes_done, 50 << 20);
    assert_eq!(out.wire_bytes, 50 << 20, "each byte crossed once");
    let inn = transfer(&b, &t.id).await.unwrap();
    assert_eq!(inn.direction, "in");
    assert_eq!(inn.placed, vec![inbox(&b).join("big.bin").display().to_string()]);
    // The sender saw the whole story as events: accepted, progress, done.
    let (mut states, mut progress) = (Vec::new(), 0);
    while let Ok(e) = ev_a.try_recv() {
        match e {
            Event::SendState { id, state, .. } if id == t.id => states.push(state),
            Event::SendProgress { id, done, total, .. } if id == t.id => {
                assert!(done <= total);
                progress += 1;
            }
            _ => {}
        }
    }
    assert!(states.contains(&"active".to_string()), "{states:?}");
    assert_eq!(states.last().map(String::as_str), Some("done"), "{states:?}");
    assert!(progress > 0, "progress events on the sender");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_folder_of_100_files_arrives_with_its_structure_and_auto_accept_skips_the_prompt() {
    let (a, b) = two_nodes().await;
    b.node.device_auto_accept("alpha", true).await.unwrap();
    let src = tempfile::tempdir().unwrap();
    let top = src.path().join("Photos");
    for i in 0..100u64 {
        let p = top.join(format!("d{}/sub{}/f{i:03}.dat", i % 4, i % 3));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, random_bytes(100 + i, (i as usize * 7919) % 300_000)).unwrap();
    }
    std::fs::create_dir_all(top.join("empty/inner")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(top.join("d0/sub0/f000.dat"), std::fs::Permissions::from_mode(0o755)).unwrap();

    let t = send(&a, &b, &[&top]).await;
    assert_eq!(t.files, 100);
    wait_state(&a, &b, &t.id, "done").await;
    assert!(b.node.pending().await.unwrap().is_empty(), "auto-accept raises no prompt");
    assert_eq!(tree(&inbox(&b).join("Photos")), tree(&top), "byte-identical, same structure, same modes");

    // Sent again: the copy lands beside the first, which is untouched.
    let t2 = send(&a, &b, &[&top]).await;
    wait_state(&a, &b, &t2.id, "done").await;
    assert_eq!(tree(&inbox(&b).join("Photos (1)")), tree(&top));
    assert_eq!(tree(&inbox(&b).join("Photos")), tree(&top));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reject_leaves_nothing_and_collisions_get_a_suffix() {
    let (a, b) = two_nodes().await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("report.txt");
    std::fs::write(&file, b"first").unwrap();

    let t = send(&a, &b, &[&file]).await;
    let p = send_prompt(&b, &t.id).await;
    b.node.reject(p.id).await.unwrap();
    wait_state(&a, &b, &t.id, "rejected").await;
    let out = transfer(&a, &t.id).await.unwrap();
    assert!(out.message.as_deref().unwrap_or("").contains("declined"), "{out:?}");
    assert!(!inbox(&b).exists() || all_names(&inbox(&b)).is_empty(), "{:?}", all_names(&inbox(&b)));
    assert!(b.node.pending().await.unwrap().is_empty());

    // A file of that name is already in the inbox: the send lands as "report (1).txt".
    std::fs::create_dir_all(inbox(&b)).unwrap();
    std::fs::write(inbox(&b).join("report.txt"), b"mine").unwrap();
    let t = send(&a, &b, &[&file]).await;
    let p = send_prompt(&b, &t.id).await;
    b.node.accept(AcceptDto { id: p.id, path: None }).await.unwrap();
    wait_state(&a, &b, &t.id, "done").await;
    assert_eq!(std::fs::read(inbox(&b).join("report.txt")).unwrap(), b"mine", "never overwritten");
    assert_eq!(std::fs::read(inbox(&b).join("report (1).txt")).unwrap(), b"first");
    assert_eq!(all_names(&inbox(&b)), vec!["report (1).txt".to_string(), "report.txt".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_give_clear_errors() {
    let (a, b) = two_nodes().await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("note.txt");
    std::fs::write(&file, b"hi").unwrap();
    let paths = vec![file.display().to_string()];

    let e = a.node.send(SendDto { pin: None, device: "nosuchdevice".into(), paths: paths.clone() }).await.unwrap_err();
    assert!(e.message.contains("no known device matches \"nosuchdevice\""), "{e}");
    let e = a.node.send(SendDto { pin: None, device: b.id(), paths: vec!["relative.txt".into()] }).await.unwrap_err();
    assert!(e.message.contains("must be an absolute path"), "{e}");
    let missing = src.path().join("missing");
    let e = a
        .node
        .send(SendDto { pin: None, device: b.id(), paths: vec![missing.display().to_string()] })
        .await
        .unwrap_err();
    assert!(e.message.contains("missing"), "{e}");
    std::os::unix::fs::symlink("note.txt", src.path().join("link")).unwrap();
    let e =
        a.node.send(SendDto { pin: None, device: b.id(), paths: vec![src.path().join("link").display().to_string()] });
    assert!(e.await.unwrap_err().message.contains("symbolic link"));

    // A stranger (never paired) is unknown here: nothing to send to.
    let c = TestNode::start("gamma").await;
    let e = a.node.send(SendDto { pin: None, device: c.id(), paths: paths.clone() }).await.unwrap_err();
    assert!(e.message.contains("no known device"), "{e}");

    // Muted: the offer is refused with the reason.
    b.node.device_mute("alpha", true).await.unwrap();
    let t = send(&a, &b, &[&file]).await;
    wait_for(&[&a, &b], "refused", || async { state(&a, &t.id).await == "failed" }).await;
    let m = transfer(&a, &t.id).await.unwrap().message.unwrap_or_default();
    assert!(m.contains("does not accept sends from this device"), "{m}");
    assert!(transfer(&b, &t.id).await.is_none(), "nothing recorded on the receiver");
    b.node.device_mute("alpha", false).await.unwrap();

    // Prompts are rate-limited per device: a burst of five, then refused clearly.
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(send(&a, &b, &[&file]).await.id);
    }
    wait_for(&[&a, &b], "all seven offers answered", || async {
        let mut n = 0;
        for id in &ids {
            if matches!(state(&a, id).await.as_str(), "offered" | "failed") {
                n += 1;
            }
        }
        n == ids.len()
    })
    .await;
    let mut offered = 0;
    for id in &ids {
        let t = transfer(&a, id).await.unwrap();
        if t.state == "offered" {
            offered += 1;
        } else {
            assert!(t.message.as_deref().unwrap_or("").contains("too many requests from this device"), "{t:?}");
        }
    }
    assert_eq!(offered, 5, "a burst of five prompts, then refusals");
    assert_eq!(b.node.pending().await.unwrap().iter().filter(|p| p.kind == "send").count(), 5);
}

/// Throughput of a 1 GiB one-shot send on loopback (auto-accepted): prints MB/s for the
/// transfer itself (accepted -> done) and for the whole command (including hashing the file).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "measurement; run in release with --ignored --nocapture"]
async fn send_throughput_1gib() {
    let (a, b) = two_nodes().await;
    b.node.device_auto_accept("alpha", true).await.unwrap();
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("one.gib");
    let size = 1usize << 30;
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for i in 0..(size >> 24) {
            f.write_all(&random_bytes(1000 + i as u64, 1 << 24)).unwrap();
        }
    }
    let mut ev = a.node.subscribe();
    let t0 = std::time::Instant::now();
    let t = send(&a, &b, &[&file]).await;
    let offered = t0.elapsed();
    let mut active = None;
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(300), ev.recv()).await.expect("events") {
            Ok(Event::SendState { id, state, .. }) if id == t.id && state == "active" => {
                active = Some(std::time::Instant::now())
            }
            Ok(Event::SendState { id, state, .. }) if id == t.id && state == "done" => break,
            Ok(Event::SendState { id, state, message, .. }) if id == t.id && state == "failed" => {
                panic!("failed: {message:?}")
            }
            _ => {}
        }
    }
    let total = t0.elapsed();
    let moving = active.map(|a| a.elapsed()).unwrap_or(total);
    let mb = size as f64 / 1e6;
    println!(
        "1 GiB send: chunking+offer {offered:.2?}, transfer {moving:.2?} = {:.0} MB/s, whole command {total:.2?} = {:.0} MB/s",
        mb / moving.as_secs_f64(),
        mb / total.as_secs_f64()
    );
    let got = blake3::hash(&std::fs::read(inbox(&b).join("one.gib")).unwrap());
    assert_eq!(got, blake3::hash(&std::fs::read(&file).unwrap()));
}

/// An unpaired device's offer is refused with NotPaired: no prompt, no record, nothing on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unpaired_device_cannot_offer_a_send() {
    use ferry_net::{Endpoint, Identity};
    use ferry_proto::wire::{ErrorCode, Hello, Message, SendFile};
    use ferry_proto::{ChunkHash, ChunkInfo, PROTOCOL_VERSION, RelPath, TransferId};

    let b = TestNode::start("beta").await;
    let ident = Identity::generate().unwrap();
    let ep = Endpoint::bind(&ident, "127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = ep.connect(b.node.listen_addr(), Some(b.node.device_id())).await.expect("dial");
    let hello = Hello { protocol: PROTOCOL_VERSION, name: "stranger".into(), owner: "mallory".into() };
    conn.handshake(&hello).await.expect("hello");
    let data = b"unsolicited";
    let offer = Message::SendOffer {
        id: TransferId([7; 16]),
        files: vec![SendFile {
            path: RelPath::new("gift.exe").unwrap(),
            size: data.len() as u64,
            mtime_ns: 0,
            executable: true,
            hash: ChunkHash::of(data),
            chunks: vec![ChunkInfo { hash: ChunkHash::of(data), len: data.len() as u32 }],
        }],
        dirs: vec![],
    };
    match conn.request(&offer, WAIT).await {
        Ok(Message::Error { code: ErrorCode::NotPaired, message }) => {
            assert!(message.contains("not paired"), "{message}")
        }
        other => panic!("an unpaired offer was answered with {other:?}"),
    }
    assert!(b.node.pending().await.unwrap().is_empty());
    assert!(b.node.transfers().await.unwrap().is_empty());
    assert!(!inbox(&b).exists());
}

/// A source file that changes after it was offered fails the send cleanly on both sides:
/// nothing half-old, half-new arrives, and no temp files stay behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_changed_source_fails_the_send_cleanly() {
    let (a, b) = two_nodes().await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("draft.txt");
    std::fs::write(&file, random_bytes(3, 2 << 20)).unwrap();
    let t = send(&a, &b, &[&file]).await;
    let p = send_prompt(&b, &t.id).await;
    std::fs::write(&file, random_bytes(4, 2 << 20)).unwrap();
    b.node.accept(AcceptDto { id: p.id, path: None }).await.unwrap();
    wait_state(&a, &b, &t.id, "failed").await;
    let m = transfer(&a, &t.id).await.unwrap().message.unwrap_or_default();
    assert!(m.contains("changed since it was offered"), "{m}");
    let m = transfer(&b, &t.id).await.unwrap().message.unwrap_or_default();
    assert!(m.contains("changed since it was offered"), "{m}");
    wait_for(&[&a, &b], "staging folder removed", || async { all_names(&inbox(&b)).is_empty() }).await;
}
