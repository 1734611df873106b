//! The node API the desktop app adds: pausing and resuming syncing (held changes arrive on
//! resume, the flag survives a restart) and the settings / first-run calls.

use ferry_e2e::*;
use ferry_node::Event;
use ferry_node::settings::{FirstRunDto, SettingsUpdateDto};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_holds_changes_until_resume_and_survives_restart() {
    let a = TestNode::start("alpha").await;
    let b = TestNode::start("beta").await;
    pair(&a, &b).await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let share = share(&a, da.path(), &b, db.path(), None).await;
    std::fs::write(da.path().join("first.txt"), b"before pause").unwrap();
    wait_for(&[&a, &b], "first.txt on b", || async { db.path().join("first.txt").exists() }).await;

    let mut events = b.node.subscribe();
    assert!(b.node.set_paused(true).await.unwrap());
    assert!(b.node.status().await.unwrap().paused);
    let mut saw_pause = false;
    while let Ok(e) = events.try_recv() {
        saw_pause |= e == Event::SyncPaused { paused: true };
    }
    assert!(saw_pause, "pausing emits SyncPaused");

    // A's change reaches B's index but is not applied while B is paused.
    let mut ev = b.node.subscribe();
    std::fs::write(da.path().join("held.txt"), b"held until resume").unwrap();
    let sid = share.clone();
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            match ev.recv().await {
                Ok(Event::IndexReceived { share, records, .. }) if share == sid && records > 0 => break,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("events closed: {e}"),
            }
        }
    })
    .await
    .expect("the index for held.txt reaches b");
    assert!(!db.path().join("held.txt").exists(), "nothing is written while paused");
    let st = b.node.status().await.unwrap();
    assert_eq!(st.shares[0].state, "paused");

    // The flag is persisted: a restart stays paused.
    let (home_b, guard) = b.stop().await;
    let _keep = guard;
    let b = TestNode::start_at("beta", &home_b).await;
    assert!(b.node.status().await.unwrap().paused, "paused after restart");
    assert!(!db.path().join("held.txt").exists());

    assert!(!b.node.set_paused(false).await.unwrap());
    wait_for(&[&a, &b], "held.txt after resume", || async {
        std::fs::read(db.path().join("held.txt")).ok().as_deref() == Some(&b"held until resume"[..])
    })
    .await;
    assert!(!b.node.status().await.unwrap().paused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_first_run_and_live_name() {
    let a = TestNode::start("alpha").await;
    let s = a.node.settings().await.unwrap();
    assert!(!s.configured, "a fresh home is not configured");
    let folder = tempfile::tempdir().unwrap();
    let default = folder.path().join("Ferry");
    let share = a
        .node
        .first_run(FirstRunDto { name: "Laptop".into(), owner: "ann".into(), folder: default.display().to_string() })
        .await
        .unwrap();
    assert!(default.is_dir(), "the default folder is created");
    assert_eq!(share.path, default.canonicalize().unwrap().display().to_string());
    // Running it again does not add a second share.
    let again = a
        .node
        .first_run(FirstRunDto { name: "Laptop".into(), owner: "ann".into(), folder: default.display().to_string() })
        .await
        .unwrap();
    assert_eq!(again.id, share.id);
    assert_eq!(a.node.share_list().await.unwrap().len(), 1);

    let s = a.node.settings().await.unwrap();
    assert!(s.configured);
    assert_eq!((s.name.as_str(), s.owner.as_str()), ("Laptop", "ann"));
    assert_eq!(a.node.id_info().name, "Laptop", "the name applies at once");
    let toml = std::fs::read_to_string(a.home.join("ferry.toml")).unwrap();
    assert!(toml.contains("name = \"Laptop\"") && toml.contains("owner = \"ann\""), "{toml}");

    let bad = a
        .node
        .save_settings(SettingsUpdateDto {
            name: " ".into(),
            owner: "ann".into(),
            listen: None,
            mdns: None,
            kdeconnect: None,
            localsend: None,
            localsend_pin: None,
            inbox: None,
        })
        .await;
    assert!(bad.is_err(), "an empty name is refused");
    let bad = a
        .node
        .save_settings(SettingsUpdateDto {
            name: "x".into(),
            owner: "ann".into(),
            listen: Some("nope".into()),
            mdns: None,
            kdeconnect: None,
            localsend: None,
            localsend_pin: None,
            inbox: None,
        })
        .await;
    assert!(bad.unwrap_err().message.contains("IP:PORT"));
    let s = a
        .node
        .save_settings(SettingsUpdateDto {
            name: "Desk".into(),
            owner: "ann".into(),
            listen: Some("127.0.0.1:4000".into()),
            mdns: None,
            kdeconnect: None,
            localsend: None,
            localsend_pin: None,
            inbox: None,
        })
        .await
        .unwrap();
    assert_eq!(s.listen, "127.0.0.1:4000");
    assert_ne!(s.listening_on, "127.0.0.1:4000", "the new port applies at the next start");
}
