//! The sequence scan (funnels, retention, flows) from cached columns: per source, the numbers
//! of the rows of the wanted events in the range, split by person bucket into runs in the
//! source's own order (`runs.rs` merges them person by person when the report folds them).
//! Rows of keys merged into another person are copied out, with their person, and sorted.

use super::columns::ColumnKey;
use super::runs::{BucketRows, Run, RunSet, SourceRows};
use super::sources::{PersonCursor, Source, person_buckets};
use super::ties::{InsertIds, MERGED};
use crate::sequences::{SequenceRequest, SequenceRow, Sequences};
use crate::table::QueryEngine;
use crate::{QueryError, Result};
use arrow::array::Array;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the scan of one source gives: its columns, its runs by bucket, its merged rows.
struct Scanned {
    source: usize,
    columns: SourceRows,
    runs: Vec<Vec<u32>>,
    merged: Vec<(usize, SequenceRow)>,
}

impl QueryEngine {
    pub(crate) fn cached_sequences(&self, req: &SequenceRequest) -> Result<Sequences> {
        let sources = self.hot_sources(req.project, req.from_ms, req.to_ms)?;
        if sources.len() >= MERGED as usize {
            return Err(QueryError::Invalid("too many segments for one scan".into()));
        }
        let aliases = self.identity().aliases(req.project)?;
        // The store's own person buckets: a bucket's rows come from its own segments only.
        let n_buckets = person_buckets(&sources, self.target_partitions());
        let bytes = AtomicUsize::new(0);
        let keys = [
            ColumnKey::Person,
            ColumnKey::Time,
            ColumnKey::Received,
            ColumnKey::Event,
            ColumnKey::Tie,
        ];
        let started = std::time::Instant::now();
        let parts = self.fold_sources(&sources, &keys, Vec::new, |scanned, source, cols| {
            let events = cols.text(&ColumnKey::Event)?;
            let wanted: Vec<Option<u16>> = events.translate(|name| {
                let name = name?;
                req.events.iter().position(|e| e == name).map(|i| i as u16)
            });
            let (time, received) = (
                cols.times(&ColumnKey::Time)?,
                cols.times(&ColumnKey::Received)?,
            );
            let (persons, ranks) = (cols.persons()?, cols.ranks()?);
            let mut cursor = PersonCursor::new(&aliases, n_buckets);
            let mut runs: Vec<Vec<u32>> = vec![Vec::new(); n_buckets];
            let mut merged: Vec<(usize, SequenceRow)> = Vec::new();
            let wanted_codes: Vec<usize> =
                (0..wanted.len()).filter(|c| wanted[*c].is_some()).collect();
            // A segment's rows go to its own bucket (unless merged elsewhere): room for all.
            if let Source::Segment(meta) = &sources[source]
                && let Some(run) = runs.get_mut(meta.partition.bucket as usize)
            {
                run.reserve(
                    wanted_codes
                        .iter()
                        .filter_map(|c| events.rows_of(*c))
                        .map(<[u32]>::len)
                        .sum(),
                );
            }
            let inside = sources[source].within(req.from_ms, req.to_ms);
            let mut take = |row: usize, event: u16| {
                let t = time[row];
                if !inside && (t < req.from_ms || t >= req.to_ms) {
                    return;
                }
                let (person, bucket, stored) = if persons.is_null(row) {
                    // Keyless: person 0, as on the DataFusion path.
                    (
                        0,
                        canopy_types::PersonKey(0).bucket(n_buckets as u32) as usize,
                        false,
                    )
                } else {
                    let raw = persons.value(row);
                    let (p, bucket) = cursor.resolve(raw);
                    (p, bucket, p == raw)
                };
                if let Some((members, negate)) = &req.persons
                    && members.contains(&person) == *negate
                {
                    return;
                }
                if stored {
                    runs[bucket].push(row as u32);
                } else {
                    // Merged into another person (or keyless): ordered among that person's
                    // rows when the bucket is folded.
                    merged.push((
                        bucket,
                        SequenceRow {
                            person,
                            time_ms: t,
                            event,
                            properties: None,
                            received_ms: received[row],
                            tie: (source as u32 | MERGED, ranks[row]),
                        },
                    ));
                }
            };
            match (
                wanted_codes.as_slice(),
                wanted_codes.first().map(|c| events.rows_of(*c)),
            ) {
                ([code], Some(Some(rows))) => {
                    let event = wanted[*code].unwrap_or_default();
                    for row in rows {
                        take(*row as usize, event);
                    }
                }
                _ => {
                    for (row, code) in events.codes.iter().enumerate() {
                        if let Some(event) = wanted[*code as usize] {
                            take(row, event);
                        }
                    }
                }
            }
            // Row order is the rank order except among ties (and in unsorted sources).
            let mut held = merged.len() * std::mem::size_of::<SequenceRow>();
            for run in &mut runs {
                if !run.is_sorted_by_key(|r| ranks[*r as usize]) {
                    run.sort_unstable_by_key(|r| ranks[*r as usize]);
                }
                held += run.len() * std::mem::size_of::<u32>();
            }
            if bytes.fetch_add(held, Ordering::Relaxed) + held > self.memory_limit() {
                return Err(QueryError::TooLarge);
            }
            scanned.push(Scanned {
                source,
                columns: SourceRows {
                    loaded: cols.clone(),
                    events: wanted,
                },
                runs,
                merged,
            });
            Ok(())
        })?;
        let scanned_in = started.elapsed();
        let mut columns: Vec<Option<SourceRows>> = (0..sources.len()).map(|_| None).collect();
        let mut buckets: Vec<BucketRows> = (0..n_buckets).map(|_| BucketRows::default()).collect();
        for part in parts.into_iter().flatten() {
            for (bucket, rows) in part.runs.into_iter().enumerate() {
                if !rows.is_empty() {
                    buckets[bucket].runs.push(Run {
                        source: part.source as u32,
                        rows,
                    });
                }
            }
            for (bucket, row) in part.merged {
                buckets[bucket].merged.push(row);
            }
            columns[part.source] = Some(part.columns);
        }
        let starts = |source: u32| match &sources[source as usize] {
            Source::Segment(meta) => (meta.min_time_ms, source),
            Source::Tail(_) => (i64::MAX, source),
        };
        for bucket in &mut buckets {
            bucket.runs.sort_by_key(|r| starts(r.source));
            bucket
                .merged
                .sort_by_key(|r| (r.person, r.time_ms, r.received_ms, r.tie));
        }
        // Durations and counts only: nothing about the rows themselves.
        tracing::debug!(
            sources = sources.len(),
            rows = buckets
                .iter()
                .flat_map(|b| b.runs.iter().map(|r| r.rows.len()))
                .sum::<usize>(),
            runs = buckets.iter().map(|b| b.runs.len()).sum::<usize>(),
            merged = buckets.iter().map(|b| b.merged.len()).sum::<usize>(),
            scan_ms = scanned_in.as_millis() as u64,
            order_ms = (started.elapsed() - scanned_in).as_millis() as u64,
            "cached sequence scan"
        );
        Ok(Sequences::from_runs(RunSet {
            sources,
            columns,
            buckets,
            insert_ids: InsertIds::new(self.store().clone()),
        }))
    }
}
