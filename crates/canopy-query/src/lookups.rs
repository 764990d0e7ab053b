//! Lookups for query builders (Mixpanel's `events/names` and `events/properties/values`): the
//! most frequent event names, and the most frequent values of a property, in a time range.

use crate::Result;
use crate::property_udf::{PropKind, property_expr};
use crate::segment_rows::string_column;
use crate::table::{QueryEngine, column_names, time_between};
use canopy_types::ProjectId;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::prelude::{DataFrame, Expr, col, lit};

/// `(key, count)` of a grouped frame, most frequent first (ties by key), at most `limit`.
async fn top(df: DataFrame, key: Expr, limit: usize) -> Result<Vec<(String, u64)>> {
    let df = df
        .aggregate(vec![key.alias("k")], vec![count(lit(1)).alias("n")])?
        .filter(col("k").is_not_null())?
        .sort(vec![
            col("n").sort(false, false),
            col("k").sort(true, false),
        ])?
        .limit(0, Some(limit))?;
    let mut out = Vec::new();
    for batch in df.collect().await? {
        let keys = string_column(&batch, "k")?;
        let counts = batch
            .column_by_name("n")
            .and_then(|c| c.as_any().downcast_ref::<arrow::array::Int64Array>())
            .ok_or_else(|| crate::QueryError::Invalid("lookup lacks counts".into()))?;
        for row in 0..batch.num_rows() {
            let k = keys.get(row).unwrap_or_default().to_string();
            out.push((k, counts.value(row).max(0) as u64));
        }
    }
    Ok(out)
}

impl QueryEngine {
    /// Event names in `[from_ms, to_ms)`, most frequent first.
    pub async fn event_names(
        &self,
        project: ProjectId,
        (from_ms, to_ms): (i64, i64),
        limit: usize,
    ) -> Result<Vec<(String, u64)>> {
        let ctx = self.context(project, Some((from_ms, to_ms)))?;
        let df = ctx
            .table("events")
            .await?
            .filter(time_between(from_ms, to_ms))?;
        top(df, col("event"), limit).await
    }

    /// Values (as text) of an event property in `[from_ms, to_ms)`, of one event when given,
    /// most frequent first.
    pub async fn property_values(
        &self,
        project: ProjectId,
        (from_ms, to_ms): (i64, i64),
        event: Option<&str>,
        property: &str,
        limit: usize,
    ) -> Result<Vec<(String, u64)>> {
        let ctx = self.context(project, Some((from_ms, to_ms)))?;
        let mut df = ctx
            .table("events")
            .await?
            .filter(time_between(from_ms, to_ms))?;
        if let Some(e) = event {
            df = df.filter(col("event").eq(lit(e)))?;
        }
        let fields: Vec<String> = column_names(&df);
        let value = property_expr(&fields, "", property, PropKind::Text);
        top(df, value, limit).await
    }
}
