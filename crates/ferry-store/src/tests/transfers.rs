//! One-shot sends.

use super::*;

fn transfer(id: u8, outgoing: bool) -> TransferRecord {
    let data = b"hello world";
    TransferRecord {
        id: TransferId([id; 16]),
        peer: PEER,
        outgoing,
        created_ms: 5,
        files: vec![ferry_proto::wire::SendFile {
            path: p("dir/a.txt"),
            size: data.len() as u64,
            mtime_ns: 7,
            executable: false,
            hash: ChunkHash::of(data),
            chunks: vec![ferry_proto::ChunkInfo { hash: ChunkHash::of(data), len: data.len() as u32 }],
        }],
        dirs: vec![p("dir")],
        sources: if outgoing { vec!["/src/dir/a.txt".into()] } else { vec![] },
        state: TransferState::Queued,
        done_bytes: 0,
        notify: None,
        placed: vec![],
        finished_ms: None,
    }
}

#[test]
fn transfers_persist_dedupe_and_update() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        assert!(store.add_transfer(&transfer(1, true)).unwrap());
        assert!(!store.add_transfer(&transfer(1, false)).unwrap(), "a redelivered offer is not stored twice");
        assert!(store.add_transfer(&transfer(2, false)).unwrap());
        let t = store
            .update_transfer(&TransferId([1; 16]), |t| {
                t.state = TransferState::Active;
                t.done_bytes = 4;
                true
            })
            .unwrap();
        assert_eq!((t.state, t.done_bytes), (TransferState::Active, 4));
        assert!(matches!(store.update_transfer(&TransferId([9; 16]), |_| true), Err(StoreError::NotFound(_))));
        store.set_auto_accept(&PEER, true).unwrap();
    }
    let store = open(&dir);
    let all = store.transfers().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].state, TransferState::Active);
    assert!(all[0].outgoing && !all[1].outgoing);
    assert_eq!(all[0].total_bytes(), 11);
    assert!(store.auto_accept(&PEER).unwrap());
    assert!(!store.auto_accept(&PEER2).unwrap());
    store.set_auto_accept(&PEER, false).unwrap();
    assert!(!store.auto_accept(&PEER).unwrap());
}
