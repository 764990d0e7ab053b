//! Who is in a cohort: people who did an event at least N times in a window (behavioural),
//! or whose profile passes property filters. Both are computed inside DataFusion and return
//! current person keys (merges applied), ready for `canopy_in_set`.

use crate::filters::{PropertyFilter, Source, filter_expr};
use crate::property_udf::where_expr;
use crate::table::{QueryEngine, column_names, time_between};
use crate::{QueryError, Result};
use arrow::array::{Array, UInt64Array};
use canopy_types::ProjectId;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::prelude::{DataFrame, col, lit};
use std::collections::HashSet;

async fn person_keys(df: DataFrame) -> Result<HashSet<u64>> {
    let mut out = HashSet::new();
    for batch in df.collect().await? {
        let persons = batch
            .column_by_name("person")
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
            .ok_or_else(|| QueryError::Invalid("members need a person column".into()))?;
        out.extend(persons.iter().flatten());
    }
    Ok(out)
}

impl QueryEngine {
    /// People with at least `min_count` events named `event` (passing `where_text`) in
    /// `[from_ms, to_ms)`.
    pub async fn persons_with_events(
        &self,
        project: ProjectId,
        (from_ms, to_ms): (i64, i64),
        event: &str,
        where_text: Option<&str>,
        min_count: u64,
    ) -> Result<HashSet<u64>> {
        let ctx = self.context(project, Some((from_ms, to_ms)))?;
        let mut df = ctx
            .table("events")
            .await?
            .filter(time_between(from_ms, to_ms).and(col("event").eq(lit(event))))?;
        if let Some(w) = where_text.filter(|w| !w.trim().is_empty()) {
            let fields: Vec<String> = column_names(&df);
            df = df.filter(where_expr(&fields, w)?)?;
        }
        let df = df
            .aggregate(vec![col("person")], vec![count(lit(1)).alias("n")])?
            .filter(col("n").gt_eq(lit(min_count as i64)))?
            .select(vec![col("person")])?;
        person_keys(df).await
    }

    /// Everyone the project knows: people with an event at any time or with a user profile
    /// (the universe a "did not do" cohort is taken from).
    pub async fn known_persons(&self, project: ProjectId) -> Result<HashSet<u64>> {
        let ctx = self.context_with_profiles(project, None).await?;
        let events = ctx
            .table("events")
            .await?
            .filter(col("person").is_not_null())?
            .select(vec![col("person")])?
            .distinct()?;
        let profiles = ctx.table("profiles").await?.select(vec![col("person")])?;
        let mut out = person_keys(events).await?;
        out.extend(person_keys(profiles).await?);
        Ok(out)
    }

    /// People whose user profile passes every filter (read as profile properties).
    pub async fn persons_with_profile(
        &self,
        project: ProjectId,
        filters: &[PropertyFilter],
    ) -> Result<HashSet<u64>> {
        let ctx = self.context_with_profiles(project, Some((0, 0))).await?;
        let mut df = ctx.table("profiles").await?;
        let fields: Vec<String> = column_names(&df);
        for f in filters {
            // The profiles table holds the profile's properties unprefixed.
            let mut f = f.clone();
            f.source = Source::Event;
            df = df.filter(filter_expr(&f, &fields)?)?;
        }
        person_keys(df.select(vec![col("person")])?).await
    }
}
