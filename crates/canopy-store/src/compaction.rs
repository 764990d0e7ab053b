//! Merging a partition's small segments into one, so scans open few files and a person's
//! bucket stays a handful of segments.

use crate::Result;
use crate::columns::{batch_to_events, events_to_batch};
use crate::flush::new_segment;
use crate::layout::{Partition, Table};
use crate::manifest::SegmentMeta;
use crate::profiles::{batch_to_profiles, profiles_to_batch};
use crate::segment::read_segment;
use crate::store::Inner;
use std::collections::BTreeMap;
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
    let batch = match partition.table {
        Table::Events => {
            let mut rows = Vec::new();
            for b in &batches {
                rows.extend(batch_to_events(b, project)?);
            }
            rows.sort_by_key(|e| (e.person.0, e.time_ms));
            events_to_batch(&rows.iter().collect::<Vec<_>>())?
        }
        Table::ProfileUpdates => {
            let mut rows = Vec::new();
            for b in &batches {
                rows.extend(batch_to_profiles(b, project)?);
            }
            rows.sort_by_key(|p| (p.person.0, p.time_ms));
            profiles_to_batch(&rows.iter().collect::<Vec<_>>())?
        }
    };
    new_segment(inner, manifest, partition, &[batch], (min, max))
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
