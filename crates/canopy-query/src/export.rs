//! Raw event export (Mixpanel `/api/2.0/export`): a stream of NDJSON chunks.

use crate::ndjson::EventColumns;
use crate::table::{QueryEngine, time_between};
use crate::{QueryError, Result};
use async_trait::async_trait;
use canopy_expr::{self as where_expr, Expr as WhereExpr};
use canopy_types::ProjectId;
use datafusion::prelude::{col, lit};
use futures::stream::{BoxStream, StreamExt};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Clone, Default)]
pub struct ExportRequest {
    pub project: ProjectId,
    /// Inclusive start, ms since the epoch.
    pub from_ms: i64,
    /// Exclusive end, ms since the epoch.
    pub to_ms: i64,
    /// Only these event names, when non-empty.
    pub events: Vec<String>,
    /// A segmentation expression, as Mixpanel's `where`.
    pub where_expr: Option<String>,
    pub limit: Option<usize>,
    pub time_in_ms: bool,
}

/// Writes the rows of `batch` that pass `filter`, taking from the shared row budget.
fn write_batch(
    batch: &arrow::record_batch::RecordBatch,
    filter: Option<&WhereExpr>,
    time_in_ms: bool,
    remaining: &AtomicUsize,
) -> Result<bytes::Bytes> {
    let cols = EventColumns::new(batch)?;
    let mut buf = Vec::with_capacity(batch.num_rows() * 200);
    for row in 0..batch.num_rows() {
        if let Some(f) = filter
            && !where_expr::matches(f, &cols.properties(row))
        {
            continue;
        }
        // Claim one row of the budget; stop when it is spent.
        if remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1))
            .is_err()
        {
            break;
        }
        cols.write_row(row, time_in_ms, &mut buf);
    }
    Ok(bytes::Bytes::from(buf))
}

pub type ExportStream = BoxStream<'static, Result<bytes::Bytes>>;

/// The export contract every storage backend implements (ClickHouse will, too).
#[async_trait]
pub trait ExportBackend: Send + Sync {
    async fn export(&self, request: ExportRequest) -> Result<ExportStream>;
    /// Stored `/engage` and `/groups` updates of a project, oldest first per person, as NDJSON
    /// records shaped like the requests that carried them.
    async fn export_profile_updates(&self, project: ProjectId) -> Result<ExportStream>;
}

#[async_trait]
impl ExportBackend for QueryEngine {
    async fn export(&self, req: ExportRequest) -> Result<ExportStream> {
        if req.to_ms <= req.from_ms {
            return Err(QueryError::Invalid(
                "to_date must not be before from_date".into(),
            ));
        }
        let filter: Option<WhereExpr> = match &req.where_expr {
            Some(w) if !w.trim().is_empty() => {
                Some(where_expr::parse(w).map_err(QueryError::Where)?)
            }
            _ => None,
        };
        let ctx = self.context(req.project, Some((req.from_ms, req.to_ms)))?;
        let mut df = ctx
            .table("events")
            .await?
            .filter(time_between(req.from_ms, req.to_ms))?;
        if !req.events.is_empty() {
            df = df.filter(
                col("event").in_list(req.events.iter().map(|e| lit(e.as_str())).collect(), false),
            )?;
        }
        if filter.is_none()
            && let Some(n) = req.limit
        {
            df = df.limit(0, Some(n))?;
        }
        // Each DataFusion partition decodes and writes its own NDJSON on its own task, so both
        // cores work on the export; chunks meet in a small bounded channel.
        let streams = df.execute_stream_partitioned().await?;
        let time_in_ms = req.time_in_ms;
        let remaining = Arc::new(AtomicUsize::new(req.limit.unwrap_or(usize::MAX)));
        let filter = Arc::new(filter);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes>>(4);
        for mut stream in streams {
            let (tx, remaining, filter) = (tx.clone(), remaining.clone(), filter.clone());
            tokio::spawn(async move {
                while let Some(batch) = stream.next().await {
                    if remaining.load(Ordering::Relaxed) == 0 {
                        return;
                    }
                    let chunk = batch.map_err(QueryError::from).and_then(|b| {
                        write_batch(&b, filter.as_ref().as_ref(), time_in_ms, &remaining)
                    });
                    let failed = chunk.is_err();
                    if tx.send(chunk).await.is_err() || failed {
                        return;
                    }
                }
            });
        }
        drop(tx);
        Ok(
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
                .boxed(),
        )
    }

    async fn export_profile_updates(&self, project: ProjectId) -> Result<ExportStream> {
        let ctx = self.context(project, None)?;
        let stream = ctx
            .table("profile_updates")
            .await?
            .sort(vec![col("seq").sort(true, false)])?
            .execute_stream()
            .await?;
        Ok(stream
            .map(move |batch| -> Result<bytes::Bytes> {
                let batch = batch?;
                let shown = batch
                    .column_by_name("distinct_id")
                    .and_then(|c| c.as_any().downcast_ref::<arrow::array::StringArray>())
                    .ok_or_else(|| QueryError::Invalid("profile view lacks distinct_id".into()))?;
                let mut buf = Vec::new();
                for (row, (_, u)) in canopy_store::batch_to_profiles(&batch, project)?
                    .into_iter()
                    .enumerate()
                {
                    let mut v = match &u.target {
                        canopy_types::ProfileTarget::User { .. } => {
                            json!({"$distinct_id": shown.value(row)})
                        }
                        canopy_types::ProfileTarget::Group {
                            group_key,
                            group_id,
                        } => {
                            json!({"$group_key": group_key, "$group_id": group_id})
                        }
                    };
                    v[u.operation.as_str()] = u.value;
                    v["$time"] = json!(u.time_ms);
                    for (k, m) in u.modifiers {
                        v[k.as_str()] = m;
                    }
                    serde_json::to_writer(&mut buf, &v)
                        .map_err(|e| QueryError::Invalid(e.to_string()))?;
                    buf.push(b'\n');
                }
                Ok(bytes::Bytes::from(buf))
            })
            .boxed())
    }
}
