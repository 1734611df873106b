//! Records of archived file versions (the `versions` table), per share and path. The archived
//! content itself lives in the share's folder (ferry-fs); versions are written together with the
//! index change that archived them ([`Store::commit_local`]).

use ferry_proto::{RelPath, ShareId};

use crate::schema::{self, VERSIONS, get, prefix_bounds, scan};
use crate::{Store, StoreError, VersionRecord};

impl Store {
    /// Versions of one path, newest (highest id) first.
    pub fn versions(&self, share: &ShareId, path: &RelPath) -> Result<Vec<VersionRecord>, StoreError> {
        let bounds = prefix_bounds(&schema::versions_prefix(share, path));
        self.read(|txn| {
            let mut out: Vec<VersionRecord> = scan(&txn.open_table(VERSIONS)?, &bounds, "version")?;
            out.reverse();
            Ok(out)
        })
    }

    /// All versions of a share, newest (highest id) first; ties by path.
    pub fn share_versions(&self, share: &ShareId) -> Result<Vec<VersionRecord>, StoreError> {
        self.read(|txn| {
            let mut out: Vec<VersionRecord> = scan(&txn.open_table(VERSIONS)?, &prefix_bounds(&share.0), "version")?;
            out.sort_by(|a, b| b.id.cmp(&a.id).then_with(|| a.path.cmp(&b.path)));
            Ok(out)
        })
    }

    /// Removes these (path, id) version records in one transaction (missing ones are skipped).
    pub fn remove_versions(&self, share: &ShareId, which: &[(RelPath, u64)]) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(VERSIONS)?;
            for (path, id) in which {
                table.remove(schema::version_key(share, path, *id).as_slice())?;
            }
            Ok(())
        })
    }

    /// One version record, if it exists.
    pub fn version(&self, share: &ShareId, path: &RelPath, id: u64) -> Result<Option<VersionRecord>, StoreError> {
        self.read(|txn| get(&txn.open_table(VERSIONS)?, &schema::version_key(share, path, id), "version"))
    }
}
