//! Apply intents: what the share actor is about to write over a path, recorded durably before
//! any of a pull pass's renames and cleared after the pass's index commits. After a crash they
//! tell a file Ferry was applying (its content is then the old one, the new one, or, where the
//! disk lied about durability, something torn) from a user's edit, so that the next scan does
//! not take an unfinished apply for a new version of this device.
//!
//! The `applying` table is created on first write; it needs no schema version (a database
//! without it has no intent, and an older Ferry ignores it).

use ferry_proto::{ChunkHash, RelPath, ShareId};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use crate::schema::{as_slices, decode, encode, local_key, prefix_bounds, remove_range, share_key};
use crate::{Store, StoreError};

/// `share id (10) ++ path` -> [`ApplyIntent`].
pub const APPLYING: TableDefinition<&[u8], &[u8]> = TableDefinition::new("applying");

/// A file the share actor is about to replace with content from a peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyIntent {
    pub path: RelPath,
    /// The content being written.
    pub new: ChunkHash,
    /// The content the index holds at the path (None: no live file there).
    pub old: Option<ChunkHash>,
}

impl Store {
    /// Records `intents` for `share` in one transaction (durable when this returns).
    pub fn record_intents(&self, share: &ShareId, intents: &[ApplyIntent]) -> Result<(), StoreError> {
        if intents.is_empty() {
            return Ok(());
        }
        self.write(|txn| {
            let mut t = txn.open_table(APPLYING)?;
            for i in intents {
                t.insert(local_key(share, &i.path).as_slice(), encode("apply intent", i)?.as_slice())?;
            }
            Ok(())
        })
    }

    /// The intents recorded for `share` and not cleared (none if the table was never made).
    pub fn intents(&self, share: &ShareId) -> Result<Vec<ApplyIntent>, StoreError> {
        self.read(|txn| {
            let t = match txn.open_table(APPLYING) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for item in t.range::<&[u8]>(as_slices(&prefix_bounds(&share_key(share))))? {
                out.push(decode("apply intent", item?.1.value())?);
            }
            Ok(out)
        })
    }

    /// Forgets every intent of `share` (its pass is committed, or its leftovers were checked).
    pub fn clear_intents(&self, share: &ShareId) -> Result<(), StoreError> {
        self.write(|txn| remove_range(&mut txn.open_table(APPLYING)?, &prefix_bounds(&share_key(share))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_are_kept_per_share_until_cleared() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("db")).unwrap();
        let (a, b) = (ShareId([1; 10]), ShareId([2; 10]));
        assert!(s.intents(&a).unwrap().is_empty(), "no table yet");
        let i = |p: &str, n: u8| ApplyIntent { path: RelPath::new(p).unwrap(), new: ChunkHash([n; 32]), old: None };
        s.record_intents(&a, &[i("x", 1), i("y/z", 2)]).unwrap();
        s.record_intents(&b, &[i("x", 3)]).unwrap();
        assert_eq!(s.intents(&a).unwrap(), vec![i("x", 1), i("y/z", 2)]);
        s.clear_intents(&a).unwrap();
        assert!(s.intents(&a).unwrap().is_empty());
        assert_eq!(s.intents(&b).unwrap(), vec![i("x", 3)]);
    }
}
