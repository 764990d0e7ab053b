//! Erasing persons (issue #6): every row stored under any of a set of person keys leaves the
//! store. The tail is flushed first (its WAL files are deleted once covered), then each
//! segment of the keys' buckets that holds such rows is rewritten without them under a fresh
//! data key and a new id; the manifest swap drops the old wrapped key (the only copy), and the
//! old file is unlinked once no query holds it. A later scan ([`Store::count_person_rows`])
//! proves what is left.

use crate::flush::{flush_frozen, write_new_segment};
use crate::layout::Table;
use crate::manifest::SegmentMeta;
use crate::person_filter::person_array;
use crate::segment::read_segment;
use crate::store::{Inner, Store};
use crate::{Result, StoreError};
use arrow::array::BooleanArray;
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use canopy_types::{PersonKey, ProjectId};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What an erasure removed, by table and by person key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasureReport {
    pub event_rows: u64,
    pub profile_rows: u64,
    /// Rows removed per stored person key (only keys that had rows).
    pub rows_by_key: HashMap<u64, u64>,
    /// Records moved from the tail (and its WAL files) into segments before the rewrite.
    pub tail_records_flushed: usize,
    /// Segments rewritten without the rows, and segments that held nothing else (dropped).
    pub segments_rewritten: usize,
    pub segments_dropped: usize,
    /// Segments of the keys' buckets that were read.
    pub segments_scanned: usize,
    /// Every replaced file was unlinked (false: a long query still held one when the wait
    /// ended; it is unlinked when that query ends, and its key is already gone).
    pub old_files_unlinked: bool,
}

/// Which rows a rewrite removes.
pub enum RowSelector<'a> {
    /// Every row (events and profile updates) stored under one of these person keys.
    Persons(&'a HashSet<u64>),
    /// Events (not profile updates) in `[from_ms, to_ms)` for which `matches` holds: data
    /// clean-up of events sent by mistake.
    Events {
        from_ms: i64,
        to_ms: i64,
        matches: &'a (dyn Fn(&canopy_types::Event) -> bool + Sync),
    },
}

impl RowSelector<'_> {
    /// Could `s` hold selected rows (without reading it)?
    pub(crate) fn may_touch(&self, s: &SegmentMeta, buckets: u32) -> bool {
        match self {
            // In the keys' bucket, within the segment's person range and not ruled out by its
            // person filter: in a compacted partition, one segment of its run and at most a
            // few newer ones.
            RowSelector::Persons(keys) => keys.iter().any(|k| {
                PersonKey(*k).bucket(buckets) == s.partition.bucket
                    && s.person_range.is_none_or(|(lo, hi)| (lo..=hi).contains(k))
                    && s.persons.get().is_none_or(|f| f.may_contain(*k))
            }),
            RowSelector::Events { from_ms, to_ms, .. } => {
                s.partition.table == Table::Events
                    && s.max_time_ms >= *from_ms
                    && s.min_time_ms < *to_ms
            }
        }
    }

    /// Is this tail record selected?
    fn selects_event(&self, e: &canopy_types::Event) -> bool {
        match self {
            RowSelector::Persons(keys) => keys.contains(&e.person.0),
            RowSelector::Events {
                from_ms,
                to_ms,
                matches,
            } => e.time_ms >= *from_ms && e.time_ms < *to_ms && matches(e),
        }
    }

    /// How many records of a tail chunk are selected (profile updates only by person).
    pub(crate) fn tail_rows(&self, chunk: &crate::tail::TailChunk) -> u64 {
        let events = chunk
            .events
            .iter()
            .filter(|e| self.selects_event(e))
            .count();
        let profiles = match self {
            RowSelector::Persons(keys) => chunk
                .profiles
                .iter()
                .filter(|p| keys.contains(&p.person.0))
                .count(),
            RowSelector::Events { .. } => 0,
        };
        (events + profiles) as u64
    }

    /// Which rows of `batch` to keep; counts removed rows by person key.
    fn keep_mask(
        &self,
        batch: &RecordBatch,
        project: ProjectId,
        removed: &mut HashMap<u64, u64>,
    ) -> Result<BooleanArray> {
        let column = batch
            .column_by_name("person")
            .ok_or_else(|| StoreError::Manifest("segment lacks the person column".into()))?;
        let persons = person_array(column)?;
        let selected: Vec<bool> = match self {
            RowSelector::Persons(keys) => {
                persons.values().iter().map(|p| keys.contains(p)).collect()
            }
            RowSelector::Events { .. } => crate::columns::batch_to_events(batch, project)?
                .iter()
                .map(|e| self.selects_event(e))
                .collect(),
        };
        Ok(selected
            .iter()
            .zip(persons.values().iter())
            .map(|(sel, p)| {
                if *sel {
                    *removed.entry(*p).or_default() += 1;
                }
                Some(!sel)
            })
            .collect())
    }
}

/// One segment's part of a rewrite: the rows that replace it, and how many rows of each
/// person key were removed (or, for a correction, changed).
pub(crate) struct Rewrite {
    pub old: Arc<SegmentMeta>,
    pub kept: Vec<RecordBatch>,
    pub removed: HashMap<u64, u64>,
    /// Rows removed without being read (a segment dropped whole), so not counted by person.
    pub dropped_unread: u64,
}

/// A segment replaced by a rewrite (its kept rows already written out) and its replacement,
/// written under a fresh key and the id reserved for it (`None` when no row was left).
struct Replaced {
    rewrite: Rewrite,
    new: Option<SegmentMeta>,
}

/// Reads one candidate, lets `rewrite_one` decide, and writes the replacement as segment `id`.
fn replace_one(
    inner: &Inner,
    id: u64,
    s: &Arc<SegmentMeta>,
    rewrite_one: &(impl Fn(&Inner, &Arc<SegmentMeta>) -> Result<Option<Rewrite>> + Sync),
) -> Result<Option<Replaced>> {
    let Some(mut rw) = rewrite_one(inner, s)? else {
        return Ok(None);
    };
    let kept: Vec<RecordBatch> = std::mem::take(&mut rw.kept)
        .into_iter()
        .filter(|b| b.num_rows() > 0)
        .collect();
    let new = if kept.is_empty() {
        None
    } else {
        let range = (rw.old.min_time_ms, rw.old.max_time_ms);
        let mut meta = write_new_segment(inner, id, rw.old.partition, &kept, range)?;
        // Fewer rows of the same persons: still the same piece of the sorted run.
        meta.in_run = rw.old.in_run;
        Some(meta)
    };
    Ok(Some(Replaced { rewrite: rw, new }))
}

impl Store {
    /// Removes every row of `project` stored under one of `keys` (a batch of erasures costs one
    /// rewrite per affected segment). Waits up to `unlink_wait` for running queries to release
    /// the replaced files before reporting whether they are gone.
    pub fn erase_persons(
        &self,
        project: ProjectId,
        keys: &HashSet<u64>,
        unlink_wait: Duration,
    ) -> Result<ErasureReport> {
        self.rewrite_without(project, &RowSelector::Persons(keys), unlink_wait)
    }

    /// Counts the rows `selector` would remove (segments and tail), changing nothing: the dry
    /// run of a clean-up.
    pub fn count_selected(&self, project: ProjectId, selector: &RowSelector<'_>) -> Result<u64> {
        let snapshot = self.snapshot(project);
        let buckets = self.inner.manifest.lock().buckets;
        let touched: Vec<Arc<SegmentMeta>> = snapshot
            .segments
            .iter()
            .filter(|s| selector.may_touch(s, buckets))
            .cloned()
            .collect();
        let counts = crate::parallel::map_on_cores(
            &touched,
            |s| -> Result<u64> {
                let key = self.segment_key(s)?;
                let mut removed = HashMap::new();
                for b in read_segment(&self.segment_path(s), &key, s.id)? {
                    selector.keep_mask(&b, project, &mut removed)?;
                }
                Ok(removed.values().sum())
            },
            || Err(StoreError::Manifest("a counting worker panicked".into())),
        );
        let mut n = 0;
        for c in counts {
            n += c?;
        }
        for chunk in &snapshot.tail {
            n += selector.tail_rows(chunk);
        }
        Ok(n)
    }

    /// Removes the rows `selector` picks: the tail is flushed first, then every segment that
    /// holds such rows is rewritten without them under a fresh key (see the module comment).
    pub fn rewrite_without(
        &self,
        project: ProjectId,
        selector: &RowSelector<'_>,
        unlink_wait: Duration,
    ) -> Result<ErasureReport> {
        let buckets = self.inner.manifest.lock().buckets;
        self.rewrite(
            project,
            |s| selector.may_touch(s, buckets),
            |inner, s| filter_segment(inner, s, selector),
            unlink_wait,
        )
    }

    /// Retention: removes the events `selector` picks, like [`Store::rewrite_without`], but an
    /// events segment whose every event is older than `whole_before_ms` (the oldest cut-off,
    /// when every tier has a period) is dropped whole — its key and file go — without being
    /// read.
    pub fn expire_events(
        &self,
        project: ProjectId,
        selector: &RowSelector<'_>,
        whole_before_ms: Option<i64>,
        unlink_wait: Duration,
    ) -> Result<ErasureReport> {
        let buckets = self.inner.manifest.lock().buckets;
        let whole = |s: &SegmentMeta| {
            s.partition.table == Table::Events && whole_before_ms.is_some_and(|t| s.max_time_ms < t)
        };
        self.rewrite(
            project,
            |s| whole(s) || selector.may_touch(s, buckets),
            |inner, s| {
                if whole(s) {
                    return Ok(Some(Rewrite {
                        old: s.clone(),
                        kept: Vec::new(),
                        removed: HashMap::new(),
                        dropped_unread: s.rows,
                    }));
                }
                filter_segment(inner, s, selector)
            },
            unlink_wait,
        )
    }

    /// The rewrite every deletion and correction shares: flush the tail (deleting its WAL
    /// files), let `rewrite_one` decide for each candidate segment what replaces it and write
    /// that under a fresh key at once (so memory holds one segment per core, not the rows of
    /// every segment touched), then swap the manifest for all of them and unlink the old files.
    pub(crate) fn rewrite(
        &self,
        project: ProjectId,
        candidate: impl Fn(&SegmentMeta) -> bool,
        rewrite_one: impl Fn(&Inner, &Arc<SegmentMeta>) -> Result<Option<Rewrite>> + Sync,
        unlink_wait: Duration,
    ) -> Result<ErasureReport> {
        let inner = &self.inner;
        let mut report = ErasureReport::default();
        let t0 = Instant::now();
        let replaced: Vec<u64> = {
            // Held to the end: no flush or compaction allocates segment ids or swaps the
            // manifest meanwhile.
            let _guard = inner.flush_lock.lock();
            inner.wal.rotate_blocking()?;
            report.tail_records_flushed = flush_frozen(inner)?;
            let t_flush = t0.elapsed();
            let first_id = inner.manifest.lock().next_segment_id;
            let candidates: Vec<(u64, Arc<SegmentMeta>)> = inner
                .segments
                .read()
                .iter()
                .filter(|s| s.partition.project == project && candidate(s))
                .cloned()
                .enumerate()
                .map(|(i, s)| (first_id + i as u64, s))
                .collect();
            report.segments_scanned = candidates.len();
            let results = crate::parallel::map_on_cores(
                &candidates,
                |(id, s)| replace_one(inner, *id, s, &rewrite_one),
                || Err(StoreError::Manifest("a rewrite worker panicked".into())),
            );
            let mut done = Vec::new();
            let mut failure = None;
            for r in results {
                match r {
                    Ok(Some(d)) => done.push(d),
                    Ok(None) => {}
                    Err(e) => failure = Some(e),
                }
            }
            if let Some(e) = failure {
                // Nothing was swapped: the new files are orphans; remove them now.
                for d in &done {
                    if let Some(meta) = &d.new {
                        let _ = std::fs::remove_file(inner.config.data_dir.join(&meta.file));
                    }
                }
                return Err(e);
            }
            if done.is_empty() {
                return Ok(ErasureReport {
                    old_files_unlinked: true,
                    ..report
                });
            }
            let replaced: Vec<u64> = done.iter().map(|d| d.rewrite.old.id).collect();
            let mut manifest = inner.manifest.lock().clone();
            manifest.next_segment_id = first_id + candidates.len() as u64;
            self.swap_rewritten(manifest, done, &mut report)?;
            tracing::debug!(
                flush_ms = t_flush.as_millis(),
                rewrite_ms = (t0.elapsed() - t_flush).as_millis(),
                segments = report.segments_rewritten + report.segments_dropped,
                "rewrite"
            );
            replaced
        };
        report.old_files_unlinked = self.await_unlink(&replaced, unlink_wait);
        Ok(report)
    }

    /// Swaps the manifest (dropping the old wrapped keys) and the live segment list for the
    /// replacements in one step, and adds up what was removed.
    fn swap_rewritten(
        &self,
        manifest: crate::manifest::Manifest,
        done: Vec<Replaced>,
        report: &mut ErasureReport,
    ) -> Result<()> {
        let mut added = Vec::new();
        let mut old_ids = HashSet::new();
        for Replaced { rewrite: r, new } in &done {
            let n: u64 = r.removed.values().sum::<u64>() + r.dropped_unread;
            match r.old.partition.table {
                Table::Events => report.event_rows += n,
                Table::ProfileUpdates => report.profile_rows += n,
            }
            for (k, v) in &r.removed {
                *report.rows_by_key.entry(*k).or_default() += v;
            }
            match new {
                Some(meta) => {
                    report.segments_rewritten += 1;
                    added.push(meta.clone());
                }
                None => report.segments_dropped += 1,
            }
            old_ids.insert(r.old.id);
        }
        crate::compaction::replace_segments(&self.inner, manifest, &old_ids, added)?;
        metrics::counter!("canopy_store_erasure_rewrites_total").increment(done.len() as u64);
        Ok(())
    }

    /// Unlinks the replaced segments as soon as no snapshot holds them; true when all are gone.
    fn await_unlink(&self, ids: &[u64], wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            crate::compaction::sweep_graveyard(&self.inner);
            let pending = self
                .inner
                .graveyard
                .lock()
                .iter()
                .any(|s| ids.contains(&s.id));
            if !pending {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Reads one segment and, when it holds rows of `keys`, returns the rows to keep.
pub(crate) fn read_for_rewrite(inner: &Inner, s: &SegmentMeta) -> Result<Vec<RecordBatch>> {
    let key = inner
        .keyring
        .project_key(s.partition.project.0)?
        .unwrap_key(&s.wrapped_key, &crate::layout::segment_key_purpose(s.id))?;
    read_segment(&inner.config.data_dir.join(&s.file), &key, s.id)
}

pub(crate) fn filter_segment(
    inner: &Inner,
    s: &Arc<SegmentMeta>,
    selector: &RowSelector<'_>,
) -> Result<Option<Rewrite>> {
    let batches = read_for_rewrite(inner, s)?;
    let mut removed: HashMap<u64, u64> = HashMap::new();
    let mut kept = Vec::with_capacity(batches.len());
    for b in batches {
        let mask = selector.keep_mask(&b, s.partition.project, &mut removed)?;
        kept.push(filter_record_batch(&b, &mask)?);
    }
    if removed.is_empty() {
        return Ok(None);
    }
    Ok(Some(Rewrite {
        old: s.clone(),
        kept,
        removed,
        dropped_unread: 0,
    }))
}
