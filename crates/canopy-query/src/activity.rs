//! One person's events (issue #5 item 6, and the access requests of #6): every stored key of
//! the person's identity cluster, from one snapshot, in time order.

use crate::Result;
use crate::table::{QueryEngine, time_between};
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema};
use canopy_types::{Event, PersonKey, ProjectId};
use datafusion::prelude::{SessionContext, col, lit};
use std::sync::Arc;

/// Events stored under any of `keys`, in `[from_ms, to_ms)` when given, oldest first (or
/// newest first), at most `limit`.
pub(crate) async fn cluster_events(
    ctx: &SessionContext,
    project: ProjectId,
    keys: &[u64],
    range: Option<(i64, i64)>,
    oldest_first: bool,
    limit: usize,
) -> Result<Vec<Event>> {
    let mut df = ctx
        .table("events_stored")
        .await?
        .filter(col("person").in_list(keys.iter().map(|p| lit(*p)).collect(), false))?;
    if let Some((from, to)) = range {
        df = df.filter(time_between(from, to))?;
    }
    let df = df
        .sort(vec![
            col("time").sort(oldest_first, false),
            col("received").sort(oldest_first, false),
        ])?
        .limit(0, Some(limit))?;
    let mut events = Vec::new();
    for batch in df.collect().await? {
        events.extend(canopy_store::batch_to_events(
            &plain_strings(&batch)?,
            project,
        )?);
    }
    Ok(events)
}

impl QueryEngine {
    /// The person's events in `[from_ms, to_ms)`, oldest first, at most `limit`.
    pub async fn person_activity(
        &self,
        project: ProjectId,
        person: PersonKey,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let keys: Vec<u64> = self.identity().cluster_keys(project, person)?;
        let ctx = self.context(project, Some((from_ms, to_ms)))?;
        cluster_events(&ctx, project, &keys, Some((from_ms, to_ms)), true, limit).await
    }
}

/// The batch with string views as plain strings (the store's event decoder reads `Utf8`).
fn plain_strings(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        if f.data_type() == &DataType::Utf8View {
            fields.push(f.as_ref().clone().with_data_type(DataType::Utf8));
            columns.push(arrow::compute::cast(c, &DataType::Utf8)?);
        } else {
            fields.push(f.as_ref().clone());
            columns.push(c.clone());
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
