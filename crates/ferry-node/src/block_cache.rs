//! The file a peer last asked blocks of, remembered between its requests.
//!
//! Serving a block checks that the path is an indexed file of the share and that the range is
//! inside it. The index record of a large file holds thousands of chunk entries, and decoding it
//! once per block request was a large share of the CPU a transfer cost; a peer pulling a file asks
//! for its blocks one after another, so the size found for the last one is kept, tagged with the
//! share's index sequence at the time: any index commit for the share moves the sequence and
//! makes the next request look the record up again. (Each block's content is still checked
//! against the requested hash when it is read.)

use std::sync::Mutex;

use ferry_proto::{RelPath, ShareId};

#[derive(Default)]
pub(crate) struct BlockCache(Mutex<Option<Served>>);

struct Served {
    share: ShareId,
    path: RelPath,
    seq: u64,
    size: u64,
}

impl BlockCache {
    /// The indexed size of `path`, if it was looked up while the share's sequence was `seq`.
    pub fn size(&self, share: &ShareId, path: &RelPath, seq: u64) -> Option<u64> {
        let g = self.0.lock().unwrap();
        g.as_ref().filter(|s| s.seq == seq && s.share == *share && s.path == *path).map(|s| s.size)
    }

    /// Remembers the size of `path` as read from the index at sequence `seq` (read before the
    /// lookup, so a commit racing it can only make the entry stale-looking, never stale).
    pub fn put(&self, share: ShareId, path: RelPath, seq: u64, size: u64) {
        *self.0.lock().unwrap() = Some(Served { share, path, seq, size });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_only_for_same_file_and_sequence() {
        let c = BlockCache::default();
        let (s, p) = (ShareId([1; 10]), RelPath::new("a/big.bin").unwrap());
        assert_eq!(c.size(&s, &p, 5), None);
        c.put(s, p.clone(), 5, 1000);
        assert_eq!(c.size(&s, &p, 5), Some(1000));
        assert_eq!(c.size(&s, &p, 6), None, "an index commit invalidates");
        assert_eq!(c.size(&s, &RelPath::new("other").unwrap(), 5), None);
        assert_eq!(c.size(&ShareId([2; 10]), &p, 5), None);
    }
}
