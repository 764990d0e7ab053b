//! `POST /api/v1/query/insights` (segmentation): how many events, people, events per person
//! or how much of a numeric property, per time bucket, per event and per breakdown segment.
//! Run by `canopy-analytics/src/insights_report.rs` over `canopy_query::aggregate`.

use crate::cohort::CohortFilter;
use crate::filters::{PropertyFilter, Source, check_filters};
use crate::step::{StepDef, compile_all};
use crate::unit::Unit;
use crate::{Definition, Result, Split, WireError, check_range, invalid, split};
use serde::Deserialize;

pub const MAX_EVENTS: usize = 20;
pub const MAX_MEASURES: usize = 10;
pub const MAX_LIMIT: usize = 10_000;

/// A statistic over numbers (per-person event counts, or a numeric property).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    Sum,
    Avg,
    Min,
    Max,
    Median,
    /// Continuous percentile (linear interpolation), `0.0..=1.0`.
    Percentile(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// Events.
    Total,
    /// Distinct persons (after identity merges).
    Unique,
    /// A statistic of each person's event count.
    PerPerson(Stat),
    /// A statistic of a numeric property over the events that have it.
    Property {
        property: String,
        source: Source,
        stat: Stat,
    },
}

impl Measure {
    /// Whose property the measure reads, if any.
    pub fn source(&self) -> Option<Source> {
        match self {
            Measure::Property { source, .. } => Some(*source),
            _ => None,
        }
    }
}

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
                .map_err(|_| WireError::Invalid("stat: pNN needs a number NN".into()))?;
            if !(0.0..=100.0).contains(&n) {
                return invalid("stat: a percentile is between p0 and p100");
            }
            Stat::Percentile(n / 100.0)
        }
        _ => return invalid("stat must be sum, avg, min, max, median or pNN"),
    })
}

impl MeasureDef {
    pub fn measure(&self) -> Result<Measure> {
        Ok(match self.kind.as_str() {
            "total" => Measure::Total,
            "unique" => Measure::Unique,
            "per_person" => Measure::PerPerson(stat(self.stat.as_deref())?),
            "property" => Measure::Property {
                property: self.property.clone().ok_or_else(|| {
                    WireError::Invalid("a property measure needs \"property\"".into())
                })?,
                source: self.source,
                stat: stat(self.stat.as_deref().or(Some("sum")))?,
            },
            _ => {
                return invalid("measure type must be total, unique, per_person or property");
            }
        })
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

impl BreakdownDef {
    pub fn split(&self) -> Result<Split<'_>> {
        split(self.property.as_deref(), self.cohort)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct InsightsQuery {
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
    /// Also compute the same length of time just before `from_ms`.
    #[serde(default)]
    pub compare_previous: bool,
}

impl InsightsQuery {
    /// The measures, in series order: `measures` when given, else `measure`.
    pub fn measure_defs(&self) -> &[MeasureDef] {
        if self.measures.is_empty() {
            std::slice::from_ref(&self.measure)
        } else {
            &self.measures
        }
    }

    /// The unit's name and the unit (`None` for `all`: the whole range only).
    pub fn unit(&self) -> Result<(String, Option<Unit>)> {
        let name = self.unit.clone().unwrap_or_else(|| "day".into());
        let unit = match name.as_str() {
            "all" => None,
            u => Some(Unit::parse(u)?),
        };
        Ok((name, unit))
    }

    /// Segments shown before the rest become `$other` (0 without a breakdown).
    pub fn breakdown_limit(&self) -> Result<usize> {
        let Some(b) = &self.breakdown else {
            return Ok(0);
        };
        let l = b.limit.unwrap_or(10);
        if !(1..=MAX_LIMIT).contains(&l) {
            return invalid(format!("breakdown limit must be between 1 and {MAX_LIMIT}"));
        }
        b.split()?;
        Ok(l)
    }

    /// The saved cohorts the request refers to (for the caller to resolve).
    pub fn cohort_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.cohort.iter().map(|c| c.id).collect();
        ids.extend(self.breakdown.as_ref().and_then(|b| b.cohort));
        ids.dedup();
        ids
    }
}

impl Definition for InsightsQuery {
    const REPORT: &'static str = "insights";

    fn check(&self) -> Result<()> {
        if self.measures.len() > MAX_MEASURES {
            return invalid(format!("at most {MAX_MEASURES} measures"));
        }
        if self.events.is_empty() || self.events.len() > MAX_EVENTS {
            return invalid(format!("between 1 and {MAX_EVENTS} events"));
        }
        check_range(self.from_ms, self.to_ms)?;
        compile_all("events", &self.events)?;
        for m in self.measure_defs() {
            m.measure()?;
        }
        self.unit()?;
        self.breakdown_limit()?;
        check_filters(&self.filters)?;
        if let Some(w) = self.where_expr.as_deref().filter(|w| !w.trim().is_empty()) {
            canopy_expr::parse(w).map_err(|e| WireError::Invalid(format!("where: {e}")))?;
        }
        Ok(())
    }
}
