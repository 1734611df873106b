//! Notes: conversation order, redelivery and state changes.

use super::*;

#[test]
fn notes_keep_conversation_order_and_dedupe_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let (a, b) = (DeviceId([1; 32]), DeviceId([2; 32]));
    for i in [9u8, 3, 7] {
        assert!(store.add_note(&note(i, a, true)).unwrap());
    }
    assert!(store.add_note(&note(5, b, false)).unwrap());
    // A redelivery stores nothing and keeps the first copy.
    let mut again = note(3, a, true);
    again.text = "changed".into();
    assert!(!store.add_note(&again).unwrap());
    let conv: Vec<u8> = store.notes(Some(&a)).unwrap().iter().map(|n| n.id.0[0]).collect();
    assert_eq!(conv, vec![9, 3, 7]);
    assert_eq!(store.note(&NoteId([3; 16])).unwrap().unwrap().text, "note 3");
    assert_eq!(store.notes(None).unwrap().len(), 4);
    assert_eq!(store.notes(Some(&b)).unwrap().len(), 1);
    assert!(matches!(store.set_meta(schema::META_NEXT_NOTE_ORDER, b"x"), Err(StoreError::Invalid(_))));
}

#[test]
fn note_state_changes_persist_and_unknown_note_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let a = DeviceId([1; 32]);
    {
        let store = open(&dir);
        store.add_note(&note(1, a, false)).unwrap();
        let rec = store.set_note_state(&NoteId([1; 16]), NoteState::Read, true).unwrap();
        assert_eq!((rec.state, rec.receipt_pending), (NoteState::Read, true));
        assert!(matches!(store.set_note_state(&NoteId([2; 16]), NoteState::Read, false), Err(StoreError::NotFound(_))));
        store.set_muted(&a, true).unwrap();
    }
    let store = open(&dir);
    let rec = store.note(&NoteId([1; 16])).unwrap().unwrap();
    assert_eq!((rec.state, rec.receipt_pending), (NoteState::Read, true));
    assert!(store.is_muted(&a).unwrap());
    store.set_muted(&a, false).unwrap();
    assert!(!store.is_muted(&a).unwrap());
}
