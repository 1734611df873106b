//! Removing a device (`Node::device_remove`, `ferry devices remove`): the removed device can no
//! longer sync, connect or send notes, whether it was connected at the time or away; it shows
//! "removed by NAME"; no file is deleted on either side; its certificate is refused at any
//! address; only a pairing the remover starts lets it back in. And the cap on connections from
//! unpaired devices.

use std::path::Path;

use ferry_e2e::rogue::{closed_within_wait, drain};
use ferry_e2e::*;
use ferry_net::{Endpoint, Identity, NetError, PeerConn};
use ferry_node::Event;
use ferry_node::api::{DeviceDto, InviteDto, NoteSendDto, PendingDto};
use ferry_proto::wire::{Hello, PROTOCOL_VERSION};

async fn device(n: &TestNode, id: &str) -> DeviceDto {
    n.node.devices().await.unwrap().into_iter().find(|d| d.id == id).expect("device is known")
}

async fn members(n: &TestNode, share: &str) -> Vec<String> {
    n.node.share_list().await.unwrap().into_iter().find(|s| s.id == share).expect("share").devices
}

/// `n` shows `id` as having removed it, under `by`.
async fn removed_by(n: &TestNode, id: &str, by: &str) -> bool {
    let d = device(n, id).await;
    d.removed_by.as_deref() == Some(by) && !d.paired && !d.connected
}

/// Whether `n` emitted a connection of `device` among `events`.
fn connected_in(events: &[Event], device: &str) -> bool {
    events.iter().any(|e| matches!(e, Event::DeviceConnected { device: d, .. } if d == device))
}

fn hello(name: &str) -> Hello {
    Hello { protocol: PROTOCOL_VERSION, name: name.into(), owner: "tester".into() }
}

/// Dials `n` from `ep` (pinned to `n`'s id) and exchanges Hellos.
async fn dial(ep: &Endpoint, n: &TestNode) -> Result<PeerConn, NetError> {
    let conn = ep.connect(n.node.listen_addr(), Some(n.node.device_id())).await?;
    conn.handshake(&hello("visitor")).await?;
    Ok(conn)
}

/// `n`'s certificate, dialing from a new socket (another address than `n`'s own).
fn endpoint_with_identity_of(home: &Path) -> Endpoint {
    let ident = Identity::load_or_create(home).expect("the device's identity");
    Endpoint::bind(&ident, "127.0.0.1:0".parse().unwrap()).unwrap()
}

/// Re-pairs `a` with `b` from `a` (the remover) and puts both back in the share.
async fn repair_and_reshare(a: &TestNode, b: &TestNode, share: &str) {
    pair(a, b).await;
    for (from, to) in [(a, b), (b, a)] {
        from.node.share_invite(InviteDto { share: share.into(), device: to.id() }).await.expect("invite again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connected_device_is_cut_off_at_once_and_only_the_remover_can_pair_again() {
    let (a, b, da, db, share) = two_sharing().await;
    std::fs::write(da.path().join("both.txt"), b"synced before").unwrap();
    wait_for(&[&a, &b], "both.txt on b", || async { db.path().join("both.txt").exists() }).await;
    wait_for(&[&a, &b], "in sync", || async { in_sync(&a, &share).await && in_sync(&b, &share).await }).await;
    let (tree_a, tree_b) = (tree(da.path()), tree(db.path()));

    let removed = a.node.device_remove(&b.name).await.expect("remove beta");
    assert!(removed.removed && !removed.paired, "{removed:?}");
    let mut a_events = a.node.subscribe();
    assert!(members(&a, &share).await.is_empty(), "beta left alpha's share");
    let a_id = a.id();
    wait_for(&[&a, &b], "beta shows it was removed by alpha", || removed_by(&b, &a_id, "alpha")).await;
    assert!(members(&b, &share).await.is_empty(), "alpha left beta's share");
    assert!(!device(&a, &b.id()).await.connected);
    let again = a.node.device_remove(&b.id()).await.unwrap_err();
    assert!(again.message.contains("already removed"), "{again:?}");

    // Nothing deleted, on either side.
    assert_eq!(tree(da.path()), tree_a);
    assert_eq!(tree(db.path()), tree_b);

    // beta can send no note, and pairing from beta is refused by alpha itself.
    let err = b.node.note_send(NoteSendDto { pin: None, device: a.id(), text: "hi".into() }).await.unwrap_err();
    assert!(err.message.contains("not paired"), "{err:?}");
    let err = b.node.pair(&a.addr()).await.unwrap_err();
    assert!(err.message.contains("alpha removed this device"), "{err:?}");

    // beta's certificate from a new address is refused before it reaches anything.
    let visitor = endpoint_with_identity_of(&b.home);
    match dial(&visitor, &a).await {
        Err(NetError::Removed { by }) => assert_eq!(by, "alpha"),
        other => panic!("beta's certificate got {other:?}"),
    }

    // An edit on beta: beta indexes it, and it never reaches alpha (no connection was made).
    std::fs::write(db.path().join("from_beta.txt"), b"written after the removal").unwrap();
    b.node.rescan_all();
    wait_for(&[&b], "beta indexed its edit", || async {
        b.node.status().await.unwrap().shares.iter().any(|s| s.id == share && s.files == 2)
    })
    .await;
    assert!(!connected_in(&drain(&mut a_events), &b.id()), "alpha accepted no connection from beta");
    assert!(a.node.pending().await.unwrap().is_empty(), "beta raised no prompt on alpha");
    assert!(!da.path().join("from_beta.txt").exists());

    // alpha pairs again, deliberately: beta accepts, both are back in the share and the edit
    // beta made meanwhile arrives.
    repair_and_reshare(&a, &b, &share).await;
    let d = device(&a, &b.id()).await;
    assert!(d.paired && !d.removed, "{d:?}");
    assert_eq!(device(&b, &a.id()).await.removed_by, None);
    wait_for(&[&a, &b], "beta's edit reaches alpha after the re-pair", || async {
        std::fs::read(da.path().join("from_beta.txt")).ok().as_deref() == Some(b"written after the removal".as_slice())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_removed_while_away_learns_it_at_its_next_dial() {
    let (a, b, da, db, share) = two_sharing().await;
    std::fs::write(da.path().join("kept.txt"), b"kept").unwrap();
    wait_for(&[&a, &b], "kept.txt on b", || async { db.path().join("kept.txt").exists() }).await;
    let b_id = b.id();
    let (home_b, _guard_b) = b.stop().await;
    wait_for(&[&a], "alpha sees beta gone", || async { !connected(&a, &b_id).await }).await;

    a.node.device_remove(&b_id).await.expect("remove beta while away");
    // beta edits while away, then comes back (a new port) still believing it is paired.
    std::fs::write(db.path().join("offline_edit.txt"), b"made while away").unwrap();
    let mut a_events = a.node.subscribe();
    let b = TestNode::start_at("beta", &home_b).await;
    let a_id = a.id();
    wait_for(&[&a, &b], "beta learns alpha removed it", || removed_by(&b, &a_id, "alpha")).await;
    assert!(members(&b, &share).await.is_empty());
    assert!(!connected_in(&drain(&mut a_events), &b_id), "alpha never accepted beta's dial");
    assert!(!da.path().join("offline_edit.txt").exists());
    assert_eq!(std::fs::read(db.path().join("kept.txt")).unwrap(), b"kept", "beta's files stay");
    assert_eq!(std::fs::read(da.path().join("kept.txt")).unwrap(), b"kept", "alpha's files stay");

    // A restart of alpha keeps refusing beta's certificate.
    let (home_a, _guard_a) = a.stop().await;
    let a = TestNode::start_at("alpha", &home_a).await;
    assert!(device(&a, &b_id).await.removed);
    let visitor = endpoint_with_identity_of(&home_b);
    assert!(matches!(dial(&visitor, &a).await, Err(NetError::Removed { .. })));
}

/// Connections from unpaired devices are capped (8): more are closed at once, the paired
/// devices sync on, and slots come back when those connections go.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unpaired_connections_are_capped_and_paired_sync_goes_on() {
    let (a, b, da, db, _share) = two_sharing().await;
    let strangers: Vec<Endpoint> = (0..9)
        .map(|_| Endpoint::bind(&Identity::generate().unwrap(), "127.0.0.1:0".parse().unwrap()).unwrap())
        .collect();
    let mut held = Vec::new();
    for s in &strangers[..8] {
        held.push(dial(s, &a).await.expect("an unpaired device within the cap gets a Hello"));
    }
    // The ninth is closed without a Hello, saying why.
    let ninth = strangers[8].connect(a.node.listen_addr(), Some(a.node.device_id())).await.unwrap();
    assert!(ninth.handshake(&hello("ninth")).await.is_err(), "the ninth unpaired connection gets no Hello");
    let why = closed_within_wait(&ninth).await;
    assert!(why.contains("too many unpaired connections"), "{why}");

    // The paired devices sync as usual meanwhile.
    std::fs::write(da.path().join("during.txt"), b"while strangers knock").unwrap();
    wait_for(&[&a, &b], "during.txt on beta", || async { db.path().join("during.txt").exists() }).await;

    // The held ones go: their slots free up for the next unpaired device.
    for c in held {
        c.close("done");
    }
    let late = Endpoint::bind(&Identity::generate().unwrap(), "127.0.0.1:0".parse().unwrap()).unwrap();
    wait_some(&[&a], "a slot for a new unpaired device", || {
        let (late, a) = (late.clone(), &a);
        async move { dial(&late, a).await.ok() }
    })
    .await;
    let prompts: Vec<PendingDto> = a.node.pending().await.unwrap();
    assert!(prompts.is_empty(), "knocking raised no prompt: {prompts:?}");
}
