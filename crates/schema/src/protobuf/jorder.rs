//! The iteration order of Java's `HashMap` and `HashSet`, which Confluent's diff walks for
//! message and enum names and enum constant numbers, so that the differences come out
//! in the order Confluent lists them: buckets by `(h ^ h >>> 16) & (capacity - 1)`, each
//! in insertion order, the table doubling past three quarters full (a resize keeps the
//! relative order within a bucket). Java turns a bucket of 8 or more into a tree, which
//! changes the order; no schema has that many colliding names in one scope.

/// Java's `String.hashCode()` (over UTF-16 code units).
pub(crate) fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// A `HashMap` keyed by `K`, whose Java `hashCode()` the caller passes.
pub(crate) struct JavaHashSet<K, V> {
    table: Vec<Vec<(i32, K, V)>>,
    /// The capacity the table gets on the first insert (`HashMap(int)`), 16 by default.
    initial: usize,
    len: usize,
}

impl<K: PartialEq, V> JavaHashSet<K, V> {
    /// `new HashMap<>()`.
    pub(crate) fn new() -> Self {
        JavaHashSet { table: Vec::new(), initial: 16, len: 0 }
    }

    /// `new HashSet<>(collection)` of `expected` elements: capacity for
    /// `max((int) (n / .75f) + 1, 16)`.
    pub(crate) fn with_expected(expected: usize) -> Self {
        let wanted = ((expected as f32 / 0.75) as usize + 1).max(16);
        JavaHashSet { table: Vec::new(), initial: wanted.next_power_of_two(), len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn spread(hash: i32) -> usize {
        (hash ^ ((hash as u32) >> 16) as i32) as u32 as usize
    }

    fn bucket(&self, hash: i32) -> usize {
        Self::spread(hash) & (self.table.len() - 1)
    }

    /// `put`: a new key goes at its bucket's end; an existing one keeps its place.
    pub(crate) fn put(&mut self, hash: i32, key: K, value: V) {
        if self.table.is_empty() {
            self.table.resize_with(self.initial, Vec::new);
        }
        let b = self.bucket(hash);
        if let Some(entry) = self.table[b].iter_mut().find(|(h, k, _)| *h == hash && *k == key) {
            entry.2 = value;
            return;
        }
        self.table[b].push((hash, key, value));
        self.len += 1;
        if self.len > self.table.len() * 3 / 4 {
            let mut bigger: Vec<Vec<(i32, K, V)>> = Vec::new();
            bigger.resize_with(self.table.len() * 2, Vec::new);
            let mask = bigger.len() - 1;
            for entry in std::mem::take(&mut self.table).into_iter().flatten() {
                bigger[Self::spread(entry.0) & mask].push(entry);
            }
            self.table = bigger;
        }
    }

    pub(crate) fn get<Q>(&self, hash: i32, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: PartialEq + ?Sized,
    {
        if self.table.is_empty() {
            return None;
        }
        let bucket = &self.table[self.bucket(hash)];
        bucket.iter().find(|(h, k, _)| *h == hash && k.borrow() == key).map(|e| &e.2)
    }

    /// Java's iteration order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (i32, &K, &V)> {
        self.table.iter().flatten().map(|(h, k, v)| (*h, k, v))
    }
}
