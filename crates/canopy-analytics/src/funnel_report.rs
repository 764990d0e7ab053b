//! The funnel report (issue #5): the scan (`canopy_query::QueryEngine::sequences`) gives each
//! person's matching events in order; each event is turned into the steps and exclusions it
//! matches (event name and `where` filter); `funnel.rs` evaluates each person; this module
//! counts people per step and the times between steps.

use crate::funnel::{FunnelSpec, Order, StepEvent};
use crate::funnel_tally::{Tally, TimeToConvert};
use crate::step::{Step, StepDef};
use crate::time_buckets::{Unit, buckets, parse_tz};
use crate::{AnalyticsError, Result};
use canopy_query::{QueryEngine, SequenceRequest, SequenceRow};
use canopy_types::ProjectId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// An event that ends an attempt between step `after_step` and the next (1-based).
#[derive(Debug, Clone, Deserialize)]
pub struct ExclusionDef {
    pub event: String,
    pub after_step: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FunnelRequest {
    #[serde(skip)]
    pub project: ProjectId,
    /// Inclusive start of the range in which people enter (step 1), ms since the epoch.
    pub from_ms: i64,
    /// Exclusive end of that range; later steps may follow until the window closes.
    pub to_ms: i64,
    pub steps: Vec<StepDef>,
    pub window_ms: i64,
    #[serde(default = "specific")]
    pub order: String,
    #[serde(default)]
    pub exclusions: Vec<ExclusionDef>,
    /// A property every step of an attempt must share (Mixpanel's "hold property constant").
    #[serde(default)]
    pub hold_constant: Option<String>,
    /// Split people by a property of the event they entered with.
    #[serde(default)]
    pub breakdown: Option<FunnelBreakdown>,
    /// Conversion per `day` / `week` / `month` of entry, in the project's time zone.
    #[serde(default)]
    pub unit: Option<String>,
    /// IANA zone of the entry buckets (the project's setting, filled by the server).
    #[serde(skip)]
    pub timezone: String,
    /// Only a saved cohort's members (or everyone else).
    #[serde(default)]
    pub cohort: Option<crate::cohorts::CohortFilter>,
    /// The members of `cohort`, resolved by the caller.
    #[serde(skip)]
    pub cohort_members: Option<canopy_query::PersonSet>,
    /// The breakdown's cohort (name, members), resolved by the caller.
    #[serde(skip)]
    pub breakdown_cohort: Option<(String, canopy_query::PersonSet)>,
}

/// How people are split into breakdown segments.
enum SplitBy<'a> {
    Property(&'a str),
    Cohort(&'a str, &'a canopy_query::PersonSet),
}

fn split_by(req: &FunnelRequest) -> Result<Option<SplitBy<'_>>> {
    let Some(b) = &req.breakdown else {
        return Ok(None);
    };
    match (&b.property, b.cohort, &req.breakdown_cohort) {
        (Some(p), None, _) => Ok(Some(SplitBy::Property(p))),
        (None, Some(_), Some((label, members))) => Ok(Some(SplitBy::Cohort(label, members))),
        (None, Some(id), None) => Err(AnalyticsError::Invalid(format!("unknown cohort {id}"))),
        _ => Err(AnalyticsError::Invalid(
            "a breakdown names either a property or a cohort".into(),
        )),
    }
}

/// A breakdown by a property of the entering event, or by membership of a saved cohort.
#[derive(Debug, Clone, Deserialize)]
pub struct FunnelBreakdown {
    #[serde(default)]
    pub property: Option<String>,
    #[serde(default)]
    pub cohort: Option<u64>,
    /// Segments shown (largest first by people entering); the rest are `$other`.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// People per step in one breakdown segment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SegmentSteps {
    pub segment: Option<String>,
    pub counts: Vec<u64>,
}

/// Entered and completed per entry bucket.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OverTime {
    pub unit: String,
    pub buckets: Vec<String>,
    pub entered: Vec<u64>,
    pub completed: Vec<u64>,
}

fn specific() -> String {
    "specific".into()
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepReport {
    pub event: String,
    /// People who reached this step.
    pub count: u64,
    /// Of those who reached the previous step (1.0 for step 1).
    pub step_conv_ratio: f64,
    /// Of those who entered.
    pub overall_conv_ratio: f64,
    /// Mean time from the previous step, among those who reached this one (ms).
    pub avg_time_ms: Option<f64>,
    /// Mean time from step 1 (ms).
    pub avg_time_from_start_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FunnelReport {
    pub steps: Vec<StepReport>,
    pub time_to_convert: TimeToConvert,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub over_time: Option<OverTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Vec<SegmentSteps>>,
}

/// Mixpanel's longest conversion window.
const MAX_WINDOW_MS: i64 = 366 * 86_400_000;

/// Runs the funnel.
pub async fn funnel(engine: &QueryEngine, req: &FunnelRequest) -> Result<FunnelReport> {
    let n = req.steps.len();
    if !(2..=FunnelSpec::MAX_STEPS).contains(&n) {
        return Err(AnalyticsError::Invalid(format!(
            "a funnel has 2 to {} steps (got {n})",
            FunnelSpec::MAX_STEPS
        )));
    }
    if !(1..=MAX_WINDOW_MS).contains(&req.window_ms) {
        return Err(AnalyticsError::Invalid(
            "window_ms must be between 1 and 366 days".into(),
        ));
    }
    if req.to_ms <= req.from_ms {
        return Err(AnalyticsError::Invalid(
            "to_ms must be after from_ms".into(),
        ));
    }
    let order = match req.order.as_str() {
        "specific" => Order::Specific,
        "any" => Order::Any,
        o => {
            return Err(AnalyticsError::Invalid(format!(
                "order must be \"specific\" or \"any\" (got {o:?})"
            )));
        }
    };
    for x in &req.exclusions {
        if x.after_step == 0 || x.after_step >= n {
            return Err(AnalyticsError::Invalid(format!(
                "exclusion {:?}: after_step must be between 1 and {}",
                x.event,
                n - 1
            )));
        }
    }
    let steps: Vec<Step> = req
        .steps
        .iter()
        .map(StepDef::compile)
        .collect::<Result<_>>()?;
    let mut names: Vec<String> = req.steps.iter().map(|s| s.event.clone()).collect();
    names.extend(req.exclusions.iter().map(|x| x.event.clone()));
    names.sort();
    names.dedup();
    let split = split_by(req)?;
    // A cohort breakdown needs only the person, not the event's properties.
    let with_properties = steps.iter().any(Step::has_filter)
        || req.hold_constant.is_some()
        || matches!(split, Some(SplitBy::Property(_)));
    let over_time = match req.unit.as_deref() {
        None => None,
        Some(u) => {
            let unit = Unit::parse(u)?;
            if unit == Unit::Hour {
                return Err(AnalyticsError::Invalid(
                    "conversion over time is by day, week or month".into(),
                ));
            }
            Some((
                u.to_string(),
                buckets(&parse_tz(&req.timezone)?, unit, req.from_ms, req.to_ms)?,
            ))
        }
    };
    let rows = engine
        .sequences(&SequenceRequest {
            project: req.project,
            from_ms: req.from_ms,
            to_ms: req.to_ms.saturating_add(req.window_ms),
            events: names.clone(),
            with_properties,
            persons: crate::cohorts::person_filter(
                req.cohort.as_ref(),
                req.cohort_members.as_ref(),
            )?,
        })
        .await?;
    let spec = FunnelSpec {
        steps: n,
        window_ms: req.window_ms,
        order,
        hold_constant: req.hold_constant.is_some(),
    };
    // Per scanned name, once per query: the steps it may match and the exclusions it is.
    let by_name: Vec<(u32, u32)> = names
        .iter()
        .map(|name| {
            let mut steps_of = 0u32;
            for (i, s) in steps.iter().enumerate() {
                if s.event == *name {
                    steps_of |= 1 << i;
                }
            }
            let mut excludes = 0u32;
            for x in &req.exclusions {
                if x.event == *name {
                    excludes |= 1 << (x.after_step - 1);
                }
            }
            (steps_of, excludes)
        })
        .collect();
    let step_event = |r: &SequenceRow| -> StepEvent {
        let name = names[usize::from(r.event)].as_str();
        let props = r.properties.as_deref();
        let (candidates, excludes) = by_name[usize::from(r.event)];
        let mut matched = 0u32;
        for (i, s) in steps.iter().enumerate() {
            // People enter only inside the range; later steps may follow until the window ends.
            let enters_late = i == 0 && r.time_ms >= req.to_ms;
            if candidates & (1 << i) != 0
                && !enters_late
                && (!s.has_filter() || s.matches(name, props))
            {
                matched |= 1 << i;
            }
        }
        let constant = req.hold_constant.as_ref().and_then(|k| {
            props?.get(k).map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        });
        StepEvent {
            time_ms: r.time_ms,
            steps: matched,
            excludes,
            constant,
        }
    };
    let starts: &[i64] = over_time.as_ref().map_or(&[], |(_, (s, _))| s.as_slice());
    let ordered = order == Order::Specific;
    let tallies = rows.fold_persons(
        || (Tally::new(n, starts.len()), Vec::<StepEvent>::new()),
        |(tally, person_events), person| {
            person_events.clear();
            person_events.extend(person.iter().map(step_event));
            let c = spec.evaluate(person_events);
            if c.level == 0 {
                return;
            }
            let entry = c.times.first().copied().unwrap_or_default();
            let bucket = (!starts.is_empty())
                .then(|| starts.partition_point(|s| *s <= entry).checked_sub(1))
                .flatten();
            let segment = split.as_ref().map(|by| match by {
                SplitBy::Property(property) => person
                    .get(c.start)
                    .and_then(|r| r.properties.as_deref()?.get(*property))
                    .and_then(canopy_query::value_text),
                SplitBy::Cohort(label, members) => Some(
                    if person.first().is_some_and(|r| members.contains(&r.person)) {
                        label.to_string()
                    } else {
                        format!("not in {label}")
                    },
                ),
            });
            tally.add(&c, ordered, bucket, segment);
        },
    )?;
    let tally = tallies
        .into_iter()
        .map(|(t, _)| t)
        .reduce(Tally::merge)
        .unwrap_or_else(|| Tally::new(n, starts.len()));
    let Tally {
        counts,
        from_prev,
        from_start,
        durations,
        over_time: per_bucket,
        segments,
    } = tally;
    let entered = counts[0];
    let steps = (0..n)
        .map(|s| {
            let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
            let mean = |sum: f64| {
                (s > 0 && counts[s] > 0 && order == Order::Specific).then(|| sum / counts[s] as f64)
            };
            StepReport {
                event: req.steps[s].event.clone(),
                count: counts[s],
                step_conv_ratio: if s == 0 {
                    1.0
                } else {
                    ratio(counts[s], counts[s - 1])
                },
                overall_conv_ratio: ratio(counts[s], entered),
                avg_time_ms: mean(from_prev[s]),
                avg_time_from_start_ms: mean(from_start[s]),
            }
        })
        .collect();
    let breakdown = req
        .breakdown
        .as_ref()
        .map(|b| top_segments(segments, b.limit.unwrap_or(10).clamp(1, 10_000)));
    Ok(FunnelReport {
        steps,
        time_to_convert: TimeToConvert::from_durations(durations),
        over_time: over_time.map(|(unit, (_, labels))| OverTime {
            unit,
            buckets: labels,
            entered: per_bucket.iter().map(|b| b.0).collect(),
            completed: per_bucket.iter().map(|b| b.1).collect(),
        }),
        breakdown,
    })
}

/// The `limit` segments with the most people entering (ties by label), the rest summed as
/// `$other` (each person is in one segment, so people add up).
fn top_segments(segments: HashMap<Option<String>, Vec<u64>>, limit: usize) -> Vec<SegmentSteps> {
    let mut all: Vec<SegmentSteps> = segments
        .into_iter()
        .map(|(segment, counts)| SegmentSteps { segment, counts })
        .collect();
    all.sort_by(|a, b| {
        b.counts
            .first()
            .cmp(&a.counts.first())
            .then_with(|| a.segment.cmp(&b.segment))
    });
    if all.len() > limit {
        let rest = all.split_off(limit);
        let mut other = vec![0u64; rest.first().map_or(0, |r| r.counts.len())];
        for r in rest {
            other.iter_mut().zip(&r.counts).for_each(|(o, c)| *o += c);
        }
        all.push(SegmentSteps {
            segment: Some(canopy_query::OTHER_SEGMENT.to_string()),
            counts: other,
        });
    }
    all
}
