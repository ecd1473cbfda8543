//! The order in which Java's `HashMap` and `HashSet` of strings iterate, which fixes the
//! order of Confluent's messages when the diff walks an object's properties: everit keeps
//! them in a `HashMap`, Confluent's diff unions two key sets into a `HashSet`. Iteration is
//! by bucket (`String.hashCode` spread, masked by the table size), then by insertion within
//! a bucket; a resize keeps that relative order. (Buckets long enough to become trees, 8
//! keys in one bucket of a table of 64 or more, are not modelled.)

/// A Java `HashMap<String, _>`'s key order, simulated.
pub(crate) struct JavaHashSet<'a> {
    buckets: Vec<Vec<&'a str>>,
    len: usize,
}

impl<'a> JavaHashSet<'a> {
    /// An empty map whose table has room for `capacity` (Java's `tableSizeFor`).
    pub(crate) fn with_capacity(capacity: usize) -> JavaHashSet<'a> {
        JavaHashSet { buckets: vec![Vec::new(); table_size_for(capacity)], len: 0 }
    }

    /// `new HashMap<>()`: 16 buckets.
    pub(crate) fn new() -> JavaHashSet<'a> {
        JavaHashSet::with_capacity(16)
    }

    /// `new HashSet<>(collection)` of `n` keys (JDK 17): room for `n / 0.75 + 1`, at least 16.
    pub(crate) fn for_collection(n: usize) -> JavaHashSet<'a> {
        JavaHashSet::with_capacity(((n as f32 / 0.75) as usize + 1).max(16))
    }

    /// `new HashMap<>(map)` of `n` keys (JDK 17): room for `n / 0.75 + 1`.
    pub(crate) fn for_copy(n: usize) -> JavaHashSet<'a> {
        JavaHashSet::with_capacity((n as f32 / 0.75 + 1.0) as usize)
    }

    /// Adds `key` unless present, growing the table past a load of 0.75.
    pub(crate) fn insert(&mut self, key: &'a str) {
        let cap = self.buckets.len();
        let bucket = &mut self.buckets[index(key, cap)];
        if bucket.contains(&key) {
            return;
        }
        bucket.push(key);
        self.len += 1;
        if self.len > cap * 3 / 4 {
            let mut grown = vec![Vec::new(); cap * 2];
            for key in self.buckets.iter().flatten() {
                grown[index(key, cap * 2)].push(*key);
            }
            self.buckets = grown;
        }
    }

    /// The keys in iteration order.
    pub(crate) fn keys(&self) -> Vec<&'a str> {
        self.buckets.iter().flatten().copied().collect()
    }
}

/// The iteration order of a `HashMap` filled with `keys` in this order.
pub(crate) fn map_order<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut map = JavaHashSet::new();
    for k in keys {
        map.insert(k);
    }
    map.keys()
}

/// `new HashSet<>(a.keySet())` then `addAll(b.keySet())`, `a` and `b` given in their own
/// iteration order: the order Confluent's diff visits the union of two key sets.
pub(crate) fn union_order<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<&'a str> {
    let mut set = JavaHashSet::for_collection(a.len());
    for k in a.iter().chain(b) {
        set.insert(k);
    }
    set.keys()
}

/// The order of a `HashMap` built with `keys` in document order, then copied with
/// `new HashMap<>(map)` (everit's `copyMap`).
pub(crate) fn copied_map_order<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let built = map_order(keys);
    let mut copy = JavaHashSet::for_copy(built.len());
    for k in &built {
        copy.insert(k);
    }
    copy.keys()
}

/// Java's `String.hashCode` (over UTF-16 code units).
pub(crate) fn string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

fn index(key: &str, cap: usize) -> usize {
    let h = string_hash(key) as u32;
    ((h ^ (h >> 16)) as usize) & (cap - 1)
}

fn table_size_for(cap: usize) -> usize {
    cap.max(1).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_orders_as_java_does() {
        assert_eq!(string_hash("hello"), 99162322);
        assert_eq!(string_hash("polygenelubricants"), i32::MIN);
        // Buckets 1, 9 and 2 of 16.
        assert_eq!(map_order(["allOf", "anyOf", "oneOf"]), vec!["allOf", "oneOf", "anyOf"]);
        // Growth keeps the relative order within a bucket.
        let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        let order = map_order(keys.iter().map(String::as_str));
        assert_eq!(order.len(), 40);
        let mut sorted = order.clone();
        sorted.sort_by_key(|k| (index(k, 64), keys.iter().position(|x| x == k)));
        assert_eq!(order, sorted);
    }
}
