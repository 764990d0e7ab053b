//! Bounded dedup window over `$insert_id` (Mixpanel's key: event, distinct_id, time, insert id).

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};

pub(crate) struct DedupWindow {
    seen: HashMap<u128, i64>,
    order: VecDeque<(u128, i64)>,
    ttl_ms: i64,
    capacity: usize,
}

pub(crate) fn dedup_key(
    project: u64,
    name: &str,
    distinct_id: &str,
    time_ms: i64,
    insert_id: &str,
) -> u128 {
    let mut a = std::collections::hash_map::DefaultHasher::new();
    let mut b = std::collections::hash_map::DefaultHasher::new();
    0xA5u8.hash(&mut b);
    for h in [&mut a, &mut b] {
        (project, name, distinct_id, time_ms, insert_id).hash(h);
    }
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

impl DedupWindow {
    pub(crate) fn new(ttl_ms: i64, capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            order: VecDeque::new(),
            ttl_ms,
            capacity,
        }
    }

    /// Records `key` as seen at `now_ms`; returns false when it was already in the window.
    pub(crate) fn insert(&mut self, key: u128, now_ms: i64) -> bool {
        self.expire(now_ms);
        if self.seen.contains_key(&key) {
            return false;
        }
        let expires = now_ms + self.ttl_ms;
        self.seen.insert(key, expires);
        self.order.push_back((key, expires));
        true
    }

    /// Forgets `key` (its write failed, so a retry must not count as a duplicate).
    pub(crate) fn forget(&mut self, key: u128) {
        self.seen.remove(&key);
    }

    fn expire(&mut self, now_ms: i64) {
        while let Some(&(k, exp)) = self.order.front() {
            if exp > now_ms && self.order.len() <= self.capacity {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&k) == Some(&exp) {
                self.seen.remove(&k);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_inside_the_window_are_refused_and_expire() {
        let mut w = DedupWindow::new(1000, 10);
        let k = dedup_key(1, "e", "d", 5, "x");
        assert!(w.insert(k, 0));
        assert!(!w.insert(k, 500));
        assert!(w.insert(k, 1001));
        assert_ne!(k, dedup_key(1, "e", "d", 6, "x"));
    }

    #[test]
    fn capacity_bounds_memory() {
        let mut w = DedupWindow::new(1_000_000, 100);
        for i in 0..1000u128 {
            w.insert(i, 0);
        }
        assert!(w.len() <= 101);
    }
}
