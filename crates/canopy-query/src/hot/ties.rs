//! Rows that tie on (person, time, arrival) are ordered by insert id, as on the DataFusion
//! path. A source's tie rank already does that among its own rows; rows from two sources (or
//! from two keys merged into one person) in such a group are ordered here, by the insert ids
//! read from their sources — rare, so those are read when needed and never cached.

use super::runs::SourceRows;
use super::sources::{Source, source_insert_ids};
use crate::ndjson::Strings;
use crate::sequences::SequenceRow;
use crate::{QueryError, Result};
use canopy_store::Store;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// Set in a row's source number when its key was merged into another person's: its rank
/// orders it among its own key's rows only.
pub(crate) const MERGED: u32 = 1 << 31;

fn same_instant(a: &SequenceRow, b: &SequenceRow) -> bool {
    (a.person, a.time_ms, a.received_ms) == (b.person, b.time_ms, b.received_ms)
}

/// Groups of equal (person, time, arrival) in a sorted shard that ranks cannot order.
pub(crate) fn unordered_groups(rows: &[SequenceRow]) -> Vec<Range<usize>> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let mut j = i + 1;
        while j < rows.len() && same_instant(&rows[i], &rows[j]) {
            j += 1;
        }
        let tag = rows[i].tie.0;
        if j - i > 1
            && rows[i..j]
                .iter()
                .any(|r| r.tie.0 != tag || r.tie.0 & MERGED != 0)
        {
            groups.push(i..j);
        }
        i = j;
    }
    groups
}

/// Insert ids by tie rank, per source, read the first time a tie needs them (never cached
/// beyond the query).
#[derive(Debug)]
pub(crate) struct InsertIds {
    store: Store,
    by_source: Mutex<HashMap<u32, Arc<Vec<Option<String>>>>>,
}

impl InsertIds {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            by_source: Mutex::default(),
        }
    }

    fn of_source(
        &self,
        sources: &[Source],
        columns: &[Option<SourceRows>],
        source: u32,
    ) -> Result<Arc<Vec<Option<String>>>> {
        let mut known = self
            .by_source
            .lock()
            .map_err(|_| QueryError::Invalid("a query worker failed".into()))?;
        if let Some(ids) = known.get(&source) {
            return Ok(ids.clone());
        }
        let (Some(src), Some(Some(cols))) =
            (sources.get(source as usize), columns.get(source as usize))
        else {
            return Err(QueryError::Invalid("a tie in an unknown source".into()));
        };
        let ranks = cols.loaded.ranks()?;
        let column = source_insert_ids(&self.store, src)?;
        let strings = Strings::of(&column);
        let mut by_rank = vec![None; ranks.len()];
        for (row, rank) in ranks.iter().enumerate() {
            if let Some(slot) = by_rank.get_mut(*rank as usize) {
                *slot = strings
                    .as_ref()
                    .and_then(|s| s.get(row))
                    .map(str::to_string);
            }
        }
        let by_rank = Arc::new(by_rank);
        known.insert(source, by_rank.clone());
        Ok(by_rank)
    }

    /// Orders `groups` of `rows` — found by [`unordered_groups`] in rows sorted by (person,
    /// time, arrival, source, rank) — by insert id.
    pub fn order(
        &self,
        sources: &[Source],
        columns: &[Option<SourceRows>],
        rows: &mut [SequenceRow],
        groups: Vec<Range<usize>>,
    ) -> Result<()> {
        for g in groups {
            let mut keyed = Vec::with_capacity(g.len());
            for r in &rows[g.clone()] {
                let ids = self.of_source(sources, columns, r.tie.0 & !MERGED)?;
                let id = ids.get(r.tie.1 as usize).cloned().flatten();
                keyed.push((id, r.clone()));
            }
            keyed.sort_by(|a, b| (&a.0, a.1.tie).cmp(&(&b.0, b.1.tie)));
            for (slot, (_, row)) in rows[g].iter_mut().zip(keyed) {
                *slot = row;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(person: u64, time_ms: i64, tag: u32, rank: u32) -> SequenceRow {
        SequenceRow {
            person,
            time_ms,
            event: 0,
            properties: None,
            received_ms: 0,
            tie: (tag, rank),
        }
    }

    #[test]
    fn only_groups_spanning_sources_or_merged_keys_need_insert_ids() {
        let rows = vec![
            row(1, 10, 0, 0),
            row(1, 10, 0, 1), // same source: its ranks order it
            row(2, 10, 0, 5),
            row(2, 10, 1, 0), // two sources
            row(3, 10, MERGED, 0),
            row(3, 10, MERGED, 1), // merged keys
            row(4, 10, 1, 0),
            row(4, 11, 2, 0), // not a tie
        ];
        assert_eq!(unordered_groups(&rows), vec![2..4, 4..6]);
    }
}
