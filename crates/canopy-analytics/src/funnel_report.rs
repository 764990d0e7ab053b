//! The funnel report (issue #5): the scan (`canopy_query::QueryEngine::sequences`) gives each
//! person's matching events in order; each event is turned into the steps and exclusions it
//! matches (event name and `where` filter); `funnel.rs` evaluates each person; this module
//! counts people per step and the times between steps.

use crate::funnel::{FunnelSpec, Order, StepEvent};
use crate::funnel_tally::{Tally, TimeToConvert};
use crate::time_buckets::{buckets, parse_tz};
use crate::{AnalyticsError, Result};
use canopy_query::{QueryEngine, SequenceRequest, SequenceRow};
use canopy_report_wire::{Definition, FunnelQuery, Split, Step};
use canopy_types::ProjectId;
use serde::Serialize;
use std::collections::HashMap;

/// A funnel to run: the client's definition and what the server resolved for it.
#[derive(Debug, Clone)]
pub struct FunnelRequest {
    pub project: ProjectId,
    pub query: FunnelQuery,
    /// IANA zone of the entry buckets (the project's setting).
    pub timezone: String,
    /// The members of the query's `cohort`.
    pub cohort_members: Option<canopy_query::PersonSet>,
    /// The breakdown's cohort (name, members).
    pub breakdown_cohort: Option<(String, canopy_query::PersonSet)>,
}

/// How people are split into breakdown segments.
enum SplitBy<'a> {
    Property(&'a str),
    Cohort(&'a str, &'a canopy_query::PersonSet),
}

fn split_by(req: &FunnelRequest) -> Result<Option<SplitBy<'_>>> {
    Ok(match (req.query.split()?, &req.breakdown_cohort) {
        (None, _) => None,
        (Some(Split::Property(p)), _) => Some(SplitBy::Property(p)),
        (Some(Split::Cohort(_)), Some((label, members))) => Some(SplitBy::Cohort(label, members)),
        (Some(Split::Cohort(id)), None) => {
            return Err(AnalyticsError::Invalid(format!("unknown cohort {id}")));
        }
    })
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

/// Runs the funnel.
pub async fn funnel(engine: &QueryEngine, req: &FunnelRequest) -> Result<FunnelReport> {
    let q = &req.query;
    q.check()?;
    let n = q.steps.len();
    let order = q.order()?;
    let steps: Vec<Step> = q.compiled_steps()?;
    let mut names: Vec<String> = q.steps.iter().map(|s| s.event.clone()).collect();
    names.extend(q.exclusions.iter().map(|x| x.event.clone()));
    names.sort();
    names.dedup();
    let split = split_by(req)?;
    // A cohort breakdown needs only the person, not the event's properties.
    let with_properties = steps.iter().any(Step::has_filter)
        || q.hold_constant.is_some()
        || matches!(split, Some(SplitBy::Property(_)));
    let over_time = match (q.over_time_unit()?, &q.unit) {
        (Some(unit), Some(name)) => Some((
            name.clone(),
            buckets(&parse_tz(&req.timezone)?, unit, q.from_ms, q.to_ms)?,
        )),
        _ => None,
    };
    let rows = engine
        .sequences(&SequenceRequest {
            project: req.project,
            from_ms: q.from_ms,
            to_ms: q.to_ms.saturating_add(q.window_ms),
            events: names.clone(),
            with_properties,
            persons: crate::cohorts::person_filter(q.cohort.as_ref(), req.cohort_members.as_ref())?,
        })
        .await?;
    let spec = FunnelSpec {
        steps: n,
        window_ms: q.window_ms,
        order,
        hold_constant: q.hold_constant.is_some(),
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
            for x in &q.exclusions {
                if x.event == *name {
                    excludes |= 1 << (x.after_step - 1);
                }
            }
            (steps_of, excludes)
        })
        .collect();
    let filtered = steps.iter().any(Step::has_filter);
    let step_event = |r: &SequenceRow| -> StepEvent {
        let (candidates, excludes) = by_name[usize::from(r.event)];
        // People enter only inside the range; later steps may follow until the window ends.
        let entry = if r.time_ms >= q.to_ms { !1u32 } else { !0u32 };
        let props = r.properties.as_deref();
        let mut matched = candidates & entry;
        if filtered {
            // Without filters the name decides; with them, each candidate step's filter.
            let name = names[usize::from(r.event)].as_str();
            for (i, s) in steps.iter().enumerate() {
                if matched & (1 << i) != 0 && s.has_filter() && !s.matches(name, props) {
                    matched &= !(1 << i);
                }
            }
        }
        let constant = q.hold_constant.as_ref().and_then(|k| {
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
                event: q.steps[s].event.clone(),
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
    let breakdown = q
        .breakdown
        .as_ref()
        .map(|_| top_segments(segments, q.breakdown_limit()));
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
