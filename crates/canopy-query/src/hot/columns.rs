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
                let sort = |name: &str| -> Result<SortColumn> {
                    Ok(SortColumn {
                        values: column(name)?.clone(),
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

fn persons(c: &ArrayRef) -> Result<&UInt64Array> {
    c.as_any()
        .downcast_ref::<UInt64Array>()
        .ok_or_else(|| QueryError::Invalid("person is not a key".into()))
}
