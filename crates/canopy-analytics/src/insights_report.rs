//! The insights report (segmentation, issue #5): how many events, people, events per person
//! or how much of a numeric property, per time bucket in the project's time zone, per event
//! and per segment of a breakdown (top N plus "$other"), optionally with the previous period
//! alongside. Validation and shaping here; the aggregation is `canopy_query::aggregate`.

pub use crate::cohorts::CohortFilter;
use crate::insights_shape::{additive, fold_other, segments_per_event, shape, top_segments};
use crate::step::StepDef;
use crate::time_buckets::{Unit, buckets, parse_tz};
use crate::{AnalyticsError, Result};
use canopy_query::{
    AggregateRequest, AggregateRow, Breakdown, BreakdownBy, EventSelector, Measure, PersonSet,
    PropertyFilter, QueryEngine, Source, Stat,
};
use canopy_types::ProjectId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// What to measure: `{"type": "total" | "unique" | "per_person" | "property", "stat"?,
/// "property"?, "source"?}`; `stat` is `sum`, `avg`, `min`, `max`, `median` or `pNN`.
#[derive(Debug, Clone, Deserialize)]
pub struct MeasureDef {
    #[serde(rename = "type", default = "total")]
    pub kind: String,
    #[serde(default)]
    pub stat: Option<String>,
    #[serde(default)]
    pub property: Option<String>,
    #[serde(default)]
    pub source: Source,
}

fn total() -> String {
    "total".into()
}

impl Default for MeasureDef {
    fn default() -> Self {
        Self {
            kind: total(),
            stat: None,
            property: None,
            source: Source::Event,
        }
    }
}

/// A breakdown by one property, or by membership of a saved cohort.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct BreakdownDef {
    #[serde(default)]
    pub property: Option<String>,
    #[serde(default)]
    pub source: Source,
    #[serde(default)]
    pub cohort: Option<u64>,
    /// Segments shown; the rest are summed up as `$other` (default 10, at most 10,000).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InsightsRequest {
    #[serde(skip)]
    pub project: ProjectId,
    /// IANA zone of the buckets (the project's setting, filled by the server).
    #[serde(skip)]
    pub timezone: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub events: Vec<StepDef>,
    #[serde(default)]
    pub measure: MeasureDef,
    /// Several metrics in one report (instead of `measure`); each series names its index.
    #[serde(default)]
    pub measures: Vec<MeasureDef>,
    /// `hour`, `day` (default), `week`, `month`, or `all` for the whole range only.
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub filters: Vec<PropertyFilter>,
    /// Mixpanel segmentation expression applied to every event.
    #[serde(default, rename = "where")]
    pub where_expr: Option<String>,
    #[serde(default)]
    pub breakdown: Option<BreakdownDef>,
    /// Only members of a saved cohort (or, with `negate`, everyone else).
    #[serde(default)]
    pub cohort: Option<CohortFilter>,
    /// The cohorts the request names, resolved by the caller: id → (name, members).
    #[serde(skip)]
    pub cohorts: HashMap<u64, (String, PersonSet)>,
    /// Also compute the same length of time just before `from_ms`.
    #[serde(default)]
    pub compare_previous: bool,
    /// When set, segments beyond the top `limit` are dropped rather than summed as `$other`
    /// (Mixpanel's segmentation API does this).
    #[serde(skip)]
    pub drop_other: bool,
}

impl InsightsRequest {
    /// The saved cohorts the request refers to (for the caller to resolve).
    pub fn cohort_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.cohort.iter().map(|c| c.id).collect();
        ids.extend(self.breakdown.as_ref().and_then(|b| b.cohort));
        ids.dedup();
        ids
    }

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

const MAX_EVENTS: usize = 20;
const MAX_MEASURES: usize = 10;
const MAX_LIMIT: usize = 10_000;

fn stat(s: Option<&str>) -> Result<Stat> {
    let s = s.unwrap_or("avg");
    Ok(match s {
        "sum" => Stat::Sum,
        "avg" | "average" => Stat::Avg,
        "min" => Stat::Min,
        "max" => Stat::Max,
        "median" => Stat::Median,
        p if p.starts_with('p') && p.len() > 1 => {
            let n: f64 = p[1..]
                .parse()
                .map_err(|_| AnalyticsError::Invalid(format!("unknown statistic {s:?}")))?;
            if !(0.0..=100.0).contains(&n) {
                return Err(AnalyticsError::Invalid(format!(
                    "percentile {s:?} out of 0..100"
                )));
            }
            Stat::Percentile(n / 100.0)
        }
        _ => {
            return Err(AnalyticsError::Invalid(format!(
                "stat must be sum, avg, min, max, median or pNN (got {s:?})"
            )));
        }
    })
}

impl MeasureDef {
    fn measure(&self) -> Result<Measure> {
        Ok(match self.kind.as_str() {
            "total" => Measure::Total,
            "unique" => Measure::Unique,
            "per_person" => Measure::PerPerson(stat(self.stat.as_deref())?),
            "property" => Measure::Property {
                property: self.property.clone().ok_or_else(|| {
                    AnalyticsError::Invalid("a property measure needs \"property\"".into())
                })?,
                source: self.source,
                stat: stat(self.stat.as_deref().or(Some("sum")))?,
            },
            k => {
                return Err(AnalyticsError::Invalid(format!(
                    "measure type must be total, unique, per_person or property (got {k:?})"
                )));
            }
        })
    }
}

/// Runs the report.
pub async fn insights(engine: &QueryEngine, req: &InsightsRequest) -> Result<InsightsReport> {
    if req.measures.is_empty() {
        return insights_one(engine, req, &req.measure).await;
    }
    if req.measures.len() > MAX_MEASURES {
        return Err(AnalyticsError::Invalid(format!(
            "at most {MAX_MEASURES} measures"
        )));
    }
    let mut report: Option<InsightsReport> = None;
    for (i, m) in req.measures.iter().enumerate() {
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
    if req.events.is_empty() || req.events.len() > MAX_EVENTS {
        return Err(AnalyticsError::Invalid(format!(
            "between 1 and {MAX_EVENTS} events"
        )));
    }
    if req.to_ms <= req.from_ms {
        return Err(AnalyticsError::Invalid(
            "to_ms must be after from_ms".into(),
        ));
    }
    for e in &req.events {
        e.compile()?;
    }
    let measure = measure.measure()?;
    let tz = parse_tz(&req.timezone)?;
    let unit_name = req.unit.clone().unwrap_or_else(|| "day".into());
    let unit = match unit_name.as_str() {
        "all" => None,
        u => Some(Unit::parse(u)?),
    };
    let limit = match &req.breakdown {
        Some(b) => {
            let l = b.limit.unwrap_or(10);
            if !(1..=MAX_LIMIT).contains(&l) {
                return Err(AnalyticsError::Invalid(format!(
                    "breakdown limit must be between 1 and {MAX_LIMIT}"
                )));
            }
            l
        }
        None => 0,
    };
    let counting = matches!(measure, Measure::Total | Measure::Unique);
    let base = AggregateRequest {
        project: req.project,
        from_ms: req.from_ms,
        to_ms: req.to_ms,
        events: Vec::new(),
        where_expr: req.where_expr.clone(),
        filters: req.filters.clone(),
        buckets: None,
        persons: match &req.cohort {
            Some(c) => Some((req.resolved(c.id)?.1.clone(), c.negate)),
            None => None,
        },
        breakdown: match &req.breakdown {
            None => None,
            Some(b) => Some(Breakdown {
                by: match (&b.property, b.cohort) {
                    (Some(p), None) => BreakdownBy::Property {
                        property: p.clone(),
                        source: b.source,
                    },
                    (None, Some(id)) => {
                        let (label, members) = req.resolved(id)?.clone();
                        BreakdownBy::Cohort { label, members }
                    }
                    _ => {
                        return Err(AnalyticsError::Invalid(
                            "a breakdown names either a property or a cohort".into(),
                        ));
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
    for (i, e) in req.events.iter().enumerate() {
        match passes
            .iter_mut()
            .find(|p| p.iter().all(|j| req.events[*j].event != e.event))
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
                        event: req.events[*i].event.clone(),
                        where_expr: req.events[*i].where_expr.clone(),
                    })
                    .collect();
                for row in engine.aggregate(&r).await? {
                    if let Some(i) = pass.iter().find(|i| req.events[**i].event == row.event) {
                        out.push((*i, row));
                    }
                }
            }
            Ok::<_, AnalyticsError>((labels, out))
        }
    };
    let (labels, mut rows) = run(req.from_ms, req.to_ms, None).await?;
    // Top N per event by the whole-range value; the rest become "$other" (a second pass,
    // since uniques and statistics of the rest cannot be added up from the segments).
    let mut keep = None;
    if req.breakdown.is_some() {
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
                rows = run(req.from_ms, req.to_ms, Some(top.clone())).await?.1;
            }
            keep = Some(top);
        }
    }
    let series = shape(&req.events, rows, labels.len(), counting);
    let previous = if req.compare_previous {
        let span = req.to_ms - req.from_ms;
        let (from, to) = (req.from_ms - span, req.from_ms);
        let (plabels, mut prows) = run(from, to, keep.clone().filter(|_| !req.drop_other)).await?;
        if let (Some(k), true) = (&keep, req.drop_other) {
            prows.retain(|(_, r)| k.contains(&r.segment));
        }
        Some(Period {
            from_ms: from,
            to_ms: to,
            buckets: plabels.clone(),
            series: shape(&req.events, prows, plabels.len(), counting),
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
