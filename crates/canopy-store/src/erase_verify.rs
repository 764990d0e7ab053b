//! Proving an erasure: how many rows of a set of person keys are still stored, checked over
//! every segment of the project (with each segment's person filter first) and the tail.

use crate::erase::RowSelector;
use crate::manifest::SegmentMeta;
use crate::person_filter::PersonFilter;
use crate::person_filter::person_array;
use crate::segment::read_segment_column;
use crate::store::Store;
use crate::{Result, StoreError};
use arrow::array::ArrayRef;
use canopy_types::ProjectId;
use std::collections::HashSet;
use std::sync::Arc;

/// Rows still stored under a set of person keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowsFound {
    /// Segments checked: every live segment of the project.
    pub segments_scanned: usize,
    /// Of those, segments whose person filter could not rule the keys out, read in full.
    pub segments_read: usize,
    pub segment_rows: u64,
    pub tail_rows: u64,
}

impl RowsFound {
    pub fn total(&self) -> u64 {
        self.segment_rows + self.tail_rows
    }
}

impl Store {
    /// Counts the rows of `project` stored under one of `keys`, over every segment of the
    /// project (not only the keys' buckets: the proof does not rely on the partitioning it
    /// checks) and the tail. A segment whose person filter rules every key out holds none of
    /// them; the others have their person column read and counted (a segment found on disk at
    /// start-up gets its filter from that read).
    pub fn count_person_rows(&self, project: ProjectId, keys: &HashSet<u64>) -> Result<RowsFound> {
        let snapshot = self.snapshot(project);
        let counts = crate::parallel::map_on_cores(
            &snapshot.segments,
            |s| -> Result<Option<u64>> {
                if let Some(filter) = s.persons.get()
                    && !keys.iter().any(|k| filter.may_contain(*k))
                {
                    return Ok(None);
                }
                let columns = self.person_column(s)?;
                let mut n = 0;
                for c in columns {
                    let persons = person_array(&c)?;
                    n += persons.values().iter().filter(|p| keys.contains(p)).count() as u64;
                }
                Ok(Some(n))
            },
            || {
                Err(StoreError::Manifest(
                    "a verification worker panicked".into(),
                ))
            },
        );
        let mut found = RowsFound {
            segments_scanned: snapshot.segments.len(),
            ..Default::default()
        };
        for c in counts {
            if let Some(n) = c? {
                found.segments_read += 1;
                found.segment_rows += n;
            }
        }
        let persons = RowSelector::Persons(keys);
        for chunk in &snapshot.tail {
            found.tail_rows += persons.tail_rows(chunk);
        }
        Ok(found)
    }

    /// Reads a segment's person column, and gives the segment its person filter from it if it
    /// has none yet (a segment found on disk at start-up).
    fn person_column(&self, s: &SegmentMeta) -> Result<Vec<ArrayRef>> {
        let key = self.segment_key(s)?;
        let columns = read_segment_column(&self.segment_path(s), &key, s.id, "person")?;
        if s.persons.get().is_none() {
            let _ = s.persons.set(PersonFilter::of_columns(&columns)?);
        }
        Ok(columns)
    }

    /// Builds the person filter of every live segment that lacks one (those found on disk at
    /// start-up), so the first erasure's verification need not read them; returns how many.
    pub fn warm_person_filters(&self) -> Result<usize> {
        let missing: Vec<Arc<SegmentMeta>> = self
            .inner
            .segments
            .read()
            .iter()
            .filter(|s| s.persons.get().is_none())
            .cloned()
            .collect();
        let built = crate::parallel::map_on_cores(
            &missing,
            |s| self.person_column(s).map(|_| ()),
            || Err(StoreError::Manifest("a filter worker panicked".into())),
        );
        built.into_iter().collect::<Result<Vec<()>>>()?;
        let bytes: usize = self
            .inner
            .segments
            .read()
            .iter()
            .filter_map(|s| s.persons.get().map(|f| f.heap_bytes()))
            .sum();
        metrics::gauge!("canopy_store_person_filter_bytes").set(bytes as f64);
        Ok(missing.len())
    }
}
