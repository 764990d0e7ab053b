//! The aggregation behind insights (segmentation): events of some names in a range, filtered
//! on event and profile properties, grouped by event × segment (a broken-down property) ×
//! time bucket, and measured — totals, unique persons, per-person statistics of event counts,
//! or statistics of a numeric property. Everything runs inside DataFusion on both cores; the
//! per-bucket rows and the whole-range row of each group come from one scan (grouping sets).

use crate::bucket_udf::BucketUdf;
use crate::filters::{PropertyFilter, Source, filter_expr, source_prefix};
use crate::person_set_udf::{InSetUdf, PersonSet};
use crate::property_udf::{PropKind, property_expr, where_expr};
use crate::segment_rows::{collect_rows, keep_top};
use crate::table::{QueryEngine, column_names, time_between};
use crate::{QueryError, Result};
use arrow::datatypes::DataType;
pub use canopy_report_wire::{Measure, Stat};
use canopy_types::ProjectId;
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::expr_fn::{
    avg, count, count_distinct, max, median, min, percentile_cont, sum,
};
use datafusion::logical_expr::{GroupingSet, JoinType, when};
use datafusion::prelude::{DataFrame, Expr, cast, col, ident, lit, not};
use std::sync::Arc;

/// An event of the report, optionally narrowed by a Mixpanel `where` expression.
#[derive(Debug, Clone)]
pub struct EventSelector {
    pub event: String,
    pub where_expr: Option<String>,
}

/// What a breakdown splits by.
#[derive(Debug, Clone)]
pub enum BreakdownBy {
    Property {
        property: String,
        source: Source,
    },
    /// Members get the segment `label`, everyone else `not in {label}`.
    Cohort {
        label: String,
        members: PersonSet,
    },
}

#[derive(Debug, Clone)]
pub struct Breakdown {
    pub by: BreakdownBy,
    /// When set, segments outside this list are reported together as [`OTHER_SEGMENT`]
    /// (`None` in the list keeps the "not set" segment).
    pub keep: Option<Vec<Option<String>>>,
}

/// The segment of all values outside a breakdown's top N.
pub const OTHER_SEGMENT: &str = "$other";

#[derive(Debug, Clone)]
pub struct AggregateRequest {
    pub project: ProjectId,
    /// Inclusive, ms since the epoch.
    pub from_ms: i64,
    /// Exclusive.
    pub to_ms: i64,
    pub events: Vec<EventSelector>,
    /// Applied to every event (Mixpanel's `where`).
    pub where_expr: Option<String>,
    pub filters: Vec<PropertyFilter>,
    /// Only members of a set of persons (or, with `negate`, everyone else).
    pub persons: Option<(PersonSet, bool)>,
    /// Ascending bucket starts (the first at or before `from_ms`); `None`: whole range only.
    pub buckets: Option<Arc<[i64]>>,
    pub breakdown: Option<Breakdown>,
    pub measure: Measure,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AggregateRow {
    pub event: String,
    /// The breakdown's value (`None`: not set, or no breakdown).
    pub segment: Option<String>,
    /// Index into the request's buckets; `None` for the whole range.
    pub bucket: Option<u32>,
    /// `None` where a statistic has no input (e.g. the average of a property never sent).
    pub value: Option<f64>,
}

fn stat_expr(stat: Stat, x: Expr) -> Expr {
    match stat {
        Stat::Sum => sum(x),
        Stat::Avg => avg(x),
        Stat::Min => min(x),
        Stat::Max => max(x),
        Stat::Median => median(x),
        Stat::Percentile(p) => percentile_cont(x.sort(true, false), lit(p)),
    }
}

impl AggregateRequest {
    fn needs_profiles(&self) -> bool {
        self.filters.iter().any(|f| f.source == Source::User)
            || self.breakdown.as_ref().is_some_and(|b| {
                matches!(
                    b.by,
                    BreakdownBy::Property {
                        source: Source::User,
                        ..
                    }
                )
            })
            || self.measure.source() == Some(Source::User)
    }
}

impl QueryEngine {
    /// Runs `req`: one row per (event, segment, bucket) that has events, plus one per
    /// (event, segment) for the whole range.
    pub async fn aggregate(&self, req: &AggregateRequest) -> Result<Vec<AggregateRow>> {
        if req.events.is_empty() {
            return Err(QueryError::Invalid("at least one event".into()));
        }
        if req.to_ms <= req.from_ms {
            return Err(QueryError::Invalid("to must be after from".into()));
        }
        if self.column_cache_enabled()
            && let Some(rows) = self.cached_aggregate(req)?
        {
            return Ok(rows);
        }
        let df = self.filtered_events(req).await?;
        let fields: Vec<String> = column_names(&df);
        let segment = match &req.breakdown {
            None => lit(ScalarValue::Utf8(None)),
            Some(b) => {
                let raw = match &b.by {
                    BreakdownBy::Property { property, source } => {
                        property_expr(&fields, source_prefix(*source), property, PropKind::Text)
                    }
                    BreakdownBy::Cohort { label, members } => when(
                        InSetUdf::call(members.clone(), col("person")),
                        lit(label.as_str()),
                    )
                    .otherwise(lit(format!("not in {label}")))?,
                };
                match &b.keep {
                    None => raw,
                    Some(keep) => keep_top(raw, keep),
                }
            }
        };
        let bucket = match &req.buckets {
            Some(starts) => BucketUdf::call(starts.clone(), req.to_ms, col("time")),
            None => lit(ScalarValue::Int32(None)),
        };
        let value = match &req.measure {
            Measure::Property {
                property, source, ..
            } => property_expr(&fields, source_prefix(*source), property, PropKind::Number),
            _ => lit(ScalarValue::Float64(None)),
        };
        // The person is read (and merges applied) only when the measure counts people.
        let person = match req.measure {
            Measure::Unique | Measure::PerPerson(_) => col("person"),
            _ => lit(ScalarValue::UInt64(None)),
        };
        let df = df.select(vec![
            col("event").alias("ev"),
            segment.alias("seg"),
            bucket.alias("bucket"),
            person.alias("person"),
            value.alias("val"),
        ])?;
        let bucketed = req.buckets.is_some();
        // Grouping only by what varies: one event needs no event key, no breakdown no segment
        // key (constant keys cost a hash-table column for every row); they are added back as
        // literals after the aggregation.
        let mut names: Vec<&str> = req.events.iter().map(|e| e.event.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let single_event = (names.len() == 1).then(|| names[0].to_string());
        let mut keys: Vec<Expr> = Vec::new();
        if single_event.is_none() {
            keys.push(col("ev"));
        }
        if req.breakdown.is_some() {
            keys.push(col("seg"));
        }
        let groups = |extra: Option<&str>| -> Vec<Expr> {
            let mut whole = keys.clone();
            whole.extend(extra.map(col));
            if bucketed {
                let mut fine = whole.clone();
                fine.push(col("bucket"));
                vec![Expr::GroupingSet(GroupingSet::GroupingSets(vec![
                    fine, whole,
                ]))]
            } else {
                whole
            }
        };
        // `rows` tells a group of no events (a global aggregate over nothing) from a real one.
        let rows = || count(lit(1)).alias("rows");
        let df = match &req.measure {
            Measure::Total => df.aggregate(groups(None), vec![count(lit(1)).alias("v"), rows()])?,
            Measure::Unique => df.aggregate(
                groups(None),
                vec![count_distinct(col("person")).alias("v"), rows()],
            )?,
            Measure::Property { stat, .. } => df.aggregate(
                groups(None),
                vec![stat_expr(*stat, col("val")).alias("v"), rows()],
            )?,
            Measure::PerPerson(stat) => {
                let per_person =
                    df.aggregate(groups(Some("person")), vec![count(lit(1)).alias("n")])?;
                let mut outer = keys.clone();
                if bucketed {
                    outer.push(col("bucket"));
                }
                per_person.aggregate(
                    outer,
                    vec![
                        stat_expr(*stat, cast(col("n"), DataType::Float64)).alias("v"),
                        rows(),
                    ],
                )?
            }
        };
        let df = df.filter(col("rows").gt(lit(0i64)))?;
        let df = df.select(vec![
            match &single_event {
                Some(name) => lit(name.as_str()).alias("ev"),
                None => col("ev"),
            },
            if req.breakdown.is_some() {
                col("seg")
            } else {
                lit(ScalarValue::Utf8(None)).alias("seg")
            },
            if bucketed {
                col("bucket")
            } else {
                lit(ScalarValue::Int32(None)).alias("bucket")
            },
            cast(col("v"), DataType::Float64).alias("v"),
        ])?;
        collect_rows(df).await
    }

    /// The project's events in the range, of the wanted names, passing every filter —
    /// joined to the persons' profiles (as `user.*` columns) when anything reads them.
    async fn filtered_events(&self, req: &AggregateRequest) -> Result<DataFrame> {
        let range = Some((req.from_ms, req.to_ms));
        let needs_profiles = req.needs_profiles();
        let ctx = if needs_profiles {
            self.context_with_profiles(req.project, range).await?
        } else {
            self.context(req.project, range)?
        };
        let mut names: Vec<Expr> = req.events.iter().map(|e| lit(e.event.as_str())).collect();
        names.dedup();
        let mut df = ctx
            .table("events")
            .await?
            .filter(time_between(req.from_ms, req.to_ms).and(col("event").in_list(names, false)))?;
        if needs_profiles {
            let users = ctx.table("profiles").await?;
            let renamed: Vec<Expr> = users
                .schema()
                .fields()
                .iter()
                .map(|f| ident(f.name()).alias(format!("user.{}", f.name())))
                .collect();
            let users = users.select(renamed)?;
            df = df.join_on(
                users,
                JoinType::Left,
                [col("person").eq(ident("user.person"))],
            )?;
        }
        let fields: Vec<String> = column_names(&df);
        if req.events.iter().any(|e| e.where_expr.is_some()) {
            let mut any: Option<Expr> = None;
            for e in &req.events {
                let mut p = col("event").eq(lit(e.event.as_str()));
                if let Some(w) = e.where_expr.as_deref().filter(|w| !w.trim().is_empty()) {
                    p = p.and(where_expr(&fields, w)?);
                }
                any = Some(match any {
                    Some(a) => a.or(p),
                    None => p,
                });
            }
            if let Some(p) = any {
                df = df.filter(p)?;
            }
        }
        if let Some(w) = req.where_expr.as_deref().filter(|w| !w.trim().is_empty()) {
            df = df.filter(where_expr(&fields, w)?)?;
        }
        for f in &req.filters {
            df = df.filter(filter_expr(f, &fields)?)?;
        }
        if let Some((members, negate)) = &req.persons {
            let inside = InSetUdf::call(members.clone(), col("person"));
            df = df.filter(if *negate { not(inside) } else { inside })?;
        }
        Ok(df)
    }
}
