//! Sorted runs: compaction cuts a partition into segments of disjoint person ranges, and an
//! erasure then reads and rewrites only the segment holding the person.

use crate::{Store, StoreConfig, Table};
use canopy_crypto::MemoryKeyring as Keys;
use canopy_types::{ProjectId, Record, SystemClock};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

const P: ProjectId = ProjectId(1);
const PERSONS: u64 = 50;

/// Event `i` of person `i % 50 + 1`, in one of three months (the store tests' event).
fn ev(i: u64) -> Record {
    crate::tests::ev(i, "")
}

fn config(dir: &std::path::Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir);
    c.background = false;
    c.buckets = 2;
    c.compaction_min_segments = 2;
    c.max_segment_rows = 40;
    c
}

/// A store whose `rounds` flushes of 600 events each were compacted.
fn compacted(dir: &std::path::Path, keys: Arc<Keys>, rounds: u64) -> Store {
    let (store, _) = Store::open(config(dir), keys, Arc::new(SystemClock)).unwrap();
    for r in 0..rounds {
        store
            .append_blocking(P, (r * 600..(r + 1) * 600).map(ev).collect())
            .unwrap();
        store.flush_now().unwrap();
    }
    store.compact_now().unwrap();
    store
}

/// The persons each segment really holds, read back.
fn persons_by_segment(store: &Store) -> HashMap<u64, HashSet<u64>> {
    let mut out = HashMap::new();
    for s in store.snapshot(P).segments {
        let key = store.segment_key(&s).unwrap();
        let rows = crate::read_segment(&store.segment_path(&s), &key, s.id).unwrap();
        let set: &mut HashSet<u64> = out.entry(s.id).or_default();
        for b in rows {
            for e in crate::batch_to_events(&b, P).unwrap() {
                set.insert(e.person.0);
            }
        }
    }
    out
}

fn assert_sorted_runs(store: &Store) {
    let held = persons_by_segment(store);
    let mut by_partition: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for s in store.snapshot(P).segments {
        by_partition.entry(s.partition).or_default().push(s);
    }
    for (partition, mut segs) in by_partition {
        // Every segment knows its range; 12 events per person per month here, so at most 40
        // rows unless one person alone.
        for s in &segs {
            let (lo, hi) = s.person_range.unwrap();
            assert!(held[&s.id].iter().all(|p| (lo..=hi).contains(p)));
            assert!(s.rows <= 40 || held[&s.id].len() == 1, "{} rows", s.rows);
        }
        // The run's segments never overlap.
        segs.retain(|s| s.in_run);
        assert!(!segs.is_empty(), "{partition:?} has a run");
        segs.sort_by_key(|s| s.person_range);
        for pair in segs.windows(2) {
            let (a, b) = (pair[0].person_range.unwrap(), pair[1].person_range.unwrap());
            assert!(a.1 < b.0, "overlapping pieces {a:?} {b:?}");
        }
    }
}

#[test]
fn compaction_cuts_each_partition_into_a_sorted_run_of_disjoint_person_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(Keys::default());
    let store = compacted(dir.path(), keys.clone(), 3);
    assert_eq!(store.stats().segment_rows, 1800);
    assert!(
        store.stats().segments > 6,
        "partitions were cut into pieces"
    );
    assert_sorted_runs(&store);
    // The ranges survive a restart (manifest version 2).
    let layout = |store: &Store| -> HashMap<u64, (Option<(u64, u64)>, bool)> {
        let segments = store.snapshot(P).segments;
        segments
            .iter()
            .map(|s| (s.id, (s.person_range, s.in_run)))
            .collect()
    };
    let before = layout(&store);
    assert!(before.values().all(|(_, run)| *run));
    drop(store);
    let (store, _) = Store::open(config(dir.path()), keys, Arc::new(SystemClock)).unwrap();
    assert_eq!(before, layout(&store));
}

#[test]
fn erasing_one_person_reads_and_rewrites_only_the_pieces_holding_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = compacted(dir.path(), Arc::new(Keys::default()), 3);
    let segments = store.stats().segments;
    let erased: HashSet<u64> = [7].into();
    let report = store
        .erase_persons(P, &erased, Duration::from_secs(5))
        .unwrap();
    // Person 7 has events in three months: one piece each, nothing else read.
    assert_eq!(report.event_rows, 36);
    assert_eq!(report.segments_scanned, 3, "of {segments} segments");
    assert_eq!(report.segments_rewritten, 3);
    // The rewritten pieces keep their ranges; the runs are still sorted and disjoint.
    assert_sorted_runs(&store);
    let found = store.count_person_rows(P, &erased).unwrap();
    assert_eq!(found.total(), 0);
    assert_eq!(found.segments_scanned, segments);
    assert_eq!(found.segments_read, 0, "every filter rules person 7 out");
    // Everyone else is intact.
    let others: HashSet<u64> = (1..=PERSONS).filter(|p| *p != 7).collect();
    let left = store.count_person_rows(P, &others).unwrap();
    assert_eq!(left.total(), 1800 - 36);
}

#[test]
fn new_segments_wait_until_they_are_a_fair_share_of_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = compacted(dir.path(), Arc::new(Keys::default()), 4);
    let run = store.stats().segments;
    // One event per partition: new files, but far fewer rows than the run holds.
    for i in 0..3u64 {
        store.append_blocking(P, vec![ev(2400 + i)]).unwrap();
        store.flush_now().unwrap();
    }
    assert_eq!(
        store.compact_now().unwrap(),
        0,
        "the run is not rewritten for 3 events"
    );
    assert_eq!(store.stats().segments, run + 3);
    // Two more in the partition of ev(2400) (persons 1 and 4 share its bucket): its three new
    // segments are merged with each other, outside the run, which is left alone.
    for i in [2403u64, 2553] {
        store.append_blocking(P, vec![ev(i)]).unwrap();
        store.flush_now().unwrap();
    }
    assert_eq!(store.stats().segments, run + 5);
    assert_eq!(store.compact_now().unwrap(), 1);
    assert_eq!(
        store.stats().segments,
        run + 3,
        "three new segments became one"
    );
    assert_eq!(
        store
            .snapshot(P)
            .segments
            .iter()
            .filter(|s| !s.in_run)
            .map(|s| s.rows)
            .max(),
        Some(3),
        "ev(2403), ev(2553) and the first new event of that partition, merged"
    );
    // A share of new rows makes it worth it: merged into the run, cut again.
    store
        .append_blocking(P, (3000..3700).map(ev).collect())
        .unwrap();
    store.flush_now().unwrap();
    assert!(store.compact_now().unwrap() > 0);
    assert_sorted_runs(&store);
    assert_eq!(store.stats().segment_rows, 2400 + 5 + 700);
}

#[test]
fn a_version_1_manifest_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(Keys::default());
    let (store, _) = Store::open(config(dir.path()), keys.clone(), Arc::new(SystemClock)).unwrap();
    store
        .append_blocking(P, (0..100).map(ev).collect())
        .unwrap();
    store.flush_now().unwrap();
    drop(store);
    // Version 1 is version 2 without the ranges and run flags.
    let path = dir.path().join("manifest.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["version"], 2);
    v["version"] = 1.into();
    for s in v["segments"].as_array_mut().unwrap() {
        let s = s.as_object_mut().unwrap();
        assert!(s.remove("person_range").is_some());
        assert!(
            s.remove("run").is_none(),
            "flushed segments are not in a run"
        );
    }
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let (store, _) = Store::open(config(dir.path()), keys, Arc::new(SystemClock)).unwrap();
    assert_eq!(store.stats().segment_rows, 100);
    assert!(
        store
            .snapshot(P)
            .segments
            .iter()
            .all(|s| s.person_range.is_none() && !s.in_run && s.partition.table == Table::Events)
    );
}

#[test]
fn a_failed_rewrite_changes_nothing_and_leaves_no_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = compacted(dir.path(), Arc::new(Keys::default()), 3);
    let files = || {
        let mut out = Vec::new();
        let mut stack = vec![dir.path().join("segments")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    };
    let before = files();
    let victim = store.snapshot(P).segments[2].id;
    let erased: HashSet<u64> = (1..=PERSONS).collect();
    let selector = crate::RowSelector::Persons(&erased);
    let result = store.rewrite(
        P,
        |_| true,
        |inner, s| {
            if s.id == victim {
                return Err(crate::StoreError::Manifest("injected".into()));
            }
            crate::erase::filter_segment(inner, s, &selector)
        },
        Duration::from_secs(1),
    );
    assert!(result.is_err());
    // The other segments' replacements were written, then removed; nothing was swapped.
    assert_eq!(files(), before);
    assert_eq!(store.stats().segment_rows, 1800);
    assert_sorted_runs(&store);
}

#[test]
fn an_oversized_segment_is_cut_even_alone() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(Keys::default());
    let mut c = config(dir.path());
    c.max_segment_rows = 1_000_000;
    // One flush, no compaction: one segment of ~100 rows per partition.
    let (store, _) = Store::open(c, keys.clone(), Arc::new(SystemClock)).unwrap();
    store
        .append_blocking(P, (0..600).map(ev).collect())
        .unwrap();
    store.flush_now().unwrap();
    let before = store.stats().segments;
    drop(store);
    // Reopened with smaller segments (as a store from before runs, or a large flush): each
    // lone segment is over the bound, so it is cut, though the partition has one file.
    let (store, _) = Store::open(config(dir.path()), keys, Arc::new(SystemClock)).unwrap();
    assert!(store.compact_now().unwrap() > 0);
    assert!(store.stats().segments > before);
    assert_eq!(store.stats().segment_rows, 600);
    for s in store.snapshot(P).segments {
        assert!(s.rows <= 40, "{} rows", s.rows);
    }
    // Nothing more to do: cut segments are not cut again.
    assert_eq!(store.compact_now().unwrap(), 0);
}

#[test]
fn retention_drops_a_segment_older_than_every_cutoff_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = compacted(dir.path(), Arc::new(Keys::default()), 3);
    // Every event of the first month (times 1.7e12 + i ms) is older than this.
    let cutoff = 1_700_000_000_000 + 10 * 86_400_000;
    // Paths and sizes only: holding the segments themselves would keep their files alive.
    let old: Vec<(std::path::PathBuf, u64)> = store
        .snapshot(P)
        .segments
        .iter()
        .filter(|s| s.max_time_ms < cutoff)
        .map(|s| (store.segment_path(s), s.rows))
        .collect();
    assert!(!old.is_empty());
    let old_rows: u64 = old.iter().map(|(_, rows)| rows).sum();
    // Garbage in place of those files: reading one would fail.
    for (path, _) in &old {
        std::fs::write(path, b"not a segment").unwrap();
    }
    let all = |_: &canopy_types::Event| true;
    let selector = crate::RowSelector::Events {
        from_ms: i64::MIN,
        to_ms: cutoff,
        matches: &all,
    };
    let report = store
        .expire_events(P, &selector, Some(cutoff), Duration::from_secs(5))
        .unwrap();
    assert_eq!(report.event_rows, old_rows);
    assert_eq!(report.segments_dropped, old.len());
    assert_eq!(report.segments_rewritten, 0);
    assert!(report.old_files_unlinked);
    for (path, _) in &old {
        assert!(!path.exists());
    }
    assert_eq!(store.stats().segment_rows, 1800 - old_rows);
}
