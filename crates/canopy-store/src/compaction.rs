//! Merging a partition's segments, so scans open few files and erasing one person rewrites
//! little. Each partition keeps one *sorted run*: segments of at most `max_segment_rows` rows
//! whose person-key ranges do not overlap (a person's rows of that month are in exactly one of
//! them), plus the segments added since the run was last cut. Those are merged into the run
//! (which is then cut again at person boundaries) once they are a fair share of it, or the new
//! files too many; until then they are merged among themselves — cut the same way — so a large
//! run is not rewritten for every flush and a person's newer rows are in one or two segments.
//! Every segment records its person-key range, so erasing a person reads only the segments
//! whose range holds them.

use crate::Result;
use crate::flush::new_segment;
use crate::layout::Partition;
use crate::manifest::{Manifest, SegmentMeta};
use crate::segment::read_segment;
use crate::store::Inner;
use arrow::array::{Array, ArrayRef, UInt64Array, new_null_array};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Partitions merged per call, so one call stays short.
const GROUPS_PER_CALL: usize = 8;
/// New rows must reach this fraction of the run's rows before the run is rewritten...
const NEW_ROWS_SHARE: u64 = 4;
/// ...unless this many new segments have piled up.
const MAX_NEW_SEGMENTS: usize = 16;

/// What a merge of one partition does.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// Fold these new segments into the run (all its segments) and cut it again.
    IntoRun(Vec<u64>),
    /// Merge only these new segments with each other (the run is too large to rewrite for
    /// them yet).
    NewOnly(Vec<u64>),
}

/// What planning needs to know of a segment.
#[derive(Debug, Clone, Copy)]
struct Shape {
    id: u64,
    rows: u64,
    in_run: bool,
    /// It holds one person only (a piece that cannot be cut smaller).
    one_person: bool,
}

impl Shape {
    fn of(s: &SegmentMeta) -> Self {
        Self {
            id: s.id,
            rows: s.rows,
            in_run: s.in_run,
            one_person: s.person_range.is_some_and(|(lo, hi)| lo == hi),
        }
    }
}

/// How to merge one partition, if at all (once it has `min_segments` files, counting the run
/// as one): the new segments go into the run once they are a fair share of it; until then
/// the small ones are merged among themselves, so the partition stays a few files without the
/// run being rewritten for every flush. A new segment larger than `max_rows` that holds more
/// than one person (a large flush, or a segment from before runs existed) is cut even alone,
/// so erasing a person never has to rewrite it whole.
fn plan_partition(segs: &[Shape], min_segments: usize, max_rows: u64) -> Option<Plan> {
    let (run, new): (Vec<&Shape>, Vec<&Shape>) = segs.iter().partition(|s| s.in_run);
    let oversized = |s: &&Shape| s.rows > max_rows && !s.one_person;
    let any_oversized = new.iter().any(oversized);
    let files = new.len() + usize::from(!run.is_empty());
    if new.is_empty() || (files < min_segments.max(2) && !any_oversized) {
        return None;
    }
    let run_rows: u64 = run.iter().map(|s| s.rows).sum();
    let new_rows: u64 = new.iter().map(|s| s.rows).sum();
    if new_rows * NEW_ROWS_SHARE >= run_rows || new.len() >= MAX_NEW_SEGMENTS {
        return Some(Plan::IntoRun(segs.iter().map(|s| s.id).collect()));
    }
    // Only merges that leave fewer or smaller files: segments under half a cut's size (two
    // or more make fewer files) and oversized ones. Merging new segments that are already
    // cut to size would cut them into as many again — on every call, forever.
    let merged: Vec<u64> = new
        .iter()
        .filter(|s| s.rows * 2 < max_rows || oversized(s))
        .map(|s| s.id)
        .collect();
    (merged.len() >= 2 || any_oversized).then_some(Plan::NewOnly(merged))
}

/// Merges up to [`GROUPS_PER_CALL`] partitions; returns how many merges ran.
pub(crate) fn compact_once(inner: &Inner) -> Result<usize> {
    let mut manifest = inner.manifest.lock().clone();
    let mut by_partition: BTreeMap<Partition, Vec<Shape>> = BTreeMap::new();
    for s in &manifest.segments {
        by_partition
            .entry(s.partition)
            .or_default()
            .push(Shape::of(s));
    }
    let mut plans: Vec<(Partition, Plan)> = Vec::new();
    for (partition, segs) in by_partition {
        let (min, max) = (
            inner.config.compaction_min_segments,
            inner.config.max_segment_rows,
        );
        if let Some(plan) = plan_partition(&segs, min, max) {
            plans.push((partition, plan));
        }
        if plans.len() >= GROUPS_PER_CALL {
            break;
        }
    }
    if plans.is_empty() {
        return Ok(0);
    }
    let mut replaced: Vec<u64> = Vec::new();
    let mut added: Vec<SegmentMeta> = Vec::new();
    for (partition, plan) in &plans {
        let (ids, into_run) = match plan {
            Plan::IntoRun(ids) => (ids, true),
            Plan::NewOnly(ids) => (ids, false),
        };
        let olds: Vec<SegmentMeta> = manifest
            .segments
            .iter()
            .filter(|s| ids.contains(&s.id))
            .cloned()
            .collect();
        added.extend(merge(inner, &mut manifest, *partition, &olds, into_run)?);
        replaced.extend(ids);
    }
    let replaced: HashSet<u64> = replaced.into_iter().collect();
    replace_segments(inner, manifest, &replaced, added)?;
    inner
        .compactions
        .fetch_add(plans.len() as u64, Ordering::Relaxed);
    metrics::counter!("canopy_store_compactions_total").increment(plans.len() as u64);
    sweep_graveyard(inner);
    Ok(plans.len())
}

/// Merges `olds` and cuts the result into segments of at most `max_segment_rows` rows (a
/// person never cut in two): the partition's new sorted run when `into_run`, else newer
/// segments beside it.
fn merge(
    inner: &Inner,
    manifest: &mut crate::manifest::Manifest,
    partition: Partition,
    olds: &[SegmentMeta],
    into_run: bool,
) -> Result<Vec<SegmentMeta>> {
    let project = partition.project;
    let mut batches = Vec::new();
    for s in olds {
        let key = {
            let pk = inner.keyring.project_key(project.0)?;
            pk.unwrap_key(&s.wrapped_key, &crate::layout::segment_key_purpose(s.id))?
        };
        batches.extend(read_segment(
            &inner.config.data_dir.join(&s.file),
            &key,
            s.id,
        )?);
    }
    let batch = merge_sorted(&batches)?;
    let whole = (
        olds.iter().map(|s| s.min_time_ms).min().unwrap_or(0),
        olds.iter().map(|s| s.max_time_ms).max().unwrap_or(0),
    );
    let column = batch
        .column_by_name("person")
        .ok_or_else(|| crate::StoreError::Manifest("segment lacks the person column".into()))?;
    let persons = crate::person_filter::person_array(column)?;
    let mut out = Vec::new();
    for (from, to) in run_cuts(persons, inner.config.max_segment_rows.max(1) as usize) {
        let piece = batch.slice(from, to - from);
        let range = time_range_of(&piece).unwrap_or(whole);
        let mut meta = new_segment(inner, manifest, partition, &[piece], range)?;
        meta.in_run = into_run;
        out.push(meta);
    }
    Ok(out)
}

/// The earliest and latest `time` of a piece (None when it has no time column or no times).
fn time_range_of(batch: &RecordBatch) -> Option<(i64, i64)> {
    let times = batch
        .column_by_name("time")?
        .as_any()
        .downcast_ref::<arrow::array::TimestampMillisecondArray>()?;
    Some((arrow::compute::min(times)?, arrow::compute::max(times)?))
}

/// Where to cut rows sorted by person into pieces of about equal size and at most `max` rows
/// (more only for a person who alone has more), never between two rows of one person.
pub(crate) fn run_cuts(persons: &UInt64Array, max: usize) -> Vec<(usize, usize)> {
    let n = persons.len();
    let max = max.max(1);
    let mut cuts = Vec::with_capacity(n.div_ceil(max));
    let mut from = 0;
    while from < n {
        // Even shares of what is left, so a cut moved to a person boundary does not leave a
        // sliver of a segment at the end.
        let left = n - from;
        let mut to = from + left.div_ceil(left.div_ceil(max));
        // Back off to the last person boundary...
        while to > from && to < n && persons.value(to) == persons.value(to - 1) {
            to -= 1;
        }
        // ...unless one person fills the whole piece: then that person alone.
        if to == from {
            to = from + 1;
            while to < n && persons.value(to) == persons.value(from) {
                to += 1;
            }
        }
        cuts.push((from, to));
        from = to;
    }
    cuts
}

/// Merges segment batches into one batch sorted by (person, time), at the Arrow level: the
/// schema is the union of the inputs' columns (typed property columns carry their type in their
/// name, so they never conflict; a column missing from an input is null there).
fn merge_sorted(batches: &[RecordBatch]) -> Result<RecordBatch> {
    let Some(first) = batches.first() else {
        return Err(crate::StoreError::Manifest("nothing to merge".into()));
    };
    let mut fields: Vec<Field> = first
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut extra: BTreeMap<String, Field> = BTreeMap::new();
    for b in &batches[1..] {
        for f in b.schema().fields() {
            if first.schema().field_with_name(f.name()).is_err() {
                extra
                    .entry(f.name().clone())
                    .or_insert_with(|| f.as_ref().clone().with_nullable(true));
            }
        }
    }
    fields.extend(extra.into_values());
    let schema = Arc::new(Schema::new(fields));
    let aligned = batches
        .iter()
        .map(|b| {
            let columns: Vec<ArrayRef> = schema
                .fields()
                .iter()
                .map(|f| match b.column_by_name(f.name()) {
                    Some(c) => c.clone(),
                    None => new_null_array(f.data_type(), b.num_rows()),
                })
                .collect();
            RecordBatch::try_new(schema.clone(), columns)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let all = concat_batches(&schema, &aligned)?;
    let sort_by = |name: &str| -> Result<SortColumn> {
        let values = all.column_by_name(name).cloned().ok_or_else(|| {
            crate::StoreError::Manifest(format!("segment lacks the column {name}"))
        })?;
        Ok(SortColumn {
            values,
            options: None,
        })
    };
    let indices = lexsort_to_indices(&[sort_by("person")?, sort_by("time")?], None)?;
    let columns = all
        .columns()
        .iter()
        .map(|c| take(c, &indices, None))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Swaps `replaced` segments for `added` ones: the manifest first (persisted atomically; the
/// replaced segments' wrapped keys leave it), then the live list, whose replaced entries go
/// to the graveyard until no snapshot holds them. Used by compaction and every rewrite.
pub(crate) fn replace_segments(
    inner: &Inner,
    mut manifest: Manifest,
    replaced: &HashSet<u64>,
    added: Vec<SegmentMeta>,
) -> Result<()> {
    manifest.segments.retain(|s| !replaced.contains(&s.id));
    manifest.segments.extend(added.iter().cloned());
    manifest.store(&inner.config.data_dir)?;
    {
        let mut segments = inner.segments.write();
        let mut graveyard = inner.graveyard.lock();
        let (gone, keep): (Vec<_>, Vec<_>) =
            segments.drain(..).partition(|s| replaced.contains(&s.id));
        *segments = keep;
        segments.extend(added.into_iter().map(Arc::new));
        graveyard.extend(gone);
    }
    *inner.manifest.lock() = manifest;
    Ok(())
}

/// Unlinks replaced segments that no snapshot holds any more.
pub(crate) fn sweep_graveyard(inner: &Inner) {
    let mut graveyard = inner.graveyard.lock();
    graveyard.retain(|s| {
        if Arc::strong_count(s) > 1 {
            return true;
        }
        let path = inner.config.data_dir.join(&s.file);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(segment = s.id, error = %e, "could not remove a replaced segment");
            return true;
        }
        if let Some(dir) = path.parent() {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        false
    });
}

#[cfg(test)]
mod tests {
    use super::{Plan, Shape, plan_partition, run_cuts};
    use arrow::array::UInt64Array;
    use proptest::prelude::*;

    /// A partition in the model: each segment's sorted person keys and whether it is in the
    /// run; merges use the real planner and the real cuts.
    struct Model {
        segments: Vec<(u64, Vec<u64>, bool)>,
        next_id: u64,
    }

    impl Model {
        fn add(&mut self, persons: Vec<u64>, in_run: bool) {
            self.segments.push((self.next_id, persons, in_run));
            self.next_id += 1;
        }

        fn shapes(&self) -> Vec<Shape> {
            let shape = |(id, p, in_run): &(u64, Vec<u64>, bool)| Shape {
                id: *id,
                rows: p.len() as u64,
                in_run: *in_run,
                one_person: p.first() == p.last(),
            };
            self.segments.iter().map(shape).collect()
        }

        /// Applies one plan as `merge` would: the chosen segments' rows, sorted and cut.
        fn apply(&mut self, plan: Plan, max: usize) {
            let (ids, into_run) = match plan {
                Plan::IntoRun(ids) => (ids, true),
                Plan::NewOnly(ids) => (ids, false),
            };
            let (chosen, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.segments)
                .into_iter()
                .partition(|(id, _, _)| ids.contains(id));
            self.segments = kept;
            let mut rows: Vec<u64> = chosen.into_iter().flat_map(|(_, p, _)| p).collect();
            rows.sort_unstable();
            for (from, to) in run_cuts(&UInt64Array::from(rows.clone()), max) {
                self.add(rows[from..to].to_vec(), into_run);
            }
        }
    }

    proptest! {
        /// Regression (compaction_never_settled): new segments cut to size were merged
        /// among themselves and cut into as many again on every call, so an idle server
        /// compacted forever. From any partition, planning and merging must come to rest.
        #[test]
        fn compaction_of_a_partition_comes_to_rest(
            run in proptest::collection::vec(proptest::collection::vec(0u64..60, 1..120), 0..6),
            new in proptest::collection::vec(proptest::collection::vec(0u64..60, 1..120), 0..20),
            max in 8usize..80,
            min_segments in 2usize..6,
        ) {
            let mut model = Model { segments: Vec::new(), next_id: 0 };
            for (mut p, in_run) in run.into_iter().map(|p| (p, true)).chain(new.into_iter().map(|p| (p, false))) {
                p.sort_unstable();
                model.add(p, in_run);
            }
            let mut merges = 0;
            while let Some(plan) = plan_partition(&model.shapes(), min_segments, max as u64) {
                model.apply(plan, max);
                merges += 1;
                prop_assert!(merges <= 8, "still merging after {merges} merges");
            }
        }
    }

    proptest! {
        /// Pieces tile the rows in order, never split a person, and stay within `max` rows
        /// unless one person alone has more.
        #[test]
        fn cuts_tile_the_rows_at_person_boundaries(
            mut persons in proptest::collection::vec(0u64..40, 0..400),
            max in 1usize..120,
        ) {
            persons.sort_unstable();
            let array = UInt64Array::from(persons.clone());
            let cuts = run_cuts(&array, max);
            let mut next = 0;
            for (from, to) in &cuts {
                prop_assert_eq!(*from, next);
                prop_assert!(to > from);
                if *from > 0 {
                    prop_assert_ne!(persons[from - 1], persons[*from]);
                }
                let one_person = persons[*from] == persons[to - 1];
                prop_assert!(to - from <= max || one_person, "{} rows", to - from);
                next = *to;
            }
            prop_assert_eq!(next, persons.len());
        }
    }
}
