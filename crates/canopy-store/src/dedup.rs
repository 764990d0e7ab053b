//! Bounded dedup window over `$insert_id` (Mixpanel's key: event, distinct_id, time, insert id).
//!
//! Memory matters here (it holds millions of keys), so a key is a 64-bit hash (with 2M keys
//! the chance of any false duplicate is about 1e-7) and an expiry is stored in seconds.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::Path;

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

    /// Persists the live window (format v1: magic, then `u64 key, u32 expiry` pairs), atomically.
    /// Keys are hashes: no identifier can be read back from the file.
    pub(crate) fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(8 + self.order.len() * 12);
        buf.extend_from_slice(DEDUP_MAGIC);
        for (k, exp) in &self.order {
            if self.seen.get(k) == Some(exp) {
                buf.extend_from_slice(&k.to_le_bytes());
                buf.extend_from_slice(&exp.to_le_bytes());
            }
        }
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }

    /// Loads a window saved by [`DedupWindow::save`], dropping expired keys. A missing or
    /// unreadable file leaves the window empty (dedup is best effort across restarts).
    pub(crate) fn load(&mut self, path: &Path, now_ms: i64) {
        let Ok(bytes) = std::fs::read(path) else {
            return;
        };
        if !bytes.starts_with(DEDUP_MAGIC) {
            tracing::warn!("ignoring an unreadable dedup window file");
            return;
        }
        let now = secs(now_ms);
        for e in bytes[DEDUP_MAGIC.len()..].chunks_exact(12) {
            let mut k = [0u8; 8];
            k.copy_from_slice(&e[..8]);
            let exp = u32::from_le_bytes([e[8], e[9], e[10], e[11]]);
            if exp > now {
                let k = u64::from_le_bytes(k);
                self.seen.insert(k, exp);
                self.order.push_back((k, exp));
            }
        }
        self.expire(now);
    }
}

const DEDUP_MAGIC: &[u8; 8] = b"CNPYDDP1";

pub(crate) fn dedup_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("dedup.bin")
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
    fn the_window_survives_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dedup_path(dir.path());
        let mut w = DedupWindow::new(10_000, 100);
        w.insert(1, 0);
        w.insert(2, 5_000);
        w.save(&path).unwrap();
        let mut r = DedupWindow::new(10_000, 100);
        r.load(&path, 12_000);
        assert!(r.insert(1, 12_000), "expired key is gone");
        assert!(!r.insert(2, 12_000), "live key is remembered");
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
