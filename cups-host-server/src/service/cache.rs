//! A small bounded map for the service's caches (parsed gateway records keyed by EUI and
//! revalidated by ETag; token index entries, which never change once written).
//!
//! Eviction is first-in-first-out: simple, bounded, and good enough for a cache whose misses
//! cost one store read. A `std::sync::Mutex` guards it; no lock is held across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

/// A bounded, thread-safe map with FIFO eviction.
#[derive(Debug)]
pub(crate) struct BoundedCache<K, V> {
    inner: Mutex<Inner<K, V>>,
    capacity: usize,
}

#[derive(Debug)]
struct Inner<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K: Eq + Hash + Clone, V: Clone> BoundedCache<K, V> {
    /// A cache of at most `capacity` entries (0 disables it).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
            capacity,
        }
    }

    /// The cached value for `key`.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let inner = self.inner.lock().ok()?;
        inner.map.get(key).cloned()
    }

    /// Insert or replace.
    pub(crate) fn insert(&self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if let Some(slot) = inner.map.get_mut(&key) {
            *slot = value;
            return;
        }
        while inner.map.len() >= self.capacity {
            match inner.order.pop_front() {
                Some(old) => {
                    inner.map.remove(&old);
                }
                None => break,
            }
        }
        inner.order.push_back(key.clone());
        inner.map.insert(key, value);
        // Removed (and re-inserted) keys leave stale entries in `order`: compact when they
        // pile up, keeping the latest position of each live key.
        if inner.order.len() > self.capacity.saturating_mul(2) {
            let Inner { map, order } = &mut *inner;
            let mut seen = std::collections::HashSet::with_capacity(map.len());
            let mut kept: VecDeque<K> = order
                .iter()
                .rev()
                .filter(|k| map.contains_key(*k) && seen.insert(*k))
                .cloned()
                .collect();
            kept.make_contiguous().reverse();
            *order = kept;
        }
    }

    /// Forget `key`.
    pub(crate) fn remove(&self, key: &K) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.map.remove(key);
        }
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().map(|i| i.map.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_fifo() {
        let c = BoundedCache::new(3);
        for i in 0..10u32 {
            c.insert(i, i * 2);
            assert!(c.len() <= 3);
        }
        assert_eq!(c.get(&9), Some(18));
        assert_eq!(c.get(&0), None);
        c.insert(9, 1);
        assert_eq!(c.get(&9), Some(1));
        c.remove(&9);
        assert_eq!(c.get(&9), None);
        for _ in 0..100 {
            c.insert(42, 0);
            c.remove(&42);
        }
        assert!(c.inner.lock().unwrap().order.len() <= 7);
    }

    #[test]
    fn capacity_zero_disables() {
        let c = BoundedCache::new(0);
        c.insert(1u8, 1u8);
        assert_eq!(c.get(&1), None);
    }

    #[test]
    fn at_capacity_keeps_capacity_entries() {
        let c = BoundedCache::new(2);
        c.insert(1u8, ());
        c.insert(2u8, ());
        assert_eq!(c.len(), 2);
        c.insert(3u8, ());
        assert_eq!(c.len(), 2);
        assert!(c.get(&1).is_none() && c.get(&3).is_some());
    }
}
