//! The cleaner's offset map: for each key of the dirty section, the offset of its latest
//! record, in bounded memory (Kafka's `SkimpyOffsetMap`, sized by
//! `log.cleaner.dedupe.buffer.size`). Keys are held by their MD5 digest, as Kafka holds
//! them: 16 bytes whatever the key's size, and two keys sharing one is as unlikely as the
//! digest makes it (about 2^-64 among 2^32 keys).

use std::collections::HashMap;

use md5::{Digest, Md5};

/// Bytes an entry takes: the digest, the offset, and the hash table's own share.
pub(crate) const ENTRY_BYTES: usize = 16 + 8 + 8;

/// Latest offset by key digest, holding at most a fixed number of keys.
#[derive(Debug)]
pub struct OffsetMap {
    latest: HashMap<[u8; 16], i64>,
    capacity: usize,
}

impl OffsetMap {
    /// A map holding as many keys as `bytes` of memory allow (at least one).
    pub fn with_memory(bytes: usize) -> OffsetMap {
        let capacity = (bytes / ENTRY_BYTES).max(1);
        OffsetMap { latest: HashMap::new(), capacity }
    }

    /// Notes that `key`'s record at `offset` is its latest so far (offsets come in
    /// increasing order). `false` when the map is full and `key` is not in it yet: the
    /// record is not noted.
    pub(crate) fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let digest = digest(key);
        if self.latest.len() == self.capacity && !self.latest.contains_key(&digest) {
            return false;
        }
        self.latest.insert(digest, offset);
        true
    }

    /// The offset of `key`'s latest record, if the map holds it.
    pub(crate) fn get(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(&digest(key)).copied()
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// The most keys it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every key, keeping its memory for the next clean.
    pub fn clear(&mut self) {
        self.latest.clear();
    }
}

fn digest(key: &[u8]) -> [u8; 16] {
    Md5::digest(key).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_offset_wins_and_a_full_map_refuses_new_keys_only() {
        let mut map = OffsetMap::with_memory(2 * ENTRY_BYTES);
        assert!(map.put(b"a", 1) && map.put(b"b", 2) && map.put(b"a", 3));
        assert!(!map.put(b"c", 4), "full: a third key is refused");
        assert!(map.put(b"b", 5), "a key it holds is updated");
        assert_eq!((map.get(b"a"), map.get(b"b"), map.get(b"c")), (Some(3), Some(5), None));
        assert_eq!(map.len(), 2);
    }
}
