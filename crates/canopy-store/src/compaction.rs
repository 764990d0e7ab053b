//! Merging a partition's small segments into one, so scans open few files and a person's
//! bucket stays a handful of segments.

use crate::Result;
use crate::flush::new_segment;
use crate::layout::Partition;
use crate::manifest::{Manifest, SegmentMeta};
use crate::segment::read_segment;
use crate::store::Inner;
use arrow::array::{ArrayRef, new_null_array};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Partitions merged per call, so one call stays short.
const GROUPS_PER_CALL: usize = 8;

/// Merges up to [`GROUPS_PER_CALL`] partitions; returns how many merges ran.
pub(crate) fn compact_once(inner: &Inner) -> Result<usize> {
    let mut manifest = inner.manifest.lock().clone();
    let mut by_partition: BTreeMap<Partition, Vec<&SegmentMeta>> = BTreeMap::new();
    for s in &manifest.segments {
        by_partition.entry(s.partition).or_default().push(s);
    }
    let mut plans: Vec<(Partition, Vec<u64>)> = Vec::new();
    for (partition, mut segs) in by_partition {
        if segs.len() < inner.config.compaction_min_segments.max(2) {
            continue;
        }
        segs.sort_by_key(|s| s.rows);
        let mut chosen = Vec::new();
        let mut rows = 0;
        for s in segs {
            if rows + s.rows > inner.config.max_segment_rows && chosen.len() >= 2 {
                break;
            }
            rows += s.rows;
            chosen.push(s.id);
        }
        if chosen.len() >= 2 {
            plans.push((partition, chosen));
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
    for (partition, ids) in &plans {
        let olds: Vec<SegmentMeta> = manifest
            .segments
            .iter()
            .filter(|s| ids.contains(&s.id))
            .cloned()
            .collect();
        let merged = merge(inner, &mut manifest, *partition, &olds)?;
        replaced.extend(ids);
        added.push(merged);
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

fn merge(
    inner: &Inner,
    manifest: &mut crate::manifest::Manifest,
    partition: Partition,
    olds: &[SegmentMeta],
) -> Result<SegmentMeta> {
    let project = partition.project;
    let min = olds.iter().map(|s| s.min_time_ms).min().unwrap_or(0);
    let max = olds.iter().map(|s| s.max_time_ms).max().unwrap_or(0);
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
    new_segment(inner, manifest, partition, &[batch], (min, max))
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
