use crate::{Store, StoreConfig, batch_to_events, read_segment};
use canopy_crypto::MemoryKeyring as Keys;
use canopy_types::{Event, PersonKey, ProjectId, Record, SystemClock};
use std::sync::Arc;

pub(crate) fn ev(i: u64, insert_id: &str) -> Record {
    let mut props = serde_json::Map::new();
    props.insert("i".into(), i.into());
    Record::Event(Event {
        project: ProjectId(1),
        name: "e".into(),
        // Spread over three months so several partitions exist.
        time_ms: 1_700_000_000_000 + (i as i64 % 3) * 31 * 86_400_000 + i as i64,
        distinct_id: format!("u{}", i % 50),
        person: PersonKey(i % 50 + 1),
        insert_id: insert_id.into(),
        received_ms: 0,
        properties: props,
        ip: None,
    })
}

fn config(dir: &std::path::Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir);
    c.background = false;
    c.buckets = 4;
    c
}

fn all_events(store: &Store) -> Vec<Event> {
    let snap = store.snapshot(ProjectId(1));
    let mut out = Vec::new();
    for s in &snap.segments {
        if s.partition.table != crate::Table::Events {
            continue;
        }
        let key = store.segment_key(s).unwrap();
        for b in read_segment(&store.segment_path(s), &key, s.id).unwrap() {
            out.extend(batch_to_events(&b, ProjectId(1)).unwrap());
        }
    }
    for c in &snap.tail {
        out.extend(c.events.iter().cloned());
    }
    out.sort_by_key(|e| e.properties["i"].as_u64());
    out
}

#[test]
fn flushed_and_unflushed_events_survive_reopen_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(Keys::default());
    {
        let (store, _) =
            Store::open(config(dir.path()), keys.clone(), Arc::new(SystemClock)).unwrap();
        let batch: Vec<Record> = (0..300).map(|i| ev(i, "")).collect();
        store.append_blocking(ProjectId(1), batch).unwrap();
        store.flush_now().unwrap();
        let batch: Vec<Record> = (300..400).map(|i| ev(i, "")).collect();
        store.append_blocking(ProjectId(1), batch).unwrap();
        assert_eq!(all_events(&store).len(), 400);
        // Dropped without shutdown: the last 100 live only in the WAL.
    }
    let (store, report) = Store::open(config(dir.path()), keys, Arc::new(SystemClock)).unwrap();
    assert_eq!(report.records_replayed, 100);
    let events = all_events(&store);
    assert_eq!(events.len(), 400);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.properties["i"], i as u64);
    }
    // Segments are sorted by (person, time).
    for s in store.snapshot(ProjectId(1)).segments {
        let key = store.segment_key(&s).unwrap();
        for b in read_segment(&store.segment_path(&s), &key, s.id).unwrap() {
            let evs = batch_to_events(&b, ProjectId(1)).unwrap();
            assert!(
                evs.windows(2)
                    .all(|w| (w[0].person, w[0].time_ms) <= (w[1].person, w[1].time_ms))
            );
        }
    }
}

#[test]
fn duplicates_by_insert_id_are_dropped_even_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(Keys::default());
    {
        let (store, _) =
            Store::open(config(dir.path()), keys.clone(), Arc::new(SystemClock)).unwrap();
        let out = store
            .append_blocking(ProjectId(1), vec![ev(1, "a"), ev(1, "a"), ev(2, "")])
            .unwrap();
        assert_eq!((out.stored, out.duplicates), (2, 1));
    }
    let (store, _) = Store::open(config(dir.path()), keys, Arc::new(SystemClock)).unwrap();
    let out = store
        .append_blocking(ProjectId(1), vec![ev(1, "a")])
        .unwrap();
    assert_eq!(out.duplicates, 1);
    assert_eq!(all_events(&store).len(), 2);
}

#[test]
fn compaction_merges_small_segments_without_losing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(Keys::default());
    let (store, _) = Store::open(config(dir.path()), keys.clone(), Arc::new(SystemClock)).unwrap();
    for round in 0..5u64 {
        let batch: Vec<Record> = (round * 100..round * 100 + 100)
            .map(|i| ev(i, ""))
            .collect();
        store.append_blocking(ProjectId(1), batch).unwrap();
        store.flush_now().unwrap();
    }
    let before = store.stats().segments;
    let merges = store.compact_now().unwrap();
    assert!(merges > 0);
    assert!(store.stats().segments < before);
    assert_eq!(all_events(&store).len(), 500);
    // Replaced files are gone from disk, and a reopen sees the same.
    let files = walk(dir.path())
        .into_iter()
        .filter(|p| p.ends_with(".parquet"))
        .count();
    assert_eq!(files, store.stats().segments);
    drop(store);
    let (store, _) = Store::open(config(dir.path()), keys, Arc::new(SystemClock)).unwrap();
    assert_eq!(all_events(&store).len(), 500);
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

/// Regression: the dedup window lived only in memory, so after a flush and a restart the same
/// events could be stored a second time.
#[test]
fn dedup_survives_restart_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(Keys::default());
    {
        let (store, _) =
            Store::open(config(dir.path()), keys.clone(), Arc::new(SystemClock)).unwrap();
        store
            .append_blocking(ProjectId(1), vec![ev(1, "a"), ev(2, "b")])
            .unwrap();
        store.shutdown().unwrap();
    }
    let (store, report) = Store::open(config(dir.path()), keys, Arc::new(SystemClock)).unwrap();
    assert_eq!(report.records_replayed, 0, "everything was flushed");
    let out = store
        .append_blocking(ProjectId(1), vec![ev(1, "a"), ev(2, "b")])
        .unwrap();
    assert_eq!((out.stored, out.duplicates), (0, 2));
    assert_eq!(all_events(&store).len(), 2);
}

/// A store with `flushed` events in segments and `in_tail` more only in the tail (and WAL).
fn store_with_events(dir: &std::path::Path, flushed: u64, in_tail: u64) -> Store {
    let (store, _) = Store::open(
        config(dir),
        Arc::new(Keys::default()),
        Arc::new(SystemClock),
    )
    .unwrap();
    let p = ProjectId(1);
    store
        .append_blocking(p, (0..flushed).map(|i| ev(i, "")).collect())
        .unwrap();
    store.flush_now().unwrap();
    if in_tail > 0 {
        store
            .append_blocking(p, (flushed..flushed + in_tail).map(|i| ev(i, "")).collect())
            .unwrap();
    }
    store
}

fn profile(person: u64, email: &str) -> Record {
    Record::Profile(canopy_types::ProfileUpdate {
        project: ProjectId(1),
        target: canopy_types::ProfileTarget::User {
            distinct_id: format!("u{person}"),
        },
        person: PersonKey(person),
        operation: "$set".into(),
        value: serde_json::json!({ "$email": email }),
        time_ms: 1_700_000_000_000,
        received_ms: 0,
        modifiers: serde_json::Map::new(),
    })
}

/// Every file under the data dir, decrypted where the store still has its key, searched for
/// the canary: what an attacker holding the disk and the keys the manifest lists could read.
fn readable_bytes_contain(store: &Store, dir: &std::path::Path, canary: &str) -> bool {
    let raw = walk(dir).iter().any(|p| {
        std::fs::read(p)
            .unwrap()
            .windows(canary.len())
            .any(|w| w == canary.as_bytes())
    });
    let snap = store.snapshot(ProjectId(1));
    let decrypted = snap.segments.iter().any(|s| {
        let key = store.segment_key(s).unwrap();
        read_segment(&store.segment_path(s), &key, s.id)
            .unwrap()
            .iter()
            .any(|b| format!("{b:?}").contains(canary))
    });
    raw || decrypted
}

#[test]
fn erasure_removes_a_persons_rows_from_segments_and_tail_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(Keys::default());
    let (store, _) = Store::open(config(dir.path()), keys.clone(), Arc::new(SystemClock)).unwrap();
    let p = ProjectId(1);
    store
        .append_blocking(p, (0..300).map(|i| ev(i, "")).collect())
        .unwrap();
    store
        .append_blocking(
            p,
            vec![
                profile(3, "canary-erased@example.com"),
                profile(4, "kept@example.com"),
            ],
        )
        .unwrap();
    store.flush_now().unwrap();
    // Still in the tail (and the WAL) when the erasure starts.
    store
        .append_blocking(p, (300..400).map(|i| ev(i, "")).collect())
        .unwrap();
    let erased: std::collections::HashSet<u64> = [3, 7].into();
    let before = store.count_person_rows(p, &erased).unwrap();
    assert_eq!(before.total(), 8 + 8 + 1);
    assert!(readable_bytes_contain(&store, dir.path(), "canary-erased"));

    let report = store
        .erase_persons(p, &erased, std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!((report.event_rows, report.profile_rows), (16, 1));
    assert_eq!(report.rows_by_key[&3], 9);
    assert_eq!(report.rows_by_key[&7], 8);
    assert_eq!(report.tail_records_flushed, 100);
    assert!(report.segments_rewritten + report.segments_dropped > 0);
    assert!(report.old_files_unlinked);
    assert_eq!(store.count_person_rows(p, &erased).unwrap().total(), 0);
    let left = all_events(&store);
    assert_eq!(left.len(), 400 - 16);
    assert!(left.iter().all(|e| !erased.contains(&e.person.0)));
    assert!(!readable_bytes_contain(&store, dir.path(), "canary-erased"));
    assert!(readable_bytes_contain(&store, dir.path(), "kept@example"));
    // No WAL file is left holding the erased rows.
    assert!(
        walk(&dir.path().join("wal"))
            .iter()
            .all(|f| !f.ends_with(".wal") || std::fs::metadata(f).unwrap().len() < 4096)
    );

    // The same after a restart: nothing comes back from the WAL or an old manifest.
    drop(store);
    let (store, report) = Store::open(config(dir.path()), keys, Arc::new(SystemClock)).unwrap();
    assert_eq!(report.records_replayed, 0);
    assert_eq!(store.count_person_rows(p, &erased).unwrap().total(), 0);
    assert_eq!(all_events(&store).len(), 400 - 16);
    // Erasing again finds nothing and rewrites nothing.
    let again = store
        .erase_persons(p, &erased, std::time::Duration::from_secs(1))
        .unwrap();
    assert_eq!((again.event_rows, again.segments_rewritten), (0, 0));
}

#[test]
fn erasure_waits_for_queries_holding_the_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_events(dir.path(), 100, 0);
    let p = ProjectId(1);
    let held = store.snapshot(p);
    let erased: std::collections::HashSet<u64> = [5].into();
    let report = store
        .erase_persons(p, &erased, std::time::Duration::from_millis(50))
        .unwrap();
    assert!(!report.old_files_unlinked, "a snapshot still holds them");
    drop(held);
    store.compact_now().unwrap();
    let files = walk(dir.path())
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .count();
    assert_eq!(files, store.stats().segments);
}

#[test]
fn clean_up_deletes_exactly_the_events_a_filter_selects_after_a_matching_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_events(dir.path(), 300, 100);
    let p = ProjectId(1);
    // Events whose `i` is a multiple of 7, in the first month only.
    let matches = |e: &canopy_types::Event| e.properties["i"].as_u64().is_some_and(|i| i % 7 == 0);
    let (from, to) = (1_700_000_000_000, 1_700_000_000_000 + 31 * 86_400_000);
    let selector = crate::RowSelector::Events {
        from_ms: from,
        to_ms: to,
        matches: &matches,
    };
    let expected = (0..400u64).filter(|i| i % 7 == 0 && i % 3 == 0).count() as u64;
    assert_eq!(store.count_selected(p, &selector).unwrap(), expected);
    assert_eq!(all_events(&store).len(), 400, "a dry run changes nothing");
    let report = store
        .rewrite_without(p, &selector, std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!(report.event_rows, expected);
    let left = all_events(&store);
    assert_eq!(left.len() as u64, 400 - expected);
    assert!(left.iter().all(|e| {
        let i = e.properties["i"].as_u64().unwrap();
        !(i % 7 == 0 && i % 3 == 0)
    }));
    assert_eq!(store.count_selected(p, &selector).unwrap(), 0);
}

#[test]
fn rectification_rewrites_a_persons_events_and_the_wrong_value_survives_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_events(dir.path(), 200, 50);
    let p = ProjectId(1);
    // Person 3's events get a value sent by mistake; person 4's keep theirs.
    let mut wrong: Vec<Record> = Vec::new();
    for (i, person) in [(1000, 3), (1001, 3), (1002, 4)] {
        let Record::Event(mut e) = ev(i, "") else {
            unreachable!()
        };
        e.person = PersonKey(person);
        e.properties
            .insert("note".into(), format!("canary-mistake-{person}").into());
        wrong.push(Record::Event(e));
    }
    store.append_blocking(p, wrong).unwrap();
    store.flush_now().unwrap();
    let keys: std::collections::HashSet<u64> = [3].into();
    let change = |e: &mut canopy_types::Event| e.properties.remove("note").is_some();
    let report = store
        .rewrite_events_of(p, &keys, &change, std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!(report.event_rows, 2, "two events changed");
    assert!(report.old_files_unlinked);
    let events = all_events(&store);
    assert_eq!(events.len(), 253, "nothing removed");
    assert!(!readable_bytes_contain(
        &store,
        dir.path(),
        "canary-mistake-3"
    ));
    assert!(readable_bytes_contain(
        &store,
        dir.path(),
        "canary-mistake-4"
    ));
    // Person 3's other events are intact.
    assert_eq!(
        events.iter().filter(|e| e.person == PersonKey(3)).count(),
        events_of(3, 250) + 2
    );
}

/// How many of the first `n` test events belong to `person` (`ev` gives `i % 50 + 1`).
fn events_of(person: u64, n: u64) -> usize {
    (0..n).filter(|i| i % 50 + 1 == person).count()
}
