//! Devices.

use super::*;

#[test]
fn remove_device() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.put_device(&device(PEER)).unwrap();
    store.put_device(&device(PEER2)).unwrap();
    store.remove_device(&PEER).unwrap();
    assert_eq!(store.device(&PEER).unwrap(), None);
    assert_eq!(store.devices().unwrap(), vec![device(PEER2)]);
}

/// A removal unpairs the device, drops it from every share it was in (others keep their
/// members), drops its prompts (not others'), keeps the local index and versions, and is
/// recorded until cleared.
#[test]
fn record_removal_withdraws_trust_in_one_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.put_device(&device(PEER)).unwrap();
    store.put_device(&device(PEER2)).unwrap();
    let mut both = share(S1);
    both.devices = vec![PEER, PEER2];
    store.put_share(&both).unwrap();
    let mut other = share(S2);
    other.devices = vec![PEER2];
    store.put_share(&other).unwrap();
    store.commit_local(&S1, &[update("keep.txt")], &[]).unwrap();
    let prompt = |id, device| PromptRecord {
        id,
        device,
        created_ms: 1,
        kind: PromptKind::ShareOffer { share: S2, label: "x".into() },
    };
    store.put_prompt(&prompt(1, PEER)).unwrap();
    store.put_prompt(&prompt(2, PEER2)).unwrap();

    let removal = RemovalRecord { device: PEER, removed_ms: 7, by: RemovedBy::Us };
    let changes = store.record_removal(&removal).unwrap();

    let d = store.device(&PEER).unwrap().unwrap();
    assert!(!d.paired, "unpaired");
    assert_eq!(d.addresses, device(PEER).addresses, "the rest of the record stays");
    assert_eq!(store.device(&PEER2).unwrap(), Some(device(PEER2)));
    assert_eq!(store.share(&S1).unwrap().unwrap().devices, vec![PEER2]);
    assert_eq!(store.share(&S2).unwrap().unwrap().devices, vec![PEER2]);
    assert_eq!(changes.shares.iter().map(|s| s.id).collect::<Vec<_>>(), vec![S1]);
    assert_eq!(changes.prompts.iter().map(|p| p.id).collect::<Vec<_>>(), vec![1]);
    assert_eq!(store.prompts().unwrap().iter().map(|p| p.id).collect::<Vec<_>>(), vec![2]);
    assert_eq!(store.local_files(&S1).unwrap().len(), 1, "the index stays");
    assert_eq!(store.removal(&PEER).unwrap(), Some(removal.clone()));
    assert_eq!(store.removals().unwrap(), vec![removal]);

    store.clear_removal(&PEER).unwrap();
    assert_eq!(store.removal(&PEER).unwrap(), None);

    // A removal told by a device this one does not know is kept as well.
    let told = RemovalRecord { device: ME, removed_ms: 8, by: RemovedBy::Them { name: "desk".into() } };
    store.record_removal(&told).unwrap();
    assert_eq!(store.device(&ME).unwrap(), None);
    assert_eq!(store.removal(&ME).unwrap(), Some(told));
}
