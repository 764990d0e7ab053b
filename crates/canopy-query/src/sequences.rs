//! The scan behind sequence analytics (funnels, retention, flows): a project's events of
//! some names in a time range, as (person, time) ordered rows — person after identity merges,
//! so a person's anonymous and identified events form one sequence. Ties in time are broken by
//! arrival (received time), then insert id, so every engine orders them alike.

use crate::PersonSet;
use crate::hot::RunSet;
use crate::ndjson::{EventColumns, Strings};
use crate::table::{QueryEngine, time_between};
use crate::{QueryError, Result};
use arrow::array::{Array, ArrayRef, RecordBatch, TimestampMillisecondArray, UInt64Array};
use canopy_types::ProjectId;
use datafusion::prelude::{col, lit};
use futures::StreamExt;
use serde_json::{Map, Value};

#[derive(Debug, Clone)]
pub struct SequenceRequest {
    pub project: ProjectId,
    /// Inclusive, ms since the epoch.
    pub from_ms: i64,
    /// Exclusive.
    pub to_ms: i64,
    /// The event names wanted (at least one).
    pub events: Vec<String>,
    /// Whether rows need their properties (filters, held or broken-down properties).
    pub with_properties: bool,
    /// Only these persons (or, negated, everyone else): a cohort.
    pub persons: Option<(PersonSet, bool)>,
}

/// Rough heap cost of one property in a row's map (key, value, node), for the memory bound.
const PROPERTY_BYTES: usize = 96;

#[derive(Debug, Clone, PartialEq)]
pub struct SequenceRow {
    pub person: u64,
    pub time_ms: i64,
    /// Index into [`SequenceRequest::events`].
    pub event: u16,
    /// Boxed: most scans need no properties, and a small row sorts faster.
    pub properties: Option<Box<Map<String, Value>>>,
    pub(crate) received_ms: i64,
    /// Breaks ties in time and arrival: on the DataFusion path the (batch, row) of the row's
    /// insert id; on the cached-column path (source, rank within the source).
    pub(crate) tie: (u32, u32),
}

fn missing(name: &str) -> QueryError {
    QueryError::Invalid(format!("the sequence scan needs the column {name}"))
}

fn timestamps<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a TimestampMillisecondArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref())
        .ok_or_else(|| missing(name))
}

/// The rows of a sequence scan, by person: a person's rows are all in one shard (or bucket)
/// and are folded in (person, time, arrival, insert id) order.
#[derive(Debug)]
pub struct Sequences(Rows);

#[derive(Debug)]
enum Rows {
    /// The DataFusion path: each shard sorted.
    Sorted(Vec<Vec<SequenceRow>>),
    /// The cached-column path: runs of each source, merged when folded.
    Runs(RunSet),
}

impl Sequences {
    pub(crate) fn from_runs(runs: RunSet) -> Self {
        Self(Rows::Runs(runs))
    }

    /// Folds every person's rows into one accumulator per core; cores take shards from a
    /// shared queue (a person's rows are all in one shard).
    pub fn fold_persons<A: Send>(
        &self,
        init: impl Fn() -> A + Sync,
        f: impl Fn(&mut A, &[SequenceRow]) + Sync,
    ) -> Result<Vec<A>> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let shards = match &self.0 {
            Rows::Runs(runs) => return runs.fold_persons(cores, init, f),
            Rows::Sorted(shards) => shards,
        };
        let next = std::sync::atomic::AtomicUsize::new(0);
        let (init, f, next) = (&init, &f, &next);
        let work = move || -> Result<A> {
            let mut acc = init();
            while let Some(rows) =
                shards.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
            {
                for person in rows.chunk_by(|a, b| a.person == b.person) {
                    f(&mut acc, person);
                }
            }
            Ok(acc)
        };
        crate::hot::on_cores(cores.clamp(1, shards.len().max(1)), work)
    }

    /// Every row, each person's in order.
    #[cfg(test)]
    pub(crate) fn rows(&self) -> Vec<SequenceRow> {
        match &self.0 {
            Rows::Sorted(shards) => shards.iter().flatten().cloned().collect(),
            Rows::Runs(runs) => runs.rows(),
        }
    }
}

impl QueryEngine {
    /// The rows of `req`, by person into shards, each ordered by (person, time, arrival,
    /// insert id); the shards are sorted in parallel.
    pub async fn sequences(&self, req: &SequenceRequest) -> Result<Sequences> {
        if req.events.is_empty() || req.events.len() > usize::from(u16::MAX) {
            return Err(QueryError::Invalid(
                "between 1 and 65535 event names".into(),
            ));
        }
        if !req.with_properties && self.column_cache_enabled() {
            return self.cached_sequences(req);
        }
        let ctx = self.context(req.project, Some((req.from_ms, req.to_ms)))?;
        let mut df =
            ctx.table("events")
                .await?
                .filter(
                    time_between(req.from_ms, req.to_ms).and(
                        col("event")
                            .in_list(req.events.iter().map(|e| lit(e.as_str())).collect(), false),
                    ),
                )?;
        if !req.with_properties {
            // Only what ordering and matching need: no canonical ids, no property columns.
            df = df.select(vec![
                col("person"),
                col("time"),
                col("received"),
                col("insert_id"),
                col("event"),
            ])?;
        }
        let mut stream = df.execute_stream().await?;
        let n_shards = self.target_partitions().max(1);
        let mut shards: Vec<Vec<SequenceRow>> = (0..n_shards).map(|_| Vec::new()).collect();
        // The rows count against the query's memory limit like DataFusion's operators do.
        let mut bytes = 0usize;
        let mut insert_ids: Vec<ArrayRef> = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch?;

            let person = batch
                .column_by_name("person")
                .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
                .ok_or_else(|| missing("person"))?;
            let (time, received) = (timestamps(&batch, "time")?, timestamps(&batch, "received")?);
            let names = batch
                .column_by_name("event")
                .and_then(Strings::of)
                .ok_or_else(|| missing("event"))?;
            let props = if req.with_properties {
                Some(EventColumns::new(&batch)?)
            } else {
                None
            };
            let b = insert_ids.len() as u32;
            insert_ids.push(
                batch
                    .column_by_name("insert_id")
                    .cloned()
                    .ok_or_else(|| missing("insert_id"))?,
            );
            for row in 0..batch.num_rows() {
                let Some(event) = req
                    .events
                    .iter()
                    .position(|e| Some(e.as_str()) == names.get(row))
                else {
                    continue;
                };
                let person = if person.is_null(row) {
                    0
                } else {
                    person.value(row)
                };
                if let Some((members, negate)) = &req.persons
                    && members.contains(&person) == *negate
                {
                    continue;
                }
                let shard = canopy_types::PersonKey(person).bucket(n_shards as u32) as usize;
                let properties = props.as_ref().map(|c| Box::new(c.properties(row)));
                bytes += std::mem::size_of::<SequenceRow>()
                    + properties.as_ref().map_or(0, |p| p.len() * PROPERTY_BYTES);
                if bytes > self.memory_limit() {
                    return Err(QueryError::TooLarge);
                }
                shards[shard].push(SequenceRow {
                    person,
                    time_ms: time.value(row),
                    event: event as u16,
                    properties,
                    received_ms: received.value(row),
                    tie: (b, row as u32),
                });
            }
        }
        let insert_id = |r: &SequenceRow| {
            insert_ids
                .get(r.tie.0 as usize)
                .and_then(Strings::of)
                .and_then(|s| s.get(r.tie.1 as usize))
        };
        let insert_id = &insert_id;
        std::thread::scope(|scope| {
            for shard in shards.iter_mut() {
                // A stable (run-adaptive) sort: segments are already ordered by (person,
                // time), so a shard is a concatenation of sorted runs that merge cheaply.
                scope.spawn(move || {
                    shard.sort_by(|a, b| {
                        (a.person, a.time_ms, a.received_ms)
                            .cmp(&(b.person, b.time_ms, b.received_ms))
                            .then_with(|| insert_id(a).cmp(&insert_id(b)))
                    })
                });
            }
        });
        Ok(Sequences(Rows::Sorted(shards)))
    }
}
