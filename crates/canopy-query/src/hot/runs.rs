//! The rows of a cached sequence scan, kept as *runs* instead of copied and sorted: per
//! source and person bucket, the wanted rows' numbers in the source's own order (person,
//! time, arrival, insert id — its tie rank), plus the rows of keys merged into another
//! person, copied and sorted (few). Folding a bucket merges its runs person by person (a
//! heap keyed by each run's next person), gathers that person's rows into a small buffer
//! and orders them there: a bucket's segments cover different times, so the gathered rows
//! are usually in order already.

use super::columns::ColumnKey;
use super::sources::{Loaded, Source, on_cores};
use super::ties::{InsertIds, unordered_groups};
use crate::sequences::SequenceRow;
use crate::{QueryError, Result};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the scan kept of one source: its columns and, per event code, the index of the
/// requested event it is (if any).
#[derive(Debug)]
pub(crate) struct SourceRows {
    pub loaded: Loaded,
    pub events: Vec<Option<u16>>,
}

/// Row numbers of one source within one bucket, ordered by the source's tie rank.
#[derive(Debug)]
pub(crate) struct Run {
    pub source: u32,
    pub rows: Vec<u32>,
}

/// One person bucket's rows: runs (ordered by the time their sources start) and the rows of
/// merged keys, sorted by (person, time, arrival, tie).
#[derive(Debug, Default)]
pub(crate) struct BucketRows {
    pub runs: Vec<Run>,
    pub merged: Vec<SequenceRow>,
}

#[derive(Debug)]
pub(crate) struct RunSet {
    pub sources: Vec<Source>,
    /// By source index: the columns of every scanned source.
    pub columns: Vec<Option<SourceRows>>,
    pub buckets: Vec<BucketRows>,
    pub insert_ids: InsertIds,
}

/// The columns of one run, looked up once per bucket rather than per person.
struct RunView<'a> {
    source: u32,
    rows: &'a [u32],
    persons: &'a [u64],
    time: &'a [i64],
    received: &'a [i64],
    ranks: &'a [u32],
    codes: &'a [u32],
    events: &'a [Option<u16>],
}

impl<'a> RunView<'a> {
    fn new(run: &'a Run, columns: &'a [Option<SourceRows>]) -> Result<Self> {
        let c = columns
            .get(run.source as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| QueryError::Invalid("a run without its columns".into()))?;
        let loaded = &c.loaded;
        Ok(Self {
            source: run.source,
            rows: &run.rows,
            persons: loaded.persons()?.values(),
            time: loaded.times(&ColumnKey::Time)?,
            received: loaded.times(&ColumnKey::Received)?,
            ranks: loaded.ranks()?,
            codes: &loaded.text(&ColumnKey::Event)?.codes,
            events: &c.events,
        })
    }

    /// Appends the rows of `person` from `at` on; returns where the run continues.
    fn gather(&self, mut at: usize, person: u64, out: &mut Vec<SequenceRow>) -> usize {
        while let Some(row) = self.rows.get(at).map(|r| *r as usize) {
            if self.persons[row] != person {
                break;
            }
            out.push(SequenceRow {
                person,
                time_ms: self.time[row],
                event: self.events[self.codes[row] as usize].unwrap_or_default(),
                properties: None,
                received_ms: self.received[row],
                tie: (self.source, self.ranks[row]),
            });
            at += 1;
        }
        at
    }

    fn person_at(&self, at: usize) -> Option<u64> {
        self.rows.get(at).map(|r| self.persons[*r as usize])
    }
}

/// Marks the merged rows in the heap (they are not a run of one source).
const MERGED_RUN: u32 = u32::MAX;

impl RunSet {
    /// Folds every person's rows, in order, into one accumulator per core; cores take
    /// buckets from a shared queue (a person's rows are all in one bucket).
    pub fn fold_persons<A: Send>(
        &self,
        cores: usize,
        init: impl Fn() -> A + Sync,
        f: impl Fn(&mut A, &[SequenceRow]) + Sync,
    ) -> Result<Vec<A>> {
        let next = AtomicUsize::new(0);
        let (init, f, next) = (&init, &f, &next);
        let work = move || -> Result<A> {
            let mut acc = init();
            let mut person_rows = Vec::new();
            while let Some(bucket) = self.buckets.get(next.fetch_add(1, Ordering::Relaxed)) {
                self.fold_bucket(bucket, &mut person_rows, |rows| f(&mut acc, rows))?;
            }
            Ok(acc)
        };
        on_cores(cores.clamp(1, self.buckets.len().max(1)), work)
    }

    fn fold_bucket(
        &self,
        bucket: &BucketRows,
        person_rows: &mut Vec<SequenceRow>,
        mut f: impl FnMut(&[SequenceRow]),
    ) -> Result<()> {
        let views: Vec<RunView<'_>> = bucket
            .runs
            .iter()
            .map(|r| RunView::new(r, &self.columns))
            .collect::<Result<_>>()?;
        let mut at = vec![0usize; views.len()];
        let mut merged_at = 0usize;
        // (next person, run): popped in run order for equal persons, and runs are ordered
        // by the time their sources start, so a person's rows mostly arrive in time order.
        let mut heap: BinaryHeap<Reverse<(u64, u32)>> = views
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some(Reverse((v.person_at(0)?, i as u32))))
            .collect();
        if let Some(first) = bucket.merged.first() {
            heap.push(Reverse((first.person, MERGED_RUN)));
        }
        while let Some(&Reverse((person, _))) = heap.peek() {
            person_rows.clear();
            let (mut contributors, mut merged) = (0usize, false);
            while let Some(mut top) = heap.peek_mut() {
                let Reverse((p, run)) = *top;
                if p != person {
                    break;
                }
                contributors += 1;
                let next = if run == MERGED_RUN {
                    merged = true;
                    let rest = &bucket.merged[merged_at..];
                    let n = rest.partition_point(|r| r.person == person);
                    person_rows.extend_from_slice(&rest[..n]);
                    merged_at += n;
                    bucket.merged.get(merged_at).map(|r| r.person)
                } else {
                    let (i, view) = (run as usize, &views[run as usize]);
                    at[i] = view.gather(at[i], person, person_rows);
                    view.person_at(at[i])
                };
                match next {
                    Some(np) => *top = Reverse((np, run)),
                    None => {
                        std::collections::binary_heap::PeekMut::pop(top);
                    }
                }
            }
            // One run is in its source's order already; rows from several (or of merged
            // keys) are ordered here, and ties between sources by insert id.
            if contributors > 1 || merged {
                let key = |r: &SequenceRow| (r.time_ms, r.received_ms, r.tie);
                if !person_rows.is_sorted_by_key(key) {
                    person_rows.sort_by_key(key);
                }
                let groups = unordered_groups(person_rows);
                if !groups.is_empty() {
                    self.insert_ids
                        .order(&self.sources, &self.columns, person_rows, groups)?;
                }
            }
            f(person_rows);
        }
        Ok(())
    }

    /// Every row, bucket by bucket (each person's rows in order).
    #[cfg(test)]
    pub(crate) fn rows(&self) -> Vec<SequenceRow> {
        self.fold_persons(1, Vec::new, |all, rows| all.extend_from_slice(rows))
            .map(|v| v.into_iter().flatten().collect())
            .unwrap_or_default()
    }
}
