//! An interrupted one-shot send resumes where it stopped. Its own test binary: it holds a fault
//! point (`send.serve_block`) that every send of the process passes through.

use ferry_e2e::sends::*;
use ferry_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_send_resumes_without_starting_over() {
    let (a, b) = two_nodes().await;
    b.node.device_auto_accept("alpha", true).await.unwrap();
    let src = tempfile::tempdir().unwrap();
    let size = 96usize << 20;
    let data = random_bytes(7, size);
    let file = src.path().join("movie.mkv");
    std::fs::write(&file, &data).unwrap();

    let t0 = std::time::Instant::now();
    // The sender serves 16 blocks, then holds every further block request: the receiver holds
    // some of the file and cannot finish, whatever the machine's speed. (Other tests of this
    // binary that send meanwhile wait for the release too, a few seconds.)
    let held = ferry_node::fault::hold_after("send.serve_block", 16);
    let t = send(&a, &b, &[&file]).await;
    eprintln!("offered after {:?}", t0.elapsed());
    assert!(held.reached(WAIT).await, "the sender served its 16 blocks");
    // And the receiver handed some to its writer (which writes what it was handed even when
    // the node stops): there is something to resume from.
    wait_for(&[&a, &b], "b holds part of the file", || async {
        transfer(&b, &t.id).await.is_some_and(|x| x.bytes_done > 0)
    })
    .await;
    let b_id = b.id();
    let (home_b, guard_b) = b.stop().await;
    // The requests held at the sender die with the connection: they fail, never sent.
    held.fail_held();
    let _keep = guard_b;
    wait_for(&[&a], "a sees b offline", || async { !connected(&a, &b_id).await }).await;
    let sent_before = transfer(&a, &t.id).await.unwrap().wire_bytes;
    assert_eq!(state(&a, &t.id).await, "active");
    assert!(sent_before > 0 && sent_before < size as u64, "interrupted mid-way: {sent_before}");

    eprintln!("stopped after {:?}", t0.elapsed());
    let b = TestNode::start_at("beta", &home_b).await;
    assert_eq!(state(&b, &t.id).await, "active", "the accepted send survives the restart");
    wait_for(&[&a, &b], "reconnected", || async { connected(&a, &b.id()).await }).await;
    eprintln!("reconnected after {:?}", t0.elapsed());
    wait_state(&a, &b, &t.id, "done").await;
    eprintln!("done after {:?}", t0.elapsed());
    let got = std::fs::read(inbox(&b).join("movie.mkv")).unwrap();
    assert_eq!(blake3::hash(&got), blake3::hash(&data));
    assert_eq!(all_names(&inbox(&b)), vec!["movie.mkv".to_string()]);

    let resumed = transfer(&b, &t.id).await.unwrap().resumed_bytes;
    let sent_total = transfer(&a, &t.id).await.unwrap().wire_bytes;
    let second = sent_total - sent_before;
    assert!(resumed > 0, "chunks already written were kept");
    assert_eq!(second, size as u64 - resumed, "after the restart only the missing chunks moved");
    assert!(sent_total < size as u64 + sent_before, "did not start over: {sent_total} bytes in all");
    eprintln!("interrupted after {sent_before} bytes; {resumed} kept; {second} fetched after the restart");
}
