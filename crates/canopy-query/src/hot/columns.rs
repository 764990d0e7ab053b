//! The compact, decoded columns the column cache holds, and how each is derived from a batch
//! of a segment (or of the tail): person keys, times, text as dictionary codes, and the tie
//! rank that orders a source's equal (person, time, arrival) rows by insert id.

use crate::ndjson::Strings;
use crate::property_udf::{PropKind, property_values};
use crate::{QueryError, Result};
use arrow::array::{Array, ArrayRef, RecordBatch, TimestampMillisecondArray, UInt64Array};
use arrow::buffer::ScalarBuffer;
use arrow::compute::{SortColumn, lexsort_to_indices};
use std::collections::HashMap;
use std::sync::Arc;

/// Text as codes into a table of distinct values; `None` in the table is "not set".
#[derive(Debug)]
pub(crate) struct Codes {
    pub codes: Vec<u32>,
    pub values: Vec<Option<Arc<str>>>,
    /// For the event column: the rows of each code, in row order (`starts[c]..starts[c+1]`
    /// of `rows`), so a report on one event reads only that event's rows.
    postings: Option<(Vec<u32>, Vec<u32>)>,
}

impl Codes {
    fn encode(strings: &Strings<'_>, rows: usize) -> Self {
        let mut index: HashMap<Option<&str>, u32> = HashMap::new();
        let mut values = Vec::new();
        let mut codes = Vec::with_capacity(rows);
        for row in 0..rows {
            let v = strings.get(row);
            let code = *index.entry(v).or_insert_with(|| {
                values.push(v.map(Arc::from));
                (values.len() - 1) as u32
            });
            codes.push(code);
        }
        Self {
            codes,
            values,
            postings: None,
        }
    }

    /// Adds the rows of each code (a counting sort: two passes over the codes).
    fn with_postings(mut self) -> Self {
        let mut starts = vec![0u32; self.values.len() + 1];
        for c in &self.codes {
            starts[*c as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut next = starts.clone();
        let mut rows = vec![0u32; self.codes.len()];
        for (row, c) in self.codes.iter().enumerate() {
            let at = &mut next[*c as usize];
            rows[*at as usize] = row as u32;
            *at += 1;
        }
        self.postings = Some((starts, rows));
        self
    }

    /// The rows holding `code`, in row order, when the column has postings.
    pub fn rows_of(&self, code: usize) -> Option<&[u32]> {
        let (starts, rows) = self.postings.as_ref()?;
        let (from, to) = (*starts.get(code)?, *starts.get(code + 1)?);
        rows.get(from as usize..to as usize)
    }

    /// For each value of the table, what `f` makes of it: a per-source lookup table, so rows
    /// are matched by code rather than by comparing text.
    pub fn translate<T>(&self, f: impl FnMut(Option<&str>) -> T) -> Vec<T> {
        self.values.iter().map(|v| v.as_deref()).map(f).collect()
    }
}

/// One cached column of one source.
#[derive(Debug)]
pub(crate) enum HotColumn {
    /// Person keys as stored (before identity merges); null for none.
    Persons(UInt64Array),
    /// Milliseconds since the epoch.
    Times(ScalarBuffer<i64>),
    Text(Codes),
    /// Each row's position in the source ordered by (person, time, arrival, insert id).
    Ranks(Vec<u32>),
}

impl HotColumn {
    pub fn heap_bytes(&self) -> usize {
        match self {
            HotColumn::Persons(a) => a.get_array_memory_size(),
            HotColumn::Times(t) => t.len() * 8,
            HotColumn::Text(c) => {
                c.codes.len() * 4
                    + c.postings
                        .as_ref()
                        .map_or(0, |(s, r)| (s.len() + r.len()) * 4)
                    + c.values
                        .iter()
                        .map(|v| 24 + v.as_ref().map_or(0, |s| s.len()))
                        .sum::<usize>()
            }
            HotColumn::Ranks(r) => r.len() * 4,
        }
    }
}

/// What a query can ask of a source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ColumnKey {
    Person,
    Time,
    Received,
    Event,
    Tie,
    /// An event property read as text (typed columns first, then `props_other`).
    PropertyText(String),
}

impl ColumnKey {
    /// The stored columns this one is derived from.
    pub fn inputs(&self) -> Vec<String> {
        match self {
            ColumnKey::Person => vec!["person".into()],
            ColumnKey::Time => vec!["time".into()],
            ColumnKey::Received => vec!["received".into()],
            ColumnKey::Event => vec!["event".into()],
            ColumnKey::Tie => ["person", "time", "received", "insert_id"]
                .map(String::from)
                .to_vec(),
            ColumnKey::PropertyText(p) => {
                let mut names = vec!["props_other".to_string()];
                names.extend(["s", "n", "b"].map(|t| format!("p.{t}.{p}")));
                names
            }
        }
    }

    /// Derives the column from a batch holding (at least) its inputs.
    pub fn derive(&self, batch: &RecordBatch) -> Result<HotColumn> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| QueryError::Invalid(format!("a segment lacks the column {name}")))
        };
        let times = |name: &str| -> Result<ScalarBuffer<i64>> {
            column(name)?
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .map(|t| t.values().clone())
                .ok_or_else(|| QueryError::Invalid(format!("{name} is not a timestamp")))
        };
        Ok(match self {
            ColumnKey::Person => HotColumn::Persons(persons(column("person")?)?.clone()),
            ColumnKey::Time => HotColumn::Times(times("time")?),
            ColumnKey::Received => HotColumn::Times(times("received")?),
            ColumnKey::Event => {
                let events = column("event")?;
                let strings = Strings::of(events)
                    .ok_or_else(|| QueryError::Invalid("event is not text".into()))?;
                HotColumn::Text(Codes::encode(&strings, events.len()).with_postings())
            }
            ColumnKey::Tie => {
                let ranks = match linear_ranks(batch)? {
                    Some(ranks) => ranks,
                    None => sorted_ranks(batch)?,
                };
                HotColumn::Ranks(ranks)
            }
            ColumnKey::PropertyText(p) => {
                let n = batch.num_rows();
                let other: ArrayRef = match batch.column_by_name("props_other") {
                    Some(c) => c.clone(),
                    None => arrow::array::new_null_array(&arrow::datatypes::DataType::Utf8, n),
                };
                let typed: Vec<ArrayRef> = ["s", "n", "b"]
                    .iter()
                    .filter_map(|t| batch.column_by_name(&format!("p.{t}.{p}")).cloned())
                    .collect();
                let text = property_values(&other, &typed, p, PropKind::Text)?;
                let strings = Strings::of(&text).ok_or_else(|| {
                    QueryError::Invalid("a property read as text is not text".into())
                })?;
                HotColumn::Text(Codes::encode(&strings, n))
            }
        })
    }
}

/// Ranks by (person, time, arrival, insert id) of a batch already in (person, time) order —
/// every segment and tail chunk is — in one pass: only rows sharing a person and a time are
/// sorted among themselves. `None` when the batch is not in that order (or has a row
/// without a person), for [`sorted_ranks`].
fn linear_ranks(batch: &RecordBatch) -> Result<Option<Vec<u32>>> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| QueryError::Invalid(format!("a segment lacks the column {name}")))
    };
    let person = persons(column("person")?)?;
    let stamps = |name: &str| -> Result<&TimestampMillisecondArray> {
        column(name)?
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .ok_or_else(|| QueryError::Invalid(format!("{name} is not a timestamp")))
    };
    let (time, received) = (stamps("time")?, stamps("received")?);
    if person.null_count() > 0 {
        return Ok(None);
    }
    let key = |row: usize| (person.value(row), time.value(row));
    let n = batch.num_rows();
    if (1..n).any(|i| key(i - 1) > key(i)) {
        return Ok(None);
    }
    let ids = column("insert_id")?;
    let ids =
        Strings::of(ids).ok_or_else(|| QueryError::Invalid("insert_id is not text".into()))?;
    let mut ranks: Vec<u32> = (0..n as u32).collect();
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && key(end) == key(start) {
            end += 1;
        }
        if end - start > 1 {
            let mut rows: Vec<usize> = (start..end).collect();
            rows.sort_by(|a, b| {
                (received.value(*a), ids.get(*a), *a).cmp(&(received.value(*b), ids.get(*b), *b))
            });
            for (position, row) in rows.into_iter().enumerate() {
                ranks[row] = (start + position) as u32;
            }
        }
        start = end;
    }
    Ok(Some(ranks))
}

/// Ranks by (person, time, arrival, insert id) of a batch in any order.
fn sorted_ranks(batch: &RecordBatch) -> Result<Vec<u32>> {
    let sort = |name: &str| -> Result<SortColumn> {
        Ok(SortColumn {
            values: batch
                .column_by_name(name)
                .ok_or_else(|| QueryError::Invalid(format!("a segment lacks the column {name}")))?
                .clone(),
            options: None,
        })
    };
    let order = lexsort_to_indices(
        &[
            sort("person")?,
            sort("time")?,
            sort("received")?,
            sort("insert_id")?,
        ],
        None,
    )?;
    let mut ranks = vec![0u32; batch.num_rows()];
    for (position, row) in order.values().iter().enumerate() {
        ranks[*row as usize] = position as u32;
    }
    Ok(ranks)
}

fn persons(c: &ArrayRef) -> Result<&UInt64Array> {
    c.as_any()
        .downcast_ref::<UInt64Array>()
        .ok_or_else(|| QueryError::Invalid("person is not a key".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use proptest::prelude::*;

    fn batch(rows: &[(u64, i64, i64)]) -> RecordBatch {
        let stamp = DataType::Timestamp(TimeUnit::Millisecond, None);
        let schema = Arc::new(Schema::new(vec![
            Field::new("person", DataType::UInt64, true),
            Field::new("time", stamp.clone(), false),
            Field::new("received", stamp, false),
            Field::new("insert_id", DataType::Utf8, true),
        ]));
        let n = rows.len();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.1),
                )),
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.2),
                )),
                // Unique, and not in row order.
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("id{:05}", (i * 7919) % 100_000)),
                )),
            ],
        )
        .unwrap()
    }

    proptest! {
        #[test]
        fn one_pass_ranks_equal_a_full_sort_on_person_time_ordered_rows(
            mut rows in prop::collection::vec((0u64..4, 0i64..4, 0i64..3), 0..80),
        ) {
            rows.sort_by_key(|r| (r.0, r.1));
            let b = batch(&rows);
            prop_assert_eq!(linear_ranks(&b).unwrap(), Some(sorted_ranks(&b).unwrap()));
        }

        #[test]
        fn rows_out_of_order_are_left_to_the_full_sort(
            rows in prop::collection::vec((0u64..4, 0i64..4, 0i64..3), 2..80),
        ) {
            let ordered = rows.windows(2).all(|w| (w[0].0, w[0].1) <= (w[1].0, w[1].1));
            prop_assert_eq!(linear_ranks(&batch(&rows)).unwrap().is_some(), ordered);
        }
    }
}
