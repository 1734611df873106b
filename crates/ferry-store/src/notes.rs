//! Quick notes exchanged with paired devices: each conversation in the order its notes were
//! stored, their delivery state, and which devices are muted.

use std::ops::Bound;

use ferry_proto::{DeviceId, NoteId};
use redb::ReadableTable;

use crate::schema::{self, META, META_NEXT_NOTE_ORDER, MUTED, NOTE_ORDER, NOTES, encode, get, prefix_bounds};
use crate::{NoteRecord, NoteState, Store, StoreError};

impl Store {
    /// Stores a new note at the end of its conversation (its `order` is assigned here), in one
    /// transaction. Returns false, storing nothing, if a note with this id exists (a redelivery).
    pub fn add_note(&self, note: &NoteRecord) -> Result<bool, StoreError> {
        self.write(|txn| {
            let mut notes = txn.open_table(NOTES)?;
            if notes.get(note.id.0.as_slice())?.is_some() {
                return Ok(false);
            }
            let mut meta = txn.open_table(META)?;
            let order = match meta.get(META_NEXT_NOTE_ORDER.as_bytes())? {
                Some(v) => u64::from_be_bytes(
                    v.value().try_into().map_err(|_| StoreError::Corrupt("next_note_order is not 8 bytes".into()))?,
                ),
                None => 1,
            };
            meta.insert(META_NEXT_NOTE_ORDER.as_bytes(), (order + 1).to_be_bytes().as_slice())?;
            let mut rec = note.clone();
            rec.order = order;
            notes.insert(note.id.0.as_slice(), encode("note", &rec)?.as_slice())?;
            txn.open_table(NOTE_ORDER)?
                .insert(schema::note_order_key(&note.peer, order).as_slice(), note.id.0.as_slice())?;
            Ok(true)
        })
    }

    pub fn note(&self, id: &NoteId) -> Result<Option<NoteRecord>, StoreError> {
        self.read(|txn| get(&txn.open_table(NOTES)?, &id.0, "note"))
    }

    /// Replaces the state and receipt flag of an existing note; [`StoreError::NotFound`] if none.
    pub fn set_note_state(
        &self,
        id: &NoteId,
        state: NoteState,
        receipt_pending: bool,
    ) -> Result<NoteRecord, StoreError> {
        self.write(|txn| {
            let mut notes = txn.open_table(NOTES)?;
            let mut rec: NoteRecord =
                get(&notes, &id.0, "note")?.ok_or_else(|| StoreError::NotFound(format!("note {:?}", id)))?;
            rec.state = state;
            rec.receipt_pending = receipt_pending;
            notes.insert(id.0.as_slice(), encode("note", &rec)?.as_slice())?;
            Ok(rec)
        })
    }

    /// The conversation with `peer` (or every conversation), in the order the notes were stored.
    pub fn notes(&self, peer: Option<&DeviceId>) -> Result<Vec<NoteRecord>, StoreError> {
        let bounds = match peer {
            Some(p) => prefix_bounds(&p.0),
            None => (Bound::Unbounded, Bound::Unbounded),
        };
        self.read(|txn| {
            let order = txn.open_table(NOTE_ORDER)?;
            let notes = txn.open_table(NOTES)?;
            let mut out = Vec::new();
            for item in order.range::<&[u8]>(schema::as_slices(&bounds))? {
                let (_, id) = item?;
                let note: NoteRecord = get(&notes, id.value(), "note")?
                    .ok_or_else(|| StoreError::Corrupt("note order entry without its note".into()))?;
                out.push(note);
            }
            Ok(out)
        })
    }

    pub fn set_muted(&self, device: &DeviceId, muted: bool) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(MUTED)?;
            if muted {
                t.insert(device.0.as_slice(), b"".as_slice())?;
            } else {
                t.remove(device.0.as_slice())?;
            }
            Ok(())
        })
    }

    pub fn is_muted(&self, device: &DeviceId) -> Result<bool, StoreError> {
        self.read(|txn| Ok(txn.open_table(MUTED)?.get(device.0.as_slice())?.is_some()))
    }
}
