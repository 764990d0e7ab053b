//! Erasing persons (issue #6): every row stored under any of a set of person keys leaves the
//! store. The tail is flushed first (its WAL files are deleted once covered), then each
//! segment of the keys' buckets that holds such rows is rewritten without them under a fresh
//! data key and a new id; the manifest swap drops the old wrapped key (the only copy), and the
//! old file is unlinked once no query holds it. A later scan ([`Store::count_person_rows`])
//! proves what is left.

use crate::flush::{flush_frozen, write_new_segment};
use crate::layout::Table;
use crate::manifest::SegmentMeta;
use crate::segment::{read_segment, read_segment_column};
use crate::store::{Inner, Store};
use crate::{Result, StoreError};
use arrow::array::{Array, BooleanArray, UInt64Array};
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

/// Rows still stored under a set of person keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowsFound {
    /// Segments checked: every live segment of the project.
    pub segments_scanned: usize,
    /// Of those, segments whose person filter could not rule the keys out, read in full.
    pub segments_read: usize,
    pub segment_rows: u64,
    pub tail_rows: u64,
}

impl RowsFound {
    pub fn total(&self) -> u64 {
        self.segment_rows + self.tail_rows
    }
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
            // In the keys' bucket, within the segment's person range (a piece of a sorted run)
            // and not ruled out by its person filter: usually one segment per month.
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
    fn tail_rows(&self, chunk: &crate::tail::TailChunk) -> u64 {
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

    /// The rewrite every deletion and correction shares: flush the tail (deleting its WAL
    /// files), let `rewrite_one` decide for each candidate segment what replaces it, write the
    /// replacements under fresh keys, swap the manifest, unlink the old files.
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
            let _guard = inner.flush_lock.lock();
            inner.wal.rotate_blocking()?;
            report.tail_records_flushed = flush_frozen(inner)?;
            let t_flush = t0.elapsed();
            let candidates: Vec<Arc<SegmentMeta>> = inner
                .segments
                .read()
                .iter()
                .filter(|s| s.partition.project == project && candidate(s))
                .cloned()
                .collect();
            report.segments_scanned = candidates.len();
            let results = crate::parallel::map_on_cores(
                &candidates,
                |s| rewrite_one(inner, s),
                || Err(StoreError::Manifest("a rewrite worker panicked".into())),
            );
            let mut rewrites = Vec::new();
            for r in results {
                if let Some(rw) = r? {
                    rewrites.push(rw);
                }
            }
            let t_read = t0.elapsed();
            if rewrites.is_empty() {
                return Ok(ErasureReport {
                    old_files_unlinked: true,
                    ..report
                });
            }
            self.swap_rewritten(&rewrites, &mut report)?;
            tracing::debug!(
                flush_ms = t_flush.as_millis(),
                read_ms = (t_read - t_flush).as_millis(),
                write_ms = (t0.elapsed() - t_read).as_millis(),
                "rewrite"
            );
            rewrites.iter().map(|r| r.old.id).collect()
        };
        report.old_files_unlinked = self.await_unlink(&replaced, unlink_wait);
        Ok(report)
    }

    /// Writes the kept rows of each rewritten segment under a fresh key, then swaps the
    /// manifest (dropping the old wrapped keys) and the live segment list in one step.
    fn swap_rewritten(&self, rewrites: &[Rewrite], report: &mut ErasureReport) -> Result<()> {
        let inner = &self.inner;
        let mut manifest = inner.manifest.lock().clone();
        let jobs: Vec<(u64, &Rewrite)> = rewrites
            .iter()
            .filter(|r| r.kept.iter().any(|b| b.num_rows() > 0))
            .enumerate()
            .map(|(i, r)| (manifest.next_segment_id + i as u64, r))
            .collect();
        manifest.next_segment_id += jobs.len() as u64;
        let written = crate::parallel::map_on_cores(
            &jobs,
            |(id, r)| {
                let kept: Vec<RecordBatch> = r
                    .kept
                    .iter()
                    .filter(|b| b.num_rows() > 0)
                    .cloned()
                    .collect();
                let range = (r.old.min_time_ms, r.old.max_time_ms);
                // Fewer rows of the same persons: still the same piece of the sorted run.
                write_new_segment(inner, *id, r.old.partition, &kept, range).map(|mut meta| {
                    meta.person_range = r.old.person_range;
                    meta
                })
            },
            || Err(StoreError::Manifest("an erasure writer panicked".into())),
        );
        let added = written.into_iter().collect::<Result<Vec<SegmentMeta>>>()?;
        report.segments_rewritten = added.len();
        report.segments_dropped = rewrites.len() - added.len();
        for r in rewrites {
            let n: u64 = r.removed.values().sum();
            match r.old.partition.table {
                Table::Events => report.event_rows += n,
                Table::ProfileUpdates => report.profile_rows += n,
            }
            for (k, v) in &r.removed {
                *report.rows_by_key.entry(*k).or_default() += v;
            }
        }
        let old_ids: HashSet<u64> = rewrites.iter().map(|r| r.old.id).collect();
        crate::compaction::replace_segments(inner, manifest, &old_ids, added)?;
        metrics::counter!("canopy_store_erasure_rewrites_total").increment(rewrites.len() as u64);
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

    /// Counts the rows of `project` stored under one of `keys`, over every segment of the
    /// project (not only the keys' buckets: the proof does not rely on the partitioning it
    /// checks) and the tail. A segment whose person filter rules every key out holds none of
    /// them; the others have their person column read and counted (a segment found on disk at
    /// start-up gets its filter from that read).
    pub fn count_person_rows(&self, project: ProjectId, keys: &HashSet<u64>) -> Result<RowsFound> {
        let snapshot = self.snapshot(project);
        let counts = crate::parallel::map_on_cores(
            &snapshot.segments,
            |s| -> Result<Option<u64>> {
                if let Some(filter) = s.persons.get()
                    && !keys.iter().any(|k| filter.may_contain(*k))
                {
                    return Ok(None);
                }
                let key = self.segment_key(s)?;
                let columns = read_segment_column(&self.segment_path(s), &key, s.id, "person")?;
                if s.persons.get().is_none() {
                    let _ = s
                        .persons
                        .set(crate::person_filter::PersonFilter::of_columns(&columns)?);
                }
                let mut n = 0;
                for c in columns {
                    let persons = person_array(&c)?;
                    n += persons.values().iter().filter(|p| keys.contains(p)).count() as u64;
                }
                Ok(Some(n))
            },
            || {
                Err(StoreError::Manifest(
                    "a verification worker panicked".into(),
                ))
            },
        );
        let mut found = RowsFound {
            segments_scanned: snapshot.segments.len(),
            ..Default::default()
        };
        for c in counts {
            if let Some(n) = c? {
                found.segments_read += 1;
                found.segment_rows += n;
            }
        }
        let persons = RowSelector::Persons(keys);
        for chunk in &snapshot.tail {
            found.tail_rows += persons.tail_rows(chunk);
        }
        Ok(found)
    }

    /// Builds the person filter of every live segment that lacks one (those found on disk at
    /// start-up), so the first erasure's verification need not read them; returns how many.
    pub fn warm_person_filters(&self) -> Result<usize> {
        let missing: Vec<Arc<SegmentMeta>> = self
            .inner
            .segments
            .read()
            .iter()
            .filter(|s| s.persons.get().is_none())
            .cloned()
            .collect();
        let built = crate::parallel::map_on_cores(
            &missing,
            |s| -> Result<()> {
                let key = self.segment_key(s)?;
                let columns = read_segment_column(&self.segment_path(s), &key, s.id, "person")?;
                let _ = s
                    .persons
                    .set(crate::person_filter::PersonFilter::of_columns(&columns)?);
                Ok(())
            },
            || Err(StoreError::Manifest("a filter worker panicked".into())),
        );
        built.into_iter().collect::<Result<Vec<()>>>()?;
        let bytes: usize = self
            .inner
            .segments
            .read()
            .iter()
            .filter_map(|s| s.persons.get().map(|f| f.heap_bytes()))
            .sum();
        metrics::gauge!("canopy_store_person_filter_bytes").set(bytes as f64);
        Ok(missing.len())
    }
}

fn person_array(column: &Arc<dyn Array>) -> Result<&UInt64Array> {
    column
        .as_any()
        .downcast_ref::<UInt64Array>()
        .ok_or_else(|| StoreError::Manifest("segment person column is not UInt64".into()))
}

/// Reads one segment and, when it holds rows of `keys`, returns the rows to keep.
pub(crate) fn read_for_rewrite(inner: &Inner, s: &SegmentMeta) -> Result<Vec<RecordBatch>> {
    let key = inner
        .keyring
        .project_key(s.partition.project.0)?
        .unwrap_key(&s.wrapped_key, &crate::layout::segment_key_purpose(s.id))?;
    read_segment(&inner.config.data_dir.join(&s.file), &key, s.id)
}

fn filter_segment(
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
    }))
}
