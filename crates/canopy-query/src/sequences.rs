//! The scan behind sequence analytics (funnels, retention, flows): a project's events of
//! some names in a time range, as (person, time) ordered rows — person after identity merges,
//! so a person's anonymous and identified events form one sequence. Ties in time are broken by
//! arrival (received time), then insert id, so every engine orders them alike.

use crate::ndjson::EventColumns;
use crate::table::QueryEngine;
use crate::{QueryError, Result};
use arrow::array::{Array, UInt64Array};
use canopy_types::ProjectId;
use datafusion::common::ScalarValue;
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
    /// The most rows a query may hold in memory; beyond it the query fails with a clear
    /// error instead of exhausting memory.
    pub max_rows: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SequenceRow {
    pub person: u64,
    pub time_ms: i64,
    /// Index into [`SequenceRequest::events`].
    pub event: u16,
    pub properties: Option<Map<String, Value>>,
    received_ms: i64,
    insert_id: String,
}

impl QueryEngine {
    /// The rows of `req`, ordered by (person, time, arrival).
    pub async fn sequences(&self, req: &SequenceRequest) -> Result<Vec<SequenceRow>> {
        if req.events.is_empty() || req.events.len() > usize::from(u16::MAX) {
            return Err(QueryError::Invalid(
                "between 1 and 65535 event names".into(),
            ));
        }
        let ctx = self.context(req.project, Some((req.from_ms, req.to_ms)))?;
        let ts = |ms: i64| {
            lit(ScalarValue::TimestampMillisecond(
                Some(ms),
                Some("UTC".into()),
            ))
        };
        let df = ctx.table("events").await?.filter(
            col("time")
                .gt_eq(ts(req.from_ms))
                .and(col("time").lt(ts(req.to_ms)))
                .and(
                    col("event")
                        .in_list(req.events.iter().map(|e| lit(e.as_str())).collect(), false),
                ),
        )?;
        let mut stream = df.execute_stream().await?;
        let mut rows = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let cols = EventColumns::new(&batch)?;
            let person = batch
                .column_by_name("person")
                .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
                .ok_or_else(|| QueryError::Invalid("events need a person column".into()))?;
            if rows.len() + batch.num_rows() > req.max_rows {
                return Err(QueryError::Invalid(format!(
                    "the query needs more than {} events in memory; narrow the date range or raise query.max_rows",
                    req.max_rows
                )));
            }
            for row in 0..batch.num_rows() {
                let Some(event) = req
                    .events
                    .iter()
                    .position(|e| Some(e.as_str()) == cols.event(row))
                else {
                    continue;
                };
                rows.push(SequenceRow {
                    person: if person.is_null(row) {
                        0
                    } else {
                        person.value(row)
                    },
                    time_ms: cols.time_ms(row),
                    event: event as u16,
                    properties: req.with_properties.then(|| cols.properties(row)),
                    received_ms: cols.received_ms(row),
                    insert_id: cols.insert_id(row).unwrap_or_default().to_string(),
                });
            }
        }
        rows.sort_unstable_by(|a, b| {
            (a.person, a.time_ms, a.received_ms)
                .cmp(&(b.person, b.time_ms, b.received_ms))
                .then_with(|| a.insert_id.cmp(&b.insert_id))
        });
        Ok(rows)
    }
}
