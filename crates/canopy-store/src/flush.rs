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
use canopy_types::{PersonKey, ProjectId};
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
            let events = tail.chunks().flat_map(|c| c.events.iter());
            let profiles = tail.chunks().flat_map(|c| c.profiles.iter());
            let mut ctx = FlushTarget {
                inner,
                manifest: &mut manifest,
                project: *project,
                added: &mut added,
            };
            written += ctx.write(
                Table::Events,
                events,
                |e| (e.person, e.time_ms),
                events_to_batch,
            )?;
            written += ctx.write(
                Table::ProfileUpdates,
                profiles,
                |p| (p.person, p.time_ms),
                profiles_to_batch,
            )?;
        }
        manifest.segments.extend(added.iter().cloned());
        manifest.wal_checkpoint = manifest.wal_checkpoint.max(generation.wal_upto);
        // The dedup window must outlive the WAL files that will be deleted below: save it
        // first (a superset is harmless).
        let dedup_file = crate::dedup::dedup_path(&inner.config.data_dir);
        inner
            .shared
            .dedup
            .lock()
            .save(&dedup_file)
            .map_err(crate::io_err(&dedup_file))?;
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

/// Where one project's part of a generation goes.
struct FlushTarget<'a> {
    inner: &'a Inner,
    manifest: &'a mut Manifest,
    project: ProjectId,
    added: &'a mut Vec<SegmentMeta>,
}

impl FlushTarget<'_> {
    /// Groups `rows` by (month, person bucket), sorts each group by (person, time) and writes it
    /// as one segment of `table`. Returns the number of rows written.
    fn write<'r, T: 'r>(
        &mut self,
        table: Table,
        rows: impl Iterator<Item = &'r T>,
        key: fn(&T) -> (PersonKey, i64),
        to_batch: fn(&[&T]) -> Result<RecordBatch>,
    ) -> Result<usize> {
        let buckets = self.manifest.buckets;
        let mut groups: BTreeMap<(Month, u32), Vec<&T>> = BTreeMap::new();
        for r in rows {
            let (person, time) = key(r);
            groups
                .entry((Month::of_ms(time), person.bucket(buckets)))
                .or_default()
                .push(r);
        }
        let mut written = 0;
        for ((month, bucket), mut rows) in groups {
            rows.sort_by_key(|r| {
                let (p, t) = key(r);
                (p.0, t)
            });
            let range = time_range(rows.iter().map(|r| key(r).1));
            let batch = to_batch(&rows)?;
            let partition = Partition {
                project: self.project,
                table,
                month,
                bucket,
            };
            self.added.push(new_segment(
                self.inner,
                self.manifest,
                partition,
                &[batch],
                range,
            )?);
            written += rows.len();
        }
        Ok(written)
    }
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
