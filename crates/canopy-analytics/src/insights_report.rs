//! The insights report (segmentation, issue #5): how many events, people, events per person
//! or how much of a numeric property, per time bucket in the project's time zone, per event
//! and per segment of a breakdown (top N plus "$other"), optionally with the previous period
//! alongside. Validation and shaping here; the aggregation is `canopy_query::aggregate`.

use crate::insights_shape::{additive, fold_other, segments_per_event, shape, top_segments};
use crate::time_buckets::{buckets, parse_tz};
use crate::{AnalyticsError, Result};
use canopy_query::{
    AggregateRequest, AggregateRow, Breakdown, BreakdownBy, EventSelector, Measure, PersonSet,
    QueryEngine,
};
use canopy_report_wire::{Definition, InsightsQuery, MeasureDef, Split};
use canopy_types::ProjectId;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// An insights report to run: the client's definition and what the server resolved for it.
#[derive(Debug, Clone)]
pub struct InsightsRequest {
    pub project: ProjectId,
    pub query: InsightsQuery,
    /// IANA zone of the buckets (the project's setting).
    pub timezone: String,
    /// The cohorts the query names (`InsightsQuery::cohort_ids`): id → (name, members).
    pub cohorts: HashMap<u64, (String, PersonSet)>,
    /// When set, segments beyond the top `limit` are dropped rather than summed as `$other`
    /// (Mixpanel's segmentation API does this).
    pub drop_other: bool,
}

impl InsightsRequest {
    fn resolved(&self, id: u64) -> Result<&(String, PersonSet)> {
        self.cohorts
            .get(&id)
            .ok_or_else(|| AnalyticsError::Invalid(format!("unknown cohort {id}")))
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Series {
    pub event: String,
    /// Index into the request's `measures`, when it has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measure: Option<usize>,
    /// The breakdown value; `null` when the property is not set (or there is no breakdown).
    pub segment: Option<String>,
    /// One value per bucket: counts are 0 where nothing happened, statistics `null`.
    pub values: Vec<Value>,
    /// Over the whole range (uniques and statistics are not sums of the buckets).
    pub total: Value,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Period {
    pub from_ms: i64,
    pub to_ms: i64,
    pub buckets: Vec<String>,
    pub series: Vec<Series>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InsightsReport {
    pub unit: String,
    pub timezone: String,
    pub buckets: Vec<String>,
    pub series: Vec<Series>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Period>,
}

/// Runs the report.
pub async fn insights(engine: &QueryEngine, req: &InsightsRequest) -> Result<InsightsReport> {
    req.query.check()?;
    if req.query.measures.is_empty() {
        return insights_one(engine, req, &req.query.measure).await;
    }
    let mut report: Option<InsightsReport> = None;
    for (i, m) in req.query.measures.iter().enumerate() {
        let mut one = insights_one(engine, req, m).await?;
        let tag = |series: &mut Vec<Series>| series.iter_mut().for_each(|s| s.measure = Some(i));
        tag(&mut one.series);
        if let Some(p) = one.previous.as_mut() {
            tag(&mut p.series);
        }
        match report.as_mut() {
            None => report = Some(one),
            Some(r) => {
                r.series.extend(one.series);
                if let (Some(p), Some(q)) = (r.previous.as_mut(), one.previous) {
                    p.series.extend(q.series);
                }
            }
        }
    }
    report.ok_or_else(|| AnalyticsError::Invalid("no measures".into()))
}

/// The report for one measure.
async fn insights_one(
    engine: &QueryEngine,
    req: &InsightsRequest,
    measure: &MeasureDef,
) -> Result<InsightsReport> {
    let q = &req.query;
    let measure = measure.measure()?;
    let tz = parse_tz(&req.timezone)?;
    let (unit_name, unit) = q.unit()?;
    let limit = q.breakdown_limit()?;
    let counting = matches!(measure, Measure::Total | Measure::Unique);
    let base = AggregateRequest {
        project: req.project,
        from_ms: q.from_ms,
        to_ms: q.to_ms,
        events: Vec::new(),
        where_expr: q.where_expr.clone(),
        filters: q.filters.clone(),
        buckets: None,
        persons: match &q.cohort {
            Some(c) => Some((req.resolved(c.id)?.1.clone(), c.negate)),
            None => None,
        },
        breakdown: match &q.breakdown {
            None => None,
            Some(b) => Some(Breakdown {
                by: match b.split()? {
                    Split::Property(p) => BreakdownBy::Property {
                        property: p.to_string(),
                        source: b.source,
                    },
                    Split::Cohort(id) => {
                        let (label, members) = req.resolved(id)?.clone();
                        BreakdownBy::Cohort { label, members }
                    }
                },
                keep: None,
            }),
        },
        measure,
    };
    // The same event may appear twice with different filters; one event counts in both, so
    // such selectors go to separate scans.
    let mut passes: Vec<Vec<usize>> = Vec::new();
    for (i, e) in q.events.iter().enumerate() {
        match passes
            .iter_mut()
            .find(|p| p.iter().all(|j| q.events[*j].event != e.event))
        {
            Some(p) => p.push(i),
            None => passes.push(vec![i]),
        }
    }
    let run = |from_ms: i64, to_ms: i64, keep: Option<Vec<Option<String>>>| {
        let mut template = base.clone();
        template.from_ms = from_ms;
        template.to_ms = to_ms;
        if let (Some(b), Some(keep)) = (template.breakdown.as_mut(), keep) {
            b.keep = Some(keep);
        }
        let passes = &passes;
        async move {
            let (starts, labels) = match unit {
                Some(u) => buckets(&tz, u, from_ms, to_ms)?,
                None => (Vec::new(), Vec::new()),
            };
            if unit.is_some() {
                template.buckets = Some(Arc::from(starts));
            }
            let mut out: Vec<(usize, AggregateRow)> = Vec::new();
            for pass in passes {
                let mut r = template.clone();
                r.events = pass
                    .iter()
                    .map(|i| EventSelector {
                        event: q.events[*i].event.clone(),
                        where_expr: q.events[*i].where_expr.clone(),
                    })
                    .collect();
                for row in engine.aggregate(&r).await? {
                    if let Some(i) = pass.iter().find(|i| q.events[**i].event == row.event) {
                        out.push((*i, row));
                    }
                }
            }
            Ok::<_, AnalyticsError>((labels, out))
        }
    };
    let (labels, mut rows) = run(q.from_ms, q.to_ms, None).await?;
    // Top N per event by the whole-range value; the rest become "$other" (a second pass,
    // since uniques and statistics of the rest cannot be added up from the segments).
    let mut keep = None;
    if q.breakdown.is_some() {
        let top = top_segments(&rows, limit);
        let distinct: usize = segments_per_event(&rows)
            .values()
            .copied()
            .max()
            .unwrap_or(0);
        if distinct > limit {
            if req.drop_other {
                rows.retain(|(_, r)| top.contains(&r.segment));
            } else if additive(&base.measure) {
                rows = fold_other(rows, &top);
            } else {
                rows = run(q.from_ms, q.to_ms, Some(top.clone())).await?.1;
            }
            keep = Some(top);
        }
    }
    let series = shape(&q.events, rows, labels.len(), counting);
    let previous = if q.compare_previous {
        let span = q.to_ms - q.from_ms;
        let (from, to) = (q.from_ms - span, q.from_ms);
        let (plabels, mut prows) = run(from, to, keep.clone().filter(|_| !req.drop_other)).await?;
        if let (Some(k), true) = (&keep, req.drop_other) {
            prows.retain(|(_, r)| k.contains(&r.segment));
        }
        Some(Period {
            from_ms: from,
            to_ms: to,
            buckets: plabels.clone(),
            series: shape(&q.events, prows, plabels.len(), counting),
        })
    } else {
        None
    };
    Ok(InsightsReport {
        unit: unit_name,
        timezone: req.timezone.clone(),
        buckets: labels,
        series,
        previous,
    })
}
