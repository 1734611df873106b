//! Prompts awaiting the user's decision (pairing, share and send offers, held mass deletes):
//! records by id and the persisted, monotonic id counter.

use std::ops::Bound;

use redb::ReadableTable;

use crate::schema::{self, META, META_NEXT_PROMPT_ID, PROMPTS, encode, get, scan};
use crate::{PromptRecord, Store, StoreError};

impl Store {
    pub fn put_prompt(&self, p: &PromptRecord) -> Result<(), StoreError> {
        let value = encode("prompt", p)?;
        self.write(|txn| {
            txn.open_table(PROMPTS)?.insert(schema::prompt_key(p.id).as_slice(), value.as_slice())?;
            Ok(())
        })
    }

    pub fn prompt(&self, id: u64) -> Result<Option<PromptRecord>, StoreError> {
        self.read(|txn| get(&txn.open_table(PROMPTS)?, &schema::prompt_key(id), "prompt"))
    }

    /// All prompts, by id.
    pub fn prompts(&self) -> Result<Vec<PromptRecord>, StoreError> {
        self.read(|txn| scan(&txn.open_table(PROMPTS)?, &(Bound::Unbounded, Bound::Unbounded), "prompt"))
    }

    pub fn remove_prompt(&self, id: u64) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(PROMPTS)?.remove(schema::prompt_key(id).as_slice())?;
            Ok(())
        })
    }

    /// The next prompt id (starting at 1; monotonic, persisted in meta), in its own transaction.
    pub fn next_prompt_id(&self) -> Result<u64, StoreError> {
        self.write(|txn| {
            let mut meta = txn.open_table(META)?;
            let id = match meta.get(META_NEXT_PROMPT_ID.as_bytes())? {
                Some(v) => u64::from_be_bytes(
                    v.value().try_into().map_err(|_| StoreError::Corrupt("next_prompt_id is not 8 bytes".into()))?,
                ),
                None => 1,
            };
            meta.insert(META_NEXT_PROMPT_ID.as_bytes(), (id + 1).to_be_bytes().as_slice())?;
            Ok(id)
        })
    }
}
