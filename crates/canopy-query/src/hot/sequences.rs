//! The sequence scan (funnels, retention, flows) from cached columns: per source, the rows
//! of the wanted events in the range, sharded by person, then each shard sorted on integers
//! — (person, time, arrival, source, tie rank) — where the DataFusion path compares insert
//! ids. A source's tie rank already orders its equal (person, time, arrival) rows by insert
//! id; when equal rows come from two sources (or two merged keys), only the insert ids can
//! order them, and the scan declines so the caller takes the DataFusion path.

use super::columns::ColumnKey;
use super::sources::Source;
use crate::sequences::{SequenceRequest, SequenceRow, Sequences};
use crate::table::QueryEngine;
use crate::{QueryError, Result};
use arrow::array::Array;
use canopy_types::PersonKey;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Set in a row's source number when its key was merged into another person's: its rank
/// orders it among its own key's rows only.
const MERGED: u32 = 1 << 31;

/// Shard of a person: a multiplicative hash spreads sequential keys evenly.
pub(crate) fn shard_of(person: u64, shards: usize) -> usize {
    (person.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % shards
}

impl QueryEngine {
    /// `None` when rows tie in a way only insert ids can order (see the module comment).
    pub(crate) fn cached_sequences(&self, req: &SequenceRequest) -> Result<Option<Sequences>> {
        let sources = self.hot_sources(req.project, req.from_ms, req.to_ms)?;
        if sources.len() >= MERGED as usize {
            return Ok(None);
        }
        let aliases = self.identity().aliases(req.project)?;
        // One shard per person bucket of the store: a bucket's rows come from its own
        // segments only (a few sorted runs), so each shard's sort merges few runs.
        let n_shards = sources
            .iter()
            .filter_map(|s| match s {
                Source::Segment(m) => Some(m.partition.bucket as usize + 1),
                Source::Tail(_) => None,
            })
            .max()
            .unwrap_or(1)
            .max(self.target_partitions());
        let bytes = AtomicUsize::new(0);
        let keys = [
            ColumnKey::Person,
            ColumnKey::Time,
            ColumnKey::Received,
            ColumnKey::Event,
            ColumnKey::Tie,
        ];
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
                let mut last: Option<(u64, u64, bool)> = None;
                let mut taken = 0usize;
                for (row, code) in events.codes.iter().enumerate() {
                    let Some(event) = wanted[*code as usize] else {
                        continue;
                    };
                    let t = time[row];
                    if t < req.from_ms || t >= req.to_ms {
                        continue;
                    }
                    let (person, merged) = if persons.is_null(row) {
                        (0, false)
                    } else {
                        let raw = persons.value(row);
                        match last {
                            Some((r, p, m)) if r == raw => (p, m),
                            _ => {
                                let p = if aliases.is_empty() {
                                    raw
                                } else {
                                    aliases.get(&raw).copied().unwrap_or(raw)
                                };
                                last = Some((raw, p, p != raw));
                                (p, p != raw)
                            }
                        }
                    };
                    if let Some((members, negate)) = &req.persons
                        && members.contains(&person) == *negate
                    {
                        continue;
                    }
                    let tag = source as u32 | if merged { MERGED } else { 0 };
                    shards[PersonKey(person).bucket(n_shards as u32) as usize].push(SequenceRow {
                        person,
                        time_ms: t,
                        event,
                        properties: None,
                        received_ms: received[row],
                        tie: (tag, ranks[row]),
                    });
                    taken += 1;
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
        let queue = Mutex::new(shards.iter_mut());
        let queue = &queue;
        let cores = self.target_partitions().max(1);
        let exact = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..cores)
                .map(|_| {
                    scope.spawn(move || {
                        let mut exact = true;
                        loop {
                            let Some(shard) = queue.lock().ok().and_then(|mut q| q.next()) else {
                                return exact;
                            };
                            // Stable and run-adaptive: each source's rows arrive (person,
                            // time) ordered, so a shard is a few sorted runs to merge.
                            shard.sort_by_key(|r| (r.person, r.time_ms, r.received_ms, r.tie));
                            exact &= !shard.windows(2).any(|w| {
                                let (a, b) = (&w[0], &w[1]);
                                (a.person, a.time_ms, a.received_ms)
                                    == (b.person, b.time_ms, b.received_ms)
                                    && (a.tie.0 != b.tie.0 || a.tie.0 & MERGED != 0)
                            });
                        }
                    })
                })
                .collect();
            handles.into_iter().all(|h| h.join().unwrap_or(false))
        });
        Ok(exact.then_some(Sequences::from_shards(shards)))
    }
}
