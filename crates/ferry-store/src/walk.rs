//! Walking a share's local index and the remote indexes of some devices side by side, in path
//! order and one read transaction ([`Store::walk_share`]), and the [`WalkStates`] that tell a
//! caller whether what it computed from a walk is still current.

use ferry_proto::{ConflictPolicy, DeviceId, FileRecord, RelPath, ShareId};
use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::schema::{self, LOCAL, META, REMOTE, REMOTE_STATE, SHARE_STATE, SHARES, get, prefix_bounds};
use crate::{LocalEntry, RemoteState, ShareState, Store, StoreError};

impl Store {
    /// Walks the share's local index and the remote indexes of `devices` side by side, in path
    /// order, in one read transaction: `f(local, remotes)` is called once per path that any of
    /// them holds, with `remotes[i]` the record of `devices[i]` (None where it has none). Only
    /// one path's records are decoded at a time, so comparing two 100,000-record indexes costs
    /// no more memory than comparing one path.
    ///
    /// Returns the index states read in the same transaction, so a caller can tell later
    /// whether anything it compared has changed since (see [`WalkStates`]).
    pub fn walk_share(
        &self,
        share: &ShareId,
        devices: &[DeviceId],
        mut f: impl FnMut(Option<LocalEntry>, Vec<Option<FileRecord>>) -> Result<(), StoreError>,
    ) -> Result<WalkStates, StoreError> {
        self.walk_share_from(share, devices, None, |local, remotes| f(local, remotes).map(|()| true))
    }

    /// [`Store::walk_share`] from the first path after `after` (the start with None), until `f`
    /// returns false: a caller can walk a big share in windows, each in a read transaction of
    /// its own (the states returned are those of this window's transaction).
    pub fn walk_share_from(
        &self,
        share: &ShareId,
        devices: &[DeviceId],
        after: Option<&RelPath>,
        mut f: impl FnMut(Option<LocalEntry>, Vec<Option<FileRecord>>) -> Result<bool, StoreError>,
    ) -> Result<WalkStates, StoreError> {
        self.read(|txn| {
            let states = walk_states(txn, share, devices)?;
            let local_table = txn.open_table(LOCAL)?;
            let remote_table = txn.open_table(REMOTE)?;
            // Each source is a range whose keys are a fixed prefix followed by the path, so the
            // key suffixes compare like the paths and a merge by suffix visits every path once.
            let mut sources: Vec<MergeSource> = Vec::with_capacity(devices.len() + 1);
            let local_prefix = share.0.len();
            let local_bounds = bounds_after(&share.0, after);
            sources
                .push(MergeSource::new(local_table.range::<&[u8]>(schema::as_slices(&local_bounds))?, local_prefix)?);
            for d in devices {
                let prefix = schema::remote_state_key(share, d);
                let bounds = bounds_after(&prefix, after);
                sources.push(MergeSource::new(remote_table.range::<&[u8]>(schema::as_slices(&bounds))?, prefix.len())?);
            }
            while let Some(min) = sources.iter().filter_map(MergeSource::path).min().map(<[u8]>::to_vec) {
                let mut local = None;
                let mut remotes = Vec::with_capacity(devices.len());
                for (i, src) in sources.iter_mut().enumerate() {
                    let value = if src.path() == Some(min.as_slice()) { Some(src.advance()?) } else { None };
                    if i == 0 {
                        local = value.map(|v| schema::decode::<LocalEntry>("local entry", &v)).transpose()?;
                    } else {
                        remotes.push(value.map(|v| schema::decode::<FileRecord>("remote record", &v)).transpose()?);
                    }
                }
                if !f(local, remotes)? {
                    break;
                }
            }
            Ok(states)
        })
    }

    /// What [`Store::walk_share`] does for the paths it would visit among `paths` (each once, in
    /// path order), by point lookups in one read transaction: the cost follows `paths`, not the
    /// size of the indexes. A path no source holds is skipped, as the full walk would.
    pub fn walk_paths(
        &self,
        share: &ShareId,
        devices: &[DeviceId],
        paths: &[RelPath],
        mut f: impl FnMut(Option<LocalEntry>, Vec<Option<FileRecord>>) -> Result<(), StoreError>,
    ) -> Result<WalkStates, StoreError> {
        let mut sorted: Vec<&RelPath> = paths.iter().collect();
        // The index keys order paths by their bytes; RelPath's order is that of its string.
        sorted.sort_unstable_by(|a, b| a.as_str().as_bytes().cmp(b.as_str().as_bytes()));
        sorted.dedup();
        self.read(|txn| {
            let states = walk_states(txn, share, devices)?;
            let local_table = txn.open_table(LOCAL)?;
            let remote_table = txn.open_table(REMOTE)?;
            for path in sorted {
                let local: Option<LocalEntry> = get(&local_table, &schema::local_key(share, path), "local entry")?;
                let mut remotes = Vec::with_capacity(devices.len());
                for d in devices {
                    remotes.push(get(&remote_table, &schema::remote_key(share, d, path), "remote record")?);
                }
                if local.is_some() || remotes.iter().any(Option::is_some) {
                    f(local, remotes)?;
                }
            }
            Ok(states)
        })
    }

    /// The states [`Store::walk_share`] would return now, without the walk.
    pub fn walk_states(&self, share: &ShareId, devices: &[DeviceId]) -> Result<WalkStates, StoreError> {
        self.read(|txn| walk_states(txn, share, devices))
    }
}

/// The keys under `prefix` whose path comes after `after` (all of them with None). A key is the
/// prefix followed by the path's bytes, so the keys order as the paths do.
fn bounds_after(prefix: &[u8], after: Option<&RelPath>) -> schema::KeyBounds {
    let mut bounds = prefix_bounds(prefix);
    if let Some(path) = after {
        let mut key = prefix.to_vec();
        key.extend_from_slice(path.as_str().as_bytes());
        bounds.0 = std::ops::Bound::Excluded(key);
    }
    bounds
}

/// The index states a [`Store::walk_share`] read: the index generation, the local index's state
/// and each walked device's (`{0, 0}` for a device we hold nothing of). Equal states (of the
/// same database) mean no index was written in between: the walk would see the same records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalkStates {
    /// The stored index generation (`schema::META_INDEX_GENERATION`), read in the walk's
    /// transaction: it survives restarts, so states compare across them.
    pub generation: u64,
    pub local: ShareState,
    pub remotes: Vec<(DeviceId, RemoteState)>,
}

fn walk_states(txn: &ReadTransaction, share: &ShareId, devices: &[DeviceId]) -> Result<WalkStates, StoreError> {
    let generation = schema::stored_index_generation(&txn.open_table(META)?)?;
    let local: ShareState = get(&txn.open_table(SHARE_STATE)?, &share.0, "share state")?
        .ok_or_else(|| StoreError::NotFound(format!("state of share {share}")))?;
    let table = txn.open_table(REMOTE_STATE)?;
    let mut remotes = Vec::with_capacity(devices.len());
    for d in devices {
        remotes.push((*d, get(&table, &schema::remote_state_key(share, d), "remote state")?.unwrap_or_default()));
    }
    Ok(WalkStates { generation, local, remotes })
}

/// One sorted range of a [`Store::walk_share`] merge, with its next (key, value) read ahead.
struct MergeSource<'a> {
    range: redb::Range<'a, &'static [u8], &'static [u8]>,
    /// Length of the key prefix before the path.
    prefix: usize,
    head: Option<(Vec<u8>, Vec<u8>)>,
}

impl<'a> MergeSource<'a> {
    fn new(range: redb::Range<'a, &'static [u8], &'static [u8]>, prefix: usize) -> Result<Self, StoreError> {
        let mut s = MergeSource { range, prefix, head: None };
        s.fill()?;
        Ok(s)
    }

    fn fill(&mut self) -> Result<(), StoreError> {
        self.head = match self.range.next() {
            Some(item) => {
                let (k, v) = item?;
                let key = k.value();
                let path = key
                    .get(self.prefix..)
                    .ok_or_else(|| StoreError::Corrupt(format!("index key of {} bytes", key.len())))?;
                Some((path.to_vec(), v.value().to_vec()))
            }
            None => None,
        };
        Ok(())
    }

    /// The path bytes of the next entry, None at the end.
    fn path(&self) -> Option<&[u8]> {
        self.head.as_ref().map(|(p, _)| p.as_slice())
    }

    /// Takes the next entry's value and reads the one after it.
    fn advance(&mut self) -> Result<Vec<u8>, StoreError> {
        let (_, value) = self.head.take().expect("advance only at a path");
        self.fill()?;
        Ok(value)
    }
}

/// The inputs of a share's last pull pass that found nothing to do (see the node's pull): the
/// index states it compared, the conflict policy it decided with, and the version of the Ferry
/// that planned it. Kept across restarts, so a restart that changed nothing skips its first
/// pull's walk of every index; a mark of another version is not used (its planner may have
/// decided differently).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullMark {
    pub states: WalkStates,
    pub policy: ConflictPolicy,
    pub planner: String,
}

impl Store {
    /// The share's pull mark, if one was kept.
    pub fn pull_mark(&self, share: &ShareId) -> Result<Option<PullMark>, StoreError> {
        self.read(|txn| get(&txn.open_table(META)?, &schema::pull_mark_key(share), "pull mark"))
    }

    /// Keeps the share's pull mark (not an index write: the generation stays).
    pub fn put_pull_mark(&self, share: &ShareId, mark: &PullMark) -> Result<(), StoreError> {
        let value = schema::encode("pull mark", mark)?;
        self.write(|txn| {
            txn.open_table(META)?.insert(schema::pull_mark_key(share).as_slice(), value.as_slice())?;
            Ok(())
        })
    }
}

/// A share's status counts (what `ferry status` shows of its index) as computed by one walk,
/// with the states that walk read. Kept when the node stops, so a restart that changed nothing
/// answers its first status calls without walking every index again (a million-file share's
/// walk took a second, beside the start's scan); counts whose states are not the current ones
/// are not used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptCounts {
    pub states: WalkStates,
    pub files: u64,
    pub bytes: u64,
    pub local_changes: u64,
    pub peers_have_all: bool,
}

impl Store {
    /// The share's kept status counts, if any.
    pub fn kept_counts(&self, share: &ShareId) -> Result<Option<KeptCounts>, StoreError> {
        self.read(|txn| get(&txn.open_table(META)?, &schema::kept_counts_key(share), "kept counts"))
    }

    /// Keeps each share's counts, in one transaction (not an index write: the generation
    /// stays). Counts of a share that is gone by now are not kept.
    pub fn put_kept_counts(&self, all: &[(ShareId, KeptCounts)]) -> Result<(), StoreError> {
        let values: Vec<(Vec<u8>, Vec<u8>)> = all
            .iter()
            .map(|(id, c)| Ok((schema::kept_counts_key(id), schema::encode("kept counts", c)?)))
            .collect::<Result<_, StoreError>>()?;
        self.write(|txn| {
            let shares = txn.open_table(SHARES)?;
            let mut meta = txn.open_table(META)?;
            for ((id, _), (key, value)) in all.iter().zip(&values) {
                if shares.get(id.0.as_slice())?.is_some() {
                    meta.insert(key.as_slice(), value.as_slice())?;
                }
            }
            Ok(())
        })
    }
}
