//! Opening the database: persistence across reopen, schema versions and migration, and values
//! this build cannot decode.

use super::*;

#[test]
fn store_is_send_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Store>();
    assert_send_sync::<StoreError>();
}

#[test]
fn reopen_persists_data() {
    let dir = tempfile::tempdir().unwrap();
    let epoch;
    {
        let store = open(&dir);
        store.set_meta("device_name", b"laptop").unwrap();
        store.put_device(&device(PEER)).unwrap();
        store.put_share(&share(S1)).unwrap();
        epoch = store.share_state(&S1).unwrap().epoch;
        assert_ne!(epoch, 0);
        assert_eq!(store.commit_local(&S1, &[update("a"), update("b")], &[version(S1, "a", 5)]).unwrap(), Seq(2));
        store.put_remote(&S1, &PEER, 77, &[rec("r", 4)]).unwrap();
        assert_eq!(store.next_prompt_id().unwrap(), 1);
    }
    let store = open(&dir);
    assert_eq!(store.get_meta("device_name").unwrap().as_deref(), Some(&b"laptop"[..]));
    assert_eq!(store.get_meta("missing").unwrap(), None);
    assert_eq!(store.device(&PEER).unwrap(), Some(device(PEER)));
    assert_eq!(store.devices().unwrap(), vec![device(PEER)]);
    assert_eq!(store.share(&S1).unwrap(), Some(share(S1)));
    assert_eq!(store.share_state(&S1).unwrap(), ShareState { epoch, max_seq: 2 });
    assert_eq!(paths(&store.local_since(&S1, Seq(0), 10).unwrap()), [("a".into(), 1), ("b".into(), 2)]);
    assert_eq!(store.versions(&S1, &p("a")).unwrap(), vec![version(S1, "a", 5)]);
    assert_eq!(store.remote_state(&S1, &PEER).unwrap(), RemoteState { epoch: 77, max_seq: 4 });
    assert_eq!(store.remote_files(&S1, &PEER).unwrap(), vec![rec("r", 4)]);
    assert_eq!(store.next_prompt_id().unwrap(), 2, "prompt ids continue after reopen");
}

#[test]
fn unknown_or_corrupt_values_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.put_device(&device(PEER)).unwrap();
    let good = schema::encode("device", &device(PEER)).unwrap();
    let mut future = good.clone();
    future[0] = 1; // a `V2` tag this build does not know
    for bad in [future, vec![0], vec![], vec![0xFF; 5]] {
        let txn = store.db.begin_write().unwrap();
        txn.open_table(DEVICES).unwrap().insert(PEER2.0.as_slice(), bad.as_slice()).unwrap();
        txn.commit().unwrap();
        assert!(matches!(store.device(&PEER2), Err(StoreError::Decode { what: "device", .. })));
        assert!(store.devices().is_err());
        assert_eq!(store.device(&PEER).unwrap(), Some(device(PEER)), "other values still readable");
    }

    // A stored path that is not a valid RelPath is refused by deserialization, not trusted.
    store.put_share(&share(S1)).unwrap();
    store.commit_local(&S1, &[update("a")], &[]).unwrap();
    let mut evil = entry("a");
    evil.record.path = p("a");
    let mut bytes = schema::encode("local entry", &evil).unwrap();
    let pos = bytes.windows(2).position(|w| w == [1, b'a']).unwrap();
    bytes[pos + 1] = b'/'; // path "/" (absolute)
    let txn = store.db.begin_write().unwrap();
    txn.open_table(LOCAL).unwrap().insert(schema::local_key(&S1, &p("a")).as_slice(), bytes.as_slice()).unwrap();
    txn.commit().unwrap();
    assert!(matches!(store.local_files(&S1), Err(StoreError::Decode { .. })));
    assert!(store.local_since(&S1, Seq(0), 10).is_err());
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.redb");
    drop(Store::open(&path).unwrap());
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert(META_SCHEMA_VERSION.as_bytes(), 99u32.to_be_bytes().as_slice()).unwrap();
        txn.commit().unwrap();
    }
    match Store::open(&path) {
        Err(StoreError::TooNew { found: 99, supported: schema::SCHEMA_VERSION }) => {}
        Err(e) => panic!("expected TooNew, got {e}"),
        Ok(_) => panic!("expected TooNew, opened fine"),
    }
}

#[test]
fn fresh_database_is_at_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert_eq!(store.get_meta(META_SCHEMA_VERSION).unwrap(), Some(schema::SCHEMA_VERSION.to_be_bytes().to_vec()));
    assert!(matches!(store.set_meta(META_SCHEMA_VERSION, b"x"), Err(StoreError::Invalid(_))));
    store.set_meta("k", b"1").unwrap();
    store.set_meta("k", b"2").unwrap();
    assert_eq!(store.get_meta("k").unwrap(), Some(b"2".to_vec()));
}

#[test]
fn v2_database_migrates_to_v3_keeping_notes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.redb");
    {
        // A v2 database: every table but the v3 ones, version 2, one note.
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        for t in schema::ALL_TABLES
            .iter()
            .filter(|t| !matches!(t.to_string().as_str(), "transfers" | "auto_accept" | "share_settings" | "removed"))
        {
            txn.open_table(*t).unwrap();
        }
        txn.open_table(META).unwrap().insert(META_SCHEMA_VERSION.as_bytes(), 2u32.to_be_bytes().as_slice()).unwrap();
        txn.commit().unwrap();
    }
    {
        let store = Store::open(&path).unwrap();
        store.add_note(&note(4, PEER, true)).unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.get_meta(META_SCHEMA_VERSION).unwrap(), Some(schema::SCHEMA_VERSION.to_be_bytes().to_vec()));
    assert_eq!(store.notes(None).unwrap().len(), 1);
    assert!(store.removals().unwrap().is_empty(), "v4 adds the removed devices table");
    assert!(store.transfers().unwrap().is_empty());
    assert!(!store.auto_accept(&PEER).unwrap());
}

/// A database file made unusable three ways (garbage, cut to half, garbage after a valid header)
/// is refused as `Damaged`, and the refusal leaves the file byte for byte as it was.
#[test]
fn a_damaged_file_is_refused_as_damaged_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.redb");
    {
        let store = Store::open(&path).unwrap();
        store.put_share(&share(S1)).unwrap();
        store.commit_local(&S1, &[update("a"), update("b")], &[]).unwrap();
    }
    let good = std::fs::read(&path).unwrap();
    let garbage =
        |seed: u8, len: usize| -> Vec<u8> { (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect() };
    let half = good[..good.len() / 2].to_vec();
    let mut after_header = good.clone();
    after_header[4096..].copy_from_slice(&garbage(7, good.len() - 4096));
    for (what, bytes) in [("garbage", garbage(1, 100_000)), ("half", half), ("after header", after_header)] {
        std::fs::write(&path, &bytes).unwrap();
        match Store::open(&path) {
            Err(StoreError::Damaged(why)) => assert!(!why.is_empty(), "{what}"),
            Err(e) => panic!("{what}: not refused as damaged: {e}"),
            Ok(_) => panic!("{what}: opened"),
        }
        assert!(std::fs::read(&path).unwrap() == bytes, "{what}: the file was changed");
    }
}

#[test]
fn kde_devices_pair_and_unpair_with_their_device_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("ferry.redb")).unwrap();
    let k = KdeDeviceRecord {
        kde_id: "abc_123".into(),
        device_type: "phone".into(),
        protocol: 7,
        cert_der: None,
        address: Some("10.0.0.2:1716".into()),
    };
    // Recording it with a pin pairs it; without, it is not paired.
    let pinned = KdeDeviceRecord { cert_der: Some(vec![9]), ..k.clone() };
    assert!(store.put_kde_device(&pinned, "Pixel").unwrap().paired);
    let d = store.put_kde_device(&k, "Pixel").unwrap();
    assert_eq!(d.id, KdeDeviceRecord::ferry_id("abc_123"));
    assert_ne!(d.id, KdeDeviceRecord::ferry_id("abc_124"));
    assert!(!d.paired);
    store.set_kde_paired(&d.id, Some(vec![1, 2, 3])).unwrap();
    assert!(store.device(&d.id).unwrap().unwrap().paired);
    assert_eq!(store.kde_device(&d.id).unwrap().unwrap().cert_der, Some(vec![1, 2, 3]));
    // A later sighting updates the name and keeps the pairing.
    let d2 = store.put_kde_device(&KdeDeviceRecord { cert_der: Some(vec![1, 2, 3]), ..k.clone() }, "Pixel 8").unwrap();
    assert!(d2.paired);
    assert_eq!(d2.name, "Pixel 8");
    store.set_kde_paired(&d.id, None).unwrap();
    assert!(!store.device(&d.id).unwrap().unwrap().paired);
    assert_eq!(store.kde_devices().unwrap().len(), 1);
    assert!(store.set_kde_paired(&KdeDeviceRecord::ferry_id("nope"), None).is_err());
    // Pairing a device first seen on this link (the node's `mark_paired`): one put with the pin.
    let fresh = KdeDeviceRecord { kde_id: "new_456".into(), cert_der: Some(vec![4]), ..k.clone() };
    assert!(store.put_kde_device(&fresh, "Tablet").unwrap().paired);
    assert!(store.device(&KdeDeviceRecord::ferry_id("new_456")).unwrap().unwrap().paired);
}

fn ls_record(fingerprint: &str, alias: &str, seen: i64) -> LsDeviceRecord {
    LsDeviceRecord {
        fingerprint: fingerprint.into(),
        alias: alias.into(),
        device_model: Some("Pixel".into()),
        device_type: "mobile".into(),
        address: Some("10.0.0.2:53317".into()),
        favorite: false,
        first_seen_ms: seen,
        last_seen_ms: seen,
    }
}

#[test]
fn localsend_devices_are_known_by_fingerprint_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("ferry.redb")).unwrap();
    let a = ls_record("AB01", "Phone", 1);
    // Case does not make another device; another certificate under the same alias does.
    assert_eq!(LsDeviceRecord::ferry_id("ab01"), a.id());
    assert_ne!(LsDeviceRecord::ferry_id("AB02"), a.id());
    // Seen only: remembered, no device row.
    store.put_ls_device(&a, false).unwrap();
    assert!(store.device(&a.id()).unwrap().is_none());
    assert_eq!(store.ls_device(&a.id()).unwrap().unwrap(), a);
    // About to send: a device row under its alias, never paired.
    store.put_ls_device(&a, true).unwrap();
    let row = store.device(&a.id()).unwrap().unwrap();
    assert_eq!((row.name.as_str(), row.paired), ("Phone", false));
    store.set_ls_favorite(&a.id(), true).unwrap();
    assert!(store.ls_device(&a.id()).unwrap().unwrap().favorite);
    // A flood of made-up devices: the table stays bounded and keeps the favorite.
    for i in 0..(MAX_LOCALSEND_DEVICES + 20) {
        store.put_ls_device(&ls_record(&format!("F{i:04}"), "x", 10 + i as i64), false).unwrap();
    }
    let all = store.ls_devices().unwrap();
    assert_eq!(all.len(), MAX_LOCALSEND_DEVICES);
    assert!(all.iter().any(|r| r.id() == a.id() && r.favorite));
    // The stalest were forgotten, the newest kept.
    assert!(!all.iter().any(|r| r.fingerprint == "F0000"));
    assert!(all.iter().any(|r| r.fingerprint == format!("F{:04}", MAX_LOCALSEND_DEVICES + 19)));
    store.forget_ls_device(&a.id()).unwrap();
    assert!(store.ls_device(&a.id()).unwrap().is_none());
    assert!(store.device(&a.id()).unwrap().is_none());
    assert!(store.set_ls_favorite(&a.id(), true).is_err());
}
