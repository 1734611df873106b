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
