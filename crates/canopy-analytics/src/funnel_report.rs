//! The funnel report (issue #5): the scan (`canopy_query::QueryEngine::sequences`) gives each
//! person's matching events in order; each event is turned into the steps and exclusions it
//! matches (event name and `where` filter); `funnel.rs` evaluates each person; this module
//! counts people per step and the times between steps.

use crate::funnel::{FunnelSpec, Order, StepEvent};
use crate::step::{Step, StepDef};
use crate::{AnalyticsError, Result};
use canopy_query::{QueryEngine, SequenceRequest, SequenceRow};
use canopy_types::ProjectId;
use serde::{Deserialize, Serialize};

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
}

/// Mixpanel's longest conversion window.
const MAX_WINDOW_MS: i64 = 366 * 86_400_000;
const MAX_ROWS: usize = 200_000_000;

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
    let with_properties = steps.iter().any(Step::has_filter) || req.hold_constant.is_some();
    let rows = engine
        .sequences(&SequenceRequest {
            project: req.project,
            from_ms: req.from_ms,
            to_ms: req.to_ms.saturating_add(req.window_ms),
            events: names.clone(),
            with_properties,
            max_rows: MAX_ROWS,
        })
        .await?;
    let spec = FunnelSpec {
        steps: n,
        window_ms: req.window_ms,
        order,
        hold_constant: req.hold_constant.is_some(),
    };
    let step_event = |r: &SequenceRow| -> StepEvent {
        let name = names[usize::from(r.event)].as_str();
        let props = r.properties.as_ref();
        let mut matched = 0u32;
        for (i, s) in steps.iter().enumerate() {
            // People enter only inside the range; later steps may follow until the window ends.
            let enters_late = i == 0 && r.time_ms >= req.to_ms;
            if !enters_late && s.matches(name, props) {
                matched |= 1 << i;
            }
        }
        let mut excludes = 0u32;
        for x in &req.exclusions {
            if x.event == name {
                excludes |= 1 << (x.after_step - 1);
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
    let mut counts = vec![0u64; n];
    let mut from_prev = vec![0f64; n];
    let mut from_start = vec![0f64; n];
    let mut person_events: Vec<StepEvent> = Vec::new();
    for person in rows.chunk_by(|a, b| a.person == b.person) {
        person_events.clear();
        person_events.extend(person.iter().map(step_event));
        let c = spec.evaluate(&person_events);
        for s in 0..c.level {
            counts[s] += 1;
            if s > 0 && order == Order::Specific {
                from_prev[s] += (c.times[s] - c.times[s - 1]) as f64;
                from_start[s] += (c.times[s] - c.times[0]) as f64;
            }
        }
    }
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
    Ok(FunnelReport { steps })
}
