//! Writing frozen tail generations as segments.

use crate::Result;
use crate::columns::events_to_batch;
use crate::layout::{Month, Partition, Table, segment_key_purpose, segment_rel_path};
use crate::manifest::{Manifest, SegmentMeta};
use crate::profiles::profiles_to_batch;
use crate::segment::write_segment;
use crate::store::Inner;
use arrow::record_batch::RecordBatch;
use canopy_crypto::Key;
use canopy_types::{Event, ProfileUpdate};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Writes every frozen generation, oldest first; returns the number of records written.
pub(crate) fn flush_frozen(inner: &Inner) -> Result<usize> {
    let frozen = inner.shared.tail.read().frozen.clone();
    let mut written = 0;
    for generation in frozen {
        let mut manifest = inner.manifest.lock().clone();
        let mut added = Vec::new();
        for (project, tail) in &generation.projects {
            let mut events: BTreeMap<(Month, u32), Vec<&Event>> = BTreeMap::new();
            let mut profiles: BTreeMap<(Month, u32), Vec<&ProfileUpdate>> = BTreeMap::new();
            for chunk in tail.chunks() {
                for e in &chunk.events {
                    let key = (Month::of_ms(e.time_ms), e.person.bucket(manifest.buckets));
                    events.entry(key).or_default().push(e);
                }
                for p in &chunk.profiles {
                    let key = (Month::of_ms(p.time_ms), p.person.bucket(manifest.buckets));
                    profiles.entry(key).or_default().push(p);
                }
            }
            for ((month, bucket), mut rows) in events {
                rows.sort_by_key(|e| (e.person.0, e.time_ms));
                let (min, max) = time_range(rows.iter().map(|e| e.time_ms));
                let batch = events_to_batch(&rows)?;
                let partition = Partition {
                    project: *project,
                    table: Table::Events,
                    month,
                    bucket,
                };
                added.push(new_segment(
                    inner,
                    &mut manifest,
                    partition,
                    &[batch],
                    (min, max),
                )?);
                written += rows.len();
            }
            for ((month, bucket), mut rows) in profiles {
                rows.sort_by_key(|p| (p.person.0, p.time_ms));
                let (min, max) = time_range(rows.iter().map(|p| p.time_ms));
                let batch = profiles_to_batch(&rows)?;
                let partition = Partition {
                    project: *project,
                    table: Table::ProfileUpdates,
                    month,
                    bucket,
                };
                added.push(new_segment(
                    inner,
                    &mut manifest,
                    partition,
                    &[batch],
                    (min, max),
                )?);
                written += rows.len();
            }
        }
        manifest.segments.extend(added.iter().cloned());
        manifest.wal_checkpoint = manifest.wal_checkpoint.max(generation.wal_upto);
        manifest.store(&inner.config.data_dir)?;
        {
            let mut segments = inner.segments.write();
            let mut tail = inner.shared.tail.write();
            segments.extend(added.into_iter().map(Arc::new));
            tail.frozen.retain(|g| !Arc::ptr_eq(g, &generation));
        }
        *inner.manifest.lock() = manifest;
        inner.wal.remove_flushed(generation.wal_upto)?;
        if generation.rows > 0 {
            inner.flushes.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("canopy_store_flushes_total").increment(1);
        }
    }
    Ok(written)
}

fn time_range(times: impl Iterator<Item = i64>) -> (i64, i64) {
    times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)))
}

/// Writes one new segment under a fresh data key and returns its metadata (not yet visible).
pub(crate) fn new_segment(
    inner: &Inner,
    manifest: &mut Manifest,
    partition: Partition,
    batches: &[RecordBatch],
    (min_time_ms, max_time_ms): (i64, i64),
) -> Result<SegmentMeta> {
    let id = manifest.next_segment_id;
    manifest.next_segment_id += 1;
    let key = Key::generate();
    let wrapped = inner
        .keyring
        .project_key(partition.project.0)?
        .wrap(&key, &segment_key_purpose(id))?;
    let file = segment_rel_path(&partition, id);
    let bytes = write_segment(&inner.config.data_dir.join(&file), batches, &key, id)?;
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    metrics::counter!("canopy_store_segments_written_total").increment(1);
    let schema = Arc::new(std::sync::OnceLock::new());
    if let Some(b) = batches.first() {
        let _ = schema.set(b.schema());
    }
    Ok(SegmentMeta {
        id,
        partition,
        file,
        rows,
        bytes,
        min_time_ms,
        max_time_ms,
        wrapped_key: wrapped,
        schema,
    })
}
