//! A damaged database: the node refuses to start with a message that says so and gives the
//! steps to start again, changes nothing (the database file, the shared folder), and following
//! those steps brings the device back into its share with no file lost and no conflict copy.

use std::fs;
use std::path::Path;

use ferry_e2e::*;

/// Overwrites everything after redb's first page (its header) with garbage: the kind of
/// damage redb did not catch by itself before (it panicked while opening).
fn garble(db: &Path) {
    let mut bytes = fs::read(db).unwrap();
    let noise = random_bytes(99, bytes.len());
    bytes[4096..].copy_from_slice(&noise[4096..]);
    fs::write(db, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_database_is_refused_and_the_printed_steps_recover_without_loss() {
    let (a, b, da, db, share) = two_sharing().await;
    fs::create_dir(da.path().join("docs")).unwrap();
    for i in 0..5u64 {
        fs::write(da.path().join(format!("docs/{i}.bin")), random_bytes(i, 50_000)).unwrap();
    }
    fs::write(db.path().join("from-b.txt"), b"made on b").unwrap();
    wait_for(&[&a, &b], "in sync", || async {
        in_sync(&a, &share).await && in_sync(&b, &share).await && tree(da.path()) == tree(db.path())
    })
    .await;
    let b_id = b.id();
    let (home, _keep) = b.stop().await;
    let redb = home.join("ferry.redb");
    garble(&redb);
    let damaged = fs::read(&redb).unwrap();
    let before = tree(db.path());

    // Refused, with what to do; nothing changed.
    let err = match ferry_node::Node::start(config("beta", &home)).await {
        Err(e) => e.message,
        Ok(_) => panic!("a node started on a damaged database"),
    };
    eprintln!("{err}");
    let aside = format!("{}.damaged", redb.display());
    assert!(err.contains(&format!("the database {} is damaged", redb.display())), "{err}");
    assert!(err.contains(&format!("mv {} {aside}", redb.display())), "{err}");
    assert!(err.contains("ferry pair") && err.contains("ferry share invite") && err.contains("ferry accept"), "{err}");
    assert_eq!(fs::read(&redb).unwrap(), damaged, "the damaged database is left as it was");
    assert_eq!(tree(db.path()), before, "the shared folder is left as it was");

    // Meanwhile a goes on.
    fs::write(da.path().join("docs/while-b-was-down.txt"), b"new on a").unwrap();

    // The steps, as printed: move it aside, start, pair, be invited, accept into the same folder.
    fs::rename(&redb, &aside).unwrap();
    let b = TestNode::start_at("beta", &home).await;
    assert_eq!(b.id(), b_id, "the same device (its identity is not in the database)");
    // a still has b paired (same certificate): it answers "already paired" with no prompt.
    let ticket = b.node.pair(&a.addr()).await.expect("pair request");
    let outcome = b.node.pair_wait(ticket.ticket).await.unwrap();
    assert_eq!(outcome.state, "accepted", "{}", outcome.message);
    wait_for(&[&a, &b], "connected again", || async { connected(&a, &b_id).await && connected(&b, &a.id()).await })
        .await;
    accept_share_offer(&a, &b, &share, db.path()).await;
    wait_for(&[&a, &b], "back in sync, nothing lost", || async {
        in_sync(&a, &share).await && in_sync(&b, &share).await && tree(da.path()) == tree(db.path())
    })
    .await;
    let after = tree(db.path());
    for (path, kind) in &before {
        assert_eq!(after.get(path), Some(kind), "{path} kept on b as it was");
    }
    assert_eq!(fs::read(db.path().join("docs/while-b-was-down.txt")).unwrap(), b"new on a");
    assert_eq!(after.len(), before.len() + 1, "no conflict copy, nothing else: {after:?}");
    assert!(Path::new(&aside).is_file(), "the damaged database is kept");
    a.node.shutdown().await;
    b.node.shutdown().await;
}
