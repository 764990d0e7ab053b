//! Rectification of past events (issue #6 item 4): a property sent by mistake is corrected or
//! removed on a person's stored events by the same rewrite erasure uses — the segments of the
//! person's buckets that hold a changed event are rewritten under new keys, the old keys and
//! files go, so the wrong value survives nowhere.

use crate::Result;
use crate::columns::{batch_to_events, events_to_batch};
use crate::erase::{ErasureReport, Rewrite, RowSelector, read_for_rewrite};
use crate::layout::Table;
use crate::store::Store;
use canopy_types::{Event, ProjectId};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

impl Store {
    /// Applies `change` to every stored event of `keys` (it returns whether it changed the
    /// event); returns the report, whose `event_rows` count the changed events.
    pub fn rewrite_events_of(
        &self,
        project: ProjectId,
        keys: &HashSet<u64>,
        change: &(dyn Fn(&mut Event) -> bool + Sync),
        unlink_wait: Duration,
    ) -> Result<ErasureReport> {
        let buckets = self.inner.manifest.lock().buckets;
        let persons = RowSelector::Persons(keys);
        self.rewrite(
            project,
            |s| s.partition.table == Table::Events && persons.may_touch(s, buckets),
            |inner, s| {
                let mut events = Vec::new();
                for b in read_for_rewrite(inner, s)? {
                    events.extend(batch_to_events(&b, project)?);
                }
                let mut changed: HashMap<u64, u64> = HashMap::new();
                for e in events.iter_mut() {
                    if keys.contains(&e.person.0) && change(e) {
                        *changed.entry(e.person.0).or_default() += 1;
                    }
                }
                if changed.is_empty() {
                    return Ok(None);
                }
                // Rows stay in (person, time) order: nothing moved, only values changed.
                let rows: Vec<&Event> = events.iter().collect();
                Ok(Some(Rewrite {
                    old: s.clone(),
                    kept: vec![events_to_batch(&rows)?],
                    removed: changed,
                    dropped_unread: 0,
                }))
            },
            unlink_wait,
        )
    }
}
