//! Bounded dedup window over `$insert_id` (Mixpanel's key: event, distinct_id, time, insert id).
//!
//! Memory matters here (it holds millions of keys), so a key is a 64-bit hash (with 2M keys
//! the chance of any false duplicate is about 1e-7) and an expiry is stored in seconds.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};

pub(crate) struct DedupWindow {
    seen: HashMap<u64, u32>,
    order: VecDeque<(u64, u32)>,
    ttl_s: u32,
    capacity: usize,
}

pub(crate) fn dedup_key(
    project: u64,
    name: &str,
    distinct_id: &str,
    time_ms: i64,
    insert_id: &str,
) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (project, name, distinct_id, time_ms, insert_id).hash(&mut h);
    h.finish()
}

fn secs(ms: i64) -> u32 {
    (ms.max(0) / 1000).min(i64::from(u32::MAX)) as u32
}

impl DedupWindow {
    pub(crate) fn new(ttl_ms: i64, capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            order: VecDeque::new(),
            ttl_s: secs(ttl_ms).max(1),
            capacity,
        }
    }

    /// Records `key` as seen at `now_ms`; returns false when it was already in the window.
    pub(crate) fn insert(&mut self, key: u64, now_ms: i64) -> bool {
        let now = secs(now_ms);
        self.expire(now);
        if self.seen.contains_key(&key) {
            return false;
        }
        let expires = now.saturating_add(self.ttl_s);
        self.seen.insert(key, expires);
        self.order.push_back((key, expires));
        true
    }

    /// Forgets `key` (its write failed, so a retry must not count as a duplicate).
    pub(crate) fn forget(&mut self, key: u64) {
        self.seen.remove(&key);
    }

    fn expire(&mut self, now: u32) {
        while let Some(&(k, exp)) = self.order.front() {
            if exp > now && self.order.len() <= self.capacity {
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
        let mut w = DedupWindow::new(10_000, 10);
        let k = dedup_key(1, "e", "d", 5, "x");
        assert!(w.insert(k, 0));
        assert!(!w.insert(k, 5_000));
        assert!(w.insert(k, 10_001));
        assert_ne!(k, dedup_key(1, "e", "d", 6, "x"));
    }

    #[test]
    fn capacity_bounds_memory() {
        let mut w = DedupWindow::new(1_000_000, 100);
        for i in 0..1000u64 {
            w.insert(i, 0);
        }
        assert!(w.len() <= 101);
    }
}
