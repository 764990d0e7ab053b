//! Writing frozen tail generations as segments.

use crate::columns::events_to_batch;
use crate::layout::{Month, Partition, Table, segment_key_purpose, segment_rel_path};
use crate::manifest::{Manifest, SegmentMeta};
use crate::profiles::{SeqUpdate, profiles_to_batch};
use crate::segment::write_segment;
use crate::store::Inner;
use crate::{Result, StoreError};
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
            // Profile updates are folded in arrival order: number them across flushes.
            let base = manifest.next_segment_id << 32;
            let profiles: Vec<SeqUpdate<'_>> = tail
                .chunks()
                .flat_map(|c| c.profiles.iter())
                .enumerate()
                .map(|(i, update)| SeqUpdate {
                    seq: base + i as u64,
                    update,
                })
                .collect();
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
                profiles.iter(),
                |p| (p.update.person, p.update.time_ms),
                profiles_to_batch,
            )?;
        }
        manifest.segments.extend(added.iter().cloned());
        manifest.wal_checkpoint = manifest.wal_checkpoint.max(generation.wal_upto);
        // The dedup window must outlive the WAL files that will be deleted below: save it
        // first (a superset is harmless). An empty generation (a rotation with nothing new, as
        // every erasure makes) deletes only WAL files whose records an earlier flush covered,
        // with the window saved then, so it skips the save: writing the whole window costs
        // hundreds of milliseconds on a large store.
        if generation.rows > 0 {
            let dedup_file = crate::dedup::dedup_path(&inner.config.data_dir);
            inner
                .shared
                .dedup
                .lock()
                .save(&dedup_file)
                .map_err(crate::io_err(&dedup_file))?;
        }
        if let Some(barrier) = &inner.config.checkpoint_barrier {
            (barrier.0)().map_err(StoreError::Barrier)?;
        }
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
    fn write<'r, T: Sync + 'r>(
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
        // Ids are handed out here, in order; the segments are then built and written on all
        // cores at once (each is independent: own rows, own data key, own file).
        let first_id = self.manifest.next_segment_id;
        self.manifest.next_segment_id += groups.len() as u64;
        let jobs: Vec<(u64, (Month, u32), Vec<&T>)> = groups
            .into_iter()
            .enumerate()
            .map(|(i, (part, rows))| (first_id + i as u64, part, rows))
            .collect();
        let (inner, project) = (self.inner, self.project);
        let results = crate::parallel::map_on_cores(
            &jobs,
            |(id, (month, bucket), rows)| -> Result<(SegmentMeta, usize)> {
                let mut rows = rows.clone();
                rows.sort_by_key(|r| {
                    let (p, t) = key(r);
                    (p.0, t)
                });
                let range = time_range(rows.iter().map(|r| key(r).1));
                let batch = to_batch(&rows)?;
                let partition = Partition {
                    project,
                    table,
                    month: *month,
                    bucket: *bucket,
                };
                let meta = write_new_segment(inner, *id, partition, &[batch], range)?;
                Ok((meta, rows.len()))
            },
            || Err(StoreError::Manifest("a flush worker panicked".into())),
        );
        let mut written = 0;
        for r in results {
            let (meta, n) = r?;
            self.added.push(meta);
            written += n;
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
    range: (i64, i64),
) -> Result<SegmentMeta> {
    let id = manifest.next_segment_id;
    manifest.next_segment_id += 1;
    write_new_segment(inner, id, partition, batches, range)
}

/// Writes segment `id` (already allocated in the manifest) under a fresh data key.
pub(crate) fn write_new_segment(
    inner: &Inner,
    id: u64,
    partition: Partition,
    batches: &[RecordBatch],
    (min_time_ms, max_time_ms): (i64, i64),
) -> Result<SegmentMeta> {
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
    let persons = Arc::new(std::sync::OnceLock::new());
    let _ = persons.set(crate::person_filter::PersonFilter::of_batches(batches)?);
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
        persons,
        person_range: person_range_of(batches),
        in_run: false,
    })
}

/// The smallest and largest person key of `batches` (None when they hold no rows).
fn person_range_of(batches: &[RecordBatch]) -> Option<(u64, u64)> {
    let mut range: Option<(u64, u64)> = None;
    for b in batches {
        let persons = crate::person_filter::person_array(b.column_by_name("person")?).ok()?;
        if let (Some(lo), Some(hi)) = (arrow::compute::min(persons), arrow::compute::max(persons)) {
            range = Some(match range {
                Some((a, b)) => (a.min(lo), b.max(hi)),
                None => (lo, hi),
            });
        }
    }
    range
}
