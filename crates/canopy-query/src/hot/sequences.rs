//! The sequence scan (funnels, retention, flows) from cached columns: per source, the rows
//! of the wanted events in the range, sharded by person, then each shard sorted on integers
//! — (person, time, arrival, source, tie rank) — where the DataFusion path compares insert
//! ids. A source's tie rank already orders its equal (person, time, arrival) rows by insert
//! id; equal rows from two sources (or two merged keys) are ordered by their insert ids,
//! read for them alone (`ties.rs`).

use super::columns::ColumnKey;
use super::sources::{PersonCursor, Source, person_buckets};
use super::ties::{MERGED, unordered_groups};
use crate::sequences::{SequenceRequest, SequenceRow, Sequences};
use crate::table::QueryEngine;
use crate::{QueryError, Result};
use arrow::array::Array;

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Stored rows per shard of a sequence scan, roughly (see `cached_sequences`).
const SHARD_ROWS: u64 = 1 << 19;

/// Shard of a person: a multiplicative hash spreads sequential keys evenly.
pub(crate) fn shard_of(person: u64, shards: usize) -> usize {
    (person.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % shards
}

impl QueryEngine {
    pub(crate) fn cached_sequences(&self, req: &SequenceRequest) -> Result<Sequences> {
        let sources = self.hot_sources(req.project, req.from_ms, req.to_ms)?;
        if sources.len() >= MERGED as usize {
            return Err(QueryError::Invalid("too many segments for one scan".into()));
        }
        let aliases = self.identity().aliases(req.project)?;
        // One shard per person bucket of the store: a bucket's rows come from its own
        // segments only (a few sorted runs), so each shard's sort merges few runs.
        let buckets = person_buckets(&sources, self.target_partitions());
        let stored: u64 = sources.iter().map(Source::rows).sum();
        // Several shards per bucket on a large store — a multiple of the buckets, so each
        // shard's rows still come from one bucket's segments — keep each shard's sort in
        // cache: about half a million stored rows per shard.
        let per_bucket = (stored / (buckets as u64 * SHARD_ROWS)).max(1) as usize;
        let n_shards = buckets * per_bucket;
        let bytes = AtomicUsize::new(0);
        let keys = [
            ColumnKey::Person,
            ColumnKey::Time,
            ColumnKey::Received,
            ColumnKey::Event,
            ColumnKey::Tie,
        ];
        let started = std::time::Instant::now();
        let parts = self.fold_sources(
            &sources,
            &keys,
            || vec![Vec::<SequenceRow>::new(); n_shards],
            |shards, source, cols| {
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
                let mut cursor = PersonCursor::new(&aliases, n_shards);
                let mut taken = 0usize;
                let wanted_codes: Vec<usize> =
                    (0..wanted.len()).filter(|c| wanted[*c].is_some()).collect();
                // A segment's rows go to its own bucket's shard (unless merged elsewhere):
                // room for all of them at once instead of growing by doubling.
                if let Source::Segment(meta) = &sources[source] {
                    let candidates: usize = wanted_codes
                        .iter()
                        .filter_map(|c| events.rows_of(*c))
                        .map(<[u32]>::len)
                        .sum();
                    let own = (meta.partition.bucket as usize..n_shards).step_by(buckets);
                    for shard in own {
                        shards[shard].reserve(candidates / per_bucket + 64);
                    }
                }
                let inside = sources[source].within(req.from_ms, req.to_ms);
                let mut take = |row: usize, event: u16| {
                    let t = time[row];
                    if !inside && (t < req.from_ms || t >= req.to_ms) {
                        return;
                    }
                    let (person, merged, shard) = if persons.is_null(row) {
                        (0, false, 0)
                    } else {
                        let raw = persons.value(row);
                        let (p, shard) = cursor.resolve(raw);
                        (p, p != raw, shard)
                    };
                    if let Some((members, negate)) = &req.persons
                        && members.contains(&person) == *negate
                    {
                        return;
                    }
                    let tag = source as u32 | if merged { MERGED } else { 0 };
                    shards[shard].push(SequenceRow {
                        person,
                        time_ms: t,
                        event,
                        properties: None,
                        received_ms: received[row],
                        tie: (tag, ranks[row]),
                    });
                    taken += 1;
                };
                // One event: its postings. Several: a scan of the codes, which keeps the
                // rows in (person, time) order where concatenated postings would not.
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
                let total = bytes.fetch_add(
                    taken * std::mem::size_of::<SequenceRow>(),
                    Ordering::Relaxed,
                ) + taken * std::mem::size_of::<SequenceRow>();
                if total > self.memory_limit() {
                    return Err(QueryError::TooLarge);
                }
                Ok(())
            },
        )?;
        let mut shards: Vec<Vec<SequenceRow>> = (0..n_shards).map(|_| Vec::new()).collect();
        for part in parts {
            for (shard, rows) in shards.iter_mut().zip(part) {
                if shard.is_empty() {
                    *shard = rows;
                } else {
                    shard.extend(rows);
                }
            }
        }
        let scanned = started.elapsed();
        let queue = Mutex::new(shards.iter_mut().enumerate());
        let queue = &queue;
        let cores = self.target_partitions().max(1);
        let groups: Vec<(usize, Range<usize>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..cores)
                .map(|_| {
                    scope.spawn(move || {
                        let mut groups = Vec::new();
                        while let Some((i, shard)) = queue.lock().ok().and_then(|mut q| q.next()) {
                            // Stable and run-adaptive: each source's rows arrive (person,
                            // time) ordered, so a shard is a few sorted runs to merge.
                            shard.sort_by_key(|r| (r.person, r.time_ms, r.received_ms, r.tie));
                            groups.extend(unordered_groups(shard).into_iter().map(|g| (i, g)));
                        }
                        groups
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let sorted = started.elapsed();
        let ties = groups.len();
        self.order_ties_across_sources(&sources, &mut shards, groups)?;
        // Durations and counts only: nothing about the rows themselves.
        tracing::debug!(
            sources = sources.len(),
            rows = shards.iter().map(Vec::len).sum::<usize>(),
            tie_groups = ties,
            scan_ms = scanned.as_millis() as u64,
            sort_ms = (sorted - scanned).as_millis() as u64,
            ties_ms = (started.elapsed() - sorted).as_millis() as u64,
            "cached sequence scan"
        );
        Ok(Sequences::from_shards(shards))
    }
}
