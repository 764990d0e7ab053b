//! Rows that tie on (person, time, arrival) are ordered by insert id, as on the DataFusion
//! path. A source's tie rank already does that among its own rows; rows from two sources (or
//! from two keys merged into one person) in such a group are ordered here, by the insert ids
//! read from their sources — rare, so those are read when needed and never cached.

use super::columns::ColumnKey;
use super::sources::Source;
use crate::Result;
use crate::ndjson::Strings;
use crate::sequences::SequenceRow;
use crate::table::QueryEngine;
use std::collections::HashMap;
use std::ops::Range;

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

impl QueryEngine {
    /// Orders `groups` — (shard, rows) found by [`unordered_groups`] in `shards`, each
    /// sorted by (person, time, arrival, source, rank) — by insert id.
    pub(crate) fn order_ties_across_sources(
        &self,
        sources: &[Source],
        shards: &mut [Vec<SequenceRow>],
        groups: Vec<(usize, Range<usize>)>,
    ) -> Result<()> {
        if groups.is_empty() {
            return Ok(());
        }
        // source → rank → insert id
        let mut wanted: HashMap<u32, HashMap<u32, Option<String>>> = HashMap::new();
        for (s, g) in &groups {
            for r in &shards[*s][g.clone()] {
                wanted
                    .entry(r.tie.0 & !MERGED)
                    .or_default()
                    .insert(r.tie.1, None);
            }
        }
        let cache = self.column_cache();
        let generation = cache.generation();
        for (source, ids) in wanted.iter_mut() {
            let Some(source) = sources.get(*source as usize) else {
                continue;
            };
            let loaded = self.load_source(source, &[ColumnKey::Tie], &cache, generation)?;
            let column = self.source_insert_ids(source)?;
            let strings = Strings::of(&column);
            for (row, rank) in loaded.ranks()?.iter().enumerate() {
                if let Some(id) = ids.get_mut(rank) {
                    *id = strings
                        .as_ref()
                        .and_then(|s| s.get(row))
                        .map(str::to_string);
                }
            }
        }
        let id = |r: &SequenceRow| {
            wanted
                .get(&(r.tie.0 & !MERGED))
                .and_then(|m| m.get(&r.tie.1))
                .cloned()
                .flatten()
        };
        for (s, g) in groups {
            shards[s][g].sort_by_cached_key(|r| (id(r), r.tie));
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
