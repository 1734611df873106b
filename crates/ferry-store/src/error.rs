//! The store's error type.

/// Everything that can go wrong in the store. redb errors keep their own type (and say which
/// step failed); decoding errors say which kind of value was being read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening the database: {0}")]
    Database(#[from] redb::DatabaseError),
    #[error("starting a transaction: {0}")]
    Transaction(#[from] redb::TransactionError),
    #[error("opening a table: {0}")]
    Table(#[from] redb::TableError),
    #[error("database storage: {0}")]
    Storage(#[from] redb::StorageError),
    #[error("committing a transaction: {0}")]
    Commit(#[from] redb::CommitError),
    #[error("encoding {what}: {source}")]
    Encode { what: &'static str, source: postcard::Error },
    /// A stored value that is corrupt or was written by a newer version of Ferry.
    #[error("decoding {what}: {source}")]
    Decode { what: &'static str, source: postcard::Error },
    /// The database was written by a newer version of Ferry; this one cannot read it safely.
    #[error(
        "database schema version {found} is newer than this version of Ferry supports ({supported}); upgrade Ferry"
    )]
    TooNew { found: u32, supported: u32 },
    /// A stored key or index entry that breaks the schema's invariants.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The database file is damaged (garbage, cut short, pages that do not check out): redb
    /// refused it, or failed on it while opening. Nothing was written to it.
    #[error("the database is damaged: {0}")]
    Damaged(String),
    /// A caller asked for something that must exist (e.g. the state of an unknown share).
    #[error("not found: {0}")]
    NotFound(String),
    /// A caller passed something the store refuses (e.g. a reserved meta key).
    #[error("invalid request: {0}")]
    Invalid(String),
}
