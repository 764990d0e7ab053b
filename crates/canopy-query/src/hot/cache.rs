//! The column cache: decoded columns of segments, kept between queries so a report reads
//! compact arrays instead of decrypting and decoding Parquet again. Bounded in bytes (least
//! recently used out first); segments are immutable and ids never reused, so an entry is
//! never stale — but every rewrite (erasure, retention, rectification, clean-up) clears the
//! cache, because a replaced segment's decoded rows must not outlive it in memory.

use super::columns::{ColumnKey, HotColumn};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Default bound on the cache (`[query] column_cache_mb`).
pub const DEFAULT_COLUMN_CACHE: usize = 4 << 30;

#[derive(Debug)]
struct Entry {
    column: Arc<HotColumn>,
    bytes: usize,
    last_used: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<(u64, ColumnKey), Entry>,
    bytes: usize,
    clock: u64,
    /// Bumped by every clear: a load that began before it must not add what it read.
    generation: u64,
}

#[derive(Debug)]
pub(crate) struct ColumnCache {
    inner: Mutex<Inner>,
    budget: usize,
}

impl ColumnCache {
    pub fn new(budget: usize) -> Self {
        Self {
            inner: Mutex::default(),
            budget,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current generation, to pass back to [`ColumnCache::insert`].
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    pub fn get(&self, segment: u64, key: &ColumnKey) -> Option<Arc<HotColumn>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.entries.get_mut(&(segment, key.clone()))?;
        entry.last_used = now;
        Some(entry.column.clone())
    }

    /// Keeps `column` unless the cache was cleared since `generation` was read or the column
    /// alone exceeds the budget; evicts the least recently used entries to make room.
    pub fn insert(&self, generation: u64, segment: u64, key: ColumnKey, column: Arc<HotColumn>) {
        let bytes = column.heap_bytes();
        let mut inner = self.lock();
        if inner.generation != generation || bytes > self.budget {
            return;
        }
        while inner.bytes + bytes > self.budget {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = inner.entries.remove(&oldest) {
                inner.bytes -= e.bytes;
            }
        }
        inner.clock += 1;
        let last_used = inner.clock;
        if let Some(old) = inner.entries.insert(
            (segment, key),
            Entry {
                column,
                bytes,
                last_used,
            },
        ) {
            inner.bytes -= old.bytes;
        }
        inner.bytes += bytes;
    }

    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.bytes = 0;
        inner.generation += 1;
    }

    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(rows: usize) -> Arc<HotColumn> {
        Arc::new(HotColumn::Ranks(vec![0; rows]))
    }

    #[test]
    fn the_least_recently_used_column_leaves_first_and_the_budget_holds() {
        let cache = ColumnCache::new(1000);
        let g = cache.generation();
        cache.insert(g, 1, ColumnKey::Time, column(100)); // 400 bytes
        cache.insert(g, 2, ColumnKey::Time, column(100));
        assert!(cache.get(1, &ColumnKey::Time).is_some()); // 1 is now the more recent
        cache.insert(g, 3, ColumnKey::Time, column(100));
        assert!(cache.get(2, &ColumnKey::Time).is_none());
        assert!(cache.get(1, &ColumnKey::Time).is_some());
        assert!(cache.get(3, &ColumnKey::Time).is_some());
        assert_eq!(cache.bytes(), 800);
        cache.insert(g, 4, ColumnKey::Time, column(1000)); // larger than the whole budget
        assert!(cache.get(4, &ColumnKey::Time).is_none());
        assert_eq!(cache.bytes(), 800);
    }

    #[test]
    fn a_load_that_began_before_a_clear_is_not_kept() {
        let cache = ColumnCache::new(1 << 20);
        let before = cache.generation();
        cache.insert(before, 1, ColumnKey::Person, column(10));
        cache.clear();
        assert!(cache.get(1, &ColumnKey::Person).is_none());
        cache.insert(before, 1, ColumnKey::Person, column(10));
        assert!(cache.get(1, &ColumnKey::Person).is_none());
        assert_eq!(cache.bytes(), 0);
        cache.insert(cache.generation(), 1, ColumnKey::Person, column(10));
        assert!(cache.get(1, &ColumnKey::Person).is_some());
    }
}
