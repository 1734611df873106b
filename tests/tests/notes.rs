//! Quick notes between two in-process nodes on loopback: offline delivery exactly once and in
//! order, receipts, limits, unknown devices and muting.

use std::time::{Duration, Instant};

use ferry_e2e::*;
use ferry_node::api::{NoteDto, NoteSendDto, NotesQuery};

async fn notes(n: &TestNode) -> Vec<NoteDto> {
    n.node.notes(NotesQuery::default()).await.unwrap()
}

async fn send(from: &TestNode, to: &TestNode, text: &str) -> NoteDto {
    from.node.note_send(NoteSendDto { pin: None, device: to.id(), text: text.into() }).await.expect("note send")
}

async fn state_of(n: &TestNode, id: &str) -> String {
    notes(n).await.into_iter().find(|x| x.id == id).map(|x| x.state).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_notes_arrive_once_in_order_after_restart() {
    let a = TestNode::start("alpha").await;
    let b = TestNode::start("beta").await;
    pair(&a, &b).await;
    let b_id = b.id();
    let (home_b, guard_b) = b.stop().await;
    let _keep = guard_b;
    wait_for(&[&a], "a sees b offline", || async { !connected(&a, &b_id).await }).await;

    let first =
        a.node.note_send(NoteSendDto { pin: None, device: b_id.clone(), text: "hello offline".into() }).await.unwrap();
    assert_eq!(first.state, "queued");
    assert_eq!(state_of(&a, &first.id).await, "queued", "stored before the call returned");
    for i in 0..100 {
        a.node.note_send(NoteSendDto { pin: None, device: b_id.clone(), text: format!("n{i:03}") }).await.unwrap();
    }

    let b = TestNode::start_at("beta", &home_b).await;
    wait_for(&[&a, &b], "101 notes on b", || async { notes(&b).await.len() >= 101 }).await;
    wait_for(&[&a, &b], "all delivered on a", || async { notes(&a).await.iter().all(|n| n.state == "delivered") })
        .await;
    let got = notes(&b).await;
    assert_eq!(got.len(), 101);
    assert_eq!(got.iter().filter(|n| n.id == first.id).count(), 1, "exactly one copy");
    let texts: Vec<String> = got.iter().map(|n| n.text.clone()).collect();
    let mut want = vec!["hello offline".to_string()];
    want.extend((0..100).map(|i| format!("n{i:03}")));
    assert_eq!(texts, want, "order kept");
    assert!(got.iter().all(|n| n.state == "unread" && !n.outgoing && n.from == a.id() && n.to == b.id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receipts_progress_queued_delivered_read() {
    let a = TestNode::start("alpha").await;
    let b = TestNode::start("beta").await;
    pair(&a, &b).await;
    let mut events = b.node.subscribe();
    let n = send(&a, &b, "read me").await;
    assert_eq!(n.state, "queued");
    wait_for(&[&a, &b], "delivered", || async { state_of(&a, &n.id).await == "delivered" }).await;
    // The receiver announced it exactly once.
    let ev = wait_some(&[&b], "NoteReceived event", || {
        let mut found = None;
        while let Ok(e) = events.try_recv() {
            if matches!(e, ferry_node::Event::NoteReceived { .. }) {
                found = Some(e);
                break;
            }
        }
        async move { found }
    })
    .await;
    assert!(
        matches!(&ev, ferry_node::Event::NoteReceived { id, from_name, text, .. }
            if *id == n.id && from_name == "alpha" && text == "read me"),
        "{ev:?}"
    );
    assert_eq!(state_of(&b, &n.id).await, "unread");
    let r = b.node.note_read(&n.id[..10]).await.unwrap();
    assert_eq!(r.state, "read");
    wait_for(&[&a, &b], "read on a", || async { state_of(&a, &n.id).await == "read" }).await;
    // Reading one's own note is refused clearly.
    let e = a.node.note_read(&n.id).await.unwrap_err();
    assert!(e.message.contains("sent from this device"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_notes_give_clear_errors_and_muted_devices_are_refused() {
    let a = TestNode::start("alpha").await;
    let b = TestNode::start("beta").await;
    pair(&a, &b).await;
    let long = "x".repeat(65537);
    let e = a.node.note_send(NoteSendDto { pin: None, device: b.id(), text: long }).await.unwrap_err();
    assert_eq!(e.message, "note is 65537 bytes; the limit is 65536");
    let ok = "y".repeat(65536);
    let big = send(&a, &b, &ok).await;
    let e = a
        .node
        .note_send(NoteSendDto { pin: None, device: "nosuchdevice".into(), text: "hi".into() })
        .await
        .unwrap_err();
    assert!(e.message.contains("no known device matches \"nosuchdevice\""), "{e}");
    wait_for(&[&a, &b], "64 KiB note delivered", || async { state_of(&a, &big.id).await == "delivered" }).await;

    b.node.device_mute("alpha", true).await.unwrap();
    let n = send(&a, &b, "shh").await;
    wait_for(&[&a, &b], "refused", || async { state_of(&a, &n.id).await == "refused" }).await;
    let refused = notes(&a).await.into_iter().find(|x| x.id == n.id).unwrap();
    assert!(refused.refused.as_deref().unwrap_or("").contains("does not accept notes"), "{refused:?}");
    assert!(!notes(&b).await.iter().any(|x| x.id == n.id));

    b.node.device_mute("alpha", false).await.unwrap();
    let n2 = send(&a, &b, "again").await;
    wait_for(&[&a, &b], "delivered after unmute", || async { state_of(&a, &n2.id).await == "delivered" }).await;
}

/// Send -> delivered latency between two connected nodes; prints the median of 50 sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "measurement; run with --ignored --nocapture"]
async fn note_latency() {
    let a = TestNode::start("alpha").await;
    let b = TestNode::start("beta").await;
    pair(&a, &b).await;
    let mut times = Vec::new();
    for i in 0..50 {
        let mut ev = a.node.subscribe();
        let t = Instant::now();
        let n = send(&a, &b, &format!("ping {i}")).await;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ev.recv()).await.expect("state event") {
                Ok(ferry_node::Event::NoteState { id, state }) if id == n.id && state == "delivered" => break,
                _ => {}
            }
        }
        times.push(t.elapsed());
    }
    times.sort();
    println!("note latency: median {:?}, min {:?}, max {:?}", times[25], times[0], times[49]);
}
