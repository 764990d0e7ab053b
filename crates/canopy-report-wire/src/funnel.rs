//! `POST /api/v1/query/funnel`: steps with their filters, a conversion window, order,
//! exclusions, a held-constant property, a breakdown and conversion over time. Semantics in
//! `docs/query-semantics.md`; run by `canopy-analytics/src/funnel_report.rs`.

use crate::cohort::CohortFilter;
use crate::step::{Step, StepDef, compile_all};
use crate::unit::Unit;
use crate::{Definition, Result, Split, check_range, invalid, split};
use serde::Deserialize;

/// At most 20 steps (each is a bit of a `u32` in the evaluator).
pub const MAX_STEPS: usize = 20;
/// Mixpanel's longest conversion window.
pub const MAX_WINDOW_MS: i64 = 366 * 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Specific,
    Any,
}

/// An event that ends an attempt between step `after_step` and the next (1-based).
#[derive(Debug, Clone, Deserialize)]
pub struct ExclusionDef {
    pub event: String,
    pub after_step: usize,
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

#[derive(Debug, Clone, Deserialize)]
pub struct FunnelQuery {
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
    /// Split people by a property of the event they entered with, or by a saved cohort.
    #[serde(default)]
    pub breakdown: Option<FunnelBreakdown>,
    /// Conversion per `day` / `week` / `month` of entry, in the project's time zone.
    #[serde(default)]
    pub unit: Option<String>,
    /// Only a saved cohort's members (or everyone else).
    #[serde(default)]
    pub cohort: Option<CohortFilter>,
}

fn specific() -> String {
    "specific".into()
}

impl FunnelQuery {
    pub fn order(&self) -> Result<Order> {
        match self.order.as_str() {
            "specific" => Ok(Order::Specific),
            "any" => Ok(Order::Any),
            _ => invalid("order must be \"specific\" or \"any\""),
        }
    }

    /// The steps with their filters parsed.
    pub fn compiled_steps(&self) -> Result<Vec<Step>> {
        compile_all("steps", &self.steps)
    }

    /// The unit of conversion over time, if asked for.
    pub fn over_time_unit(&self) -> Result<Option<Unit>> {
        match self.unit.as_deref().map(Unit::parse).transpose()? {
            Some(Unit::Hour) => invalid("conversion over time is by day, week or month"),
            unit => Ok(unit),
        }
    }

    pub fn split(&self) -> Result<Option<Split<'_>>> {
        self.breakdown
            .as_ref()
            .map(|b| split(b.property.as_deref(), b.cohort))
            .transpose()
    }

    /// Segments shown before the rest become `$other`.
    pub fn breakdown_limit(&self) -> usize {
        self.breakdown
            .as_ref()
            .and_then(|b| b.limit)
            .unwrap_or(10)
            .clamp(1, 10_000)
    }
}

impl Definition for FunnelQuery {
    const REPORT: &'static str = "funnel";

    fn check(&self) -> Result<()> {
        let n = self.steps.len();
        if !(2..=MAX_STEPS).contains(&n) {
            return invalid(format!("a funnel has 2 to {MAX_STEPS} steps (got {n})"));
        }
        if !(1..=MAX_WINDOW_MS).contains(&self.window_ms) {
            return invalid("window_ms must be between 1 and 366 days");
        }
        check_range(self.from_ms, self.to_ms)?;
        self.order()?;
        for (i, x) in self.exclusions.iter().enumerate() {
            if x.after_step == 0 || x.after_step >= n {
                return invalid(format!(
                    "exclusions[{i}]: after_step must be between 1 and {}",
                    n - 1
                ));
            }
        }
        self.compiled_steps()?;
        self.split()?;
        self.over_time_unit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{FunnelQuery, parse};

    #[test]
    fn funnels_are_refused_with_the_reason() {
        let ok = r#"{"from_ms":0,"to_ms":10,"window_ms":5,"steps":[{"event":"a"},{"event":"b"}]}"#;
        assert!(parse::<FunnelQuery>(ok.as_bytes()).is_ok());
        for (body, why) in [
            (
                r#"{"from_ms":0,"to_ms":10,"window_ms":5,"steps":[{"event":"a"}]}"#,
                "2 to 20 steps",
            ),
            (
                r#"{"from_ms":0,"to_ms":10,"window_ms":0,"steps":[{"event":"a"},{"event":"b"}]}"#,
                "window_ms",
            ),
            (
                r#"{"from_ms":10,"to_ms":10,"window_ms":5,"steps":[{"event":"a"},{"event":"b"}]}"#,
                "to_ms",
            ),
            (
                r#"{"from_ms":0,"to_ms":10,"window_ms":5,"order":"x","steps":[{"event":"a"},{"event":"b"}]}"#,
                "order",
            ),
            (
                r#"{"from_ms":0,"to_ms":10,"window_ms":5,"steps":[{"event":"a"},{"event":"b"}],"exclusions":[{"event":"c","after_step":2}]}"#,
                "after_step",
            ),
            (
                r#"{"from_ms":0,"to_ms":10,"window_ms":5,"steps":[{"event":"a","where":"(("},{"event":"b"}]}"#,
                "where",
            ),
            (
                r#"{"from_ms":0,"to_ms":10,"window_ms":5,"steps":[{"event":"a"},{"event":"b"}],"breakdown":{}}"#,
                "either a property or a cohort",
            ),
            (
                r#"{"from_ms":0,"to_ms":10,"window_ms":5,"steps":[{"event":"a"},{"event":"b"}],"unit":"hour"}"#,
                "day, week or month",
            ),
            (
                r#"{"from_ms":0,"to_ms":10,"window_ms":5,"steps":[{"event":"a"},{"event":"b"}],"unit":"year"}"#,
                "unit must be",
            ),
            (
                r#"{"from_ms":0,"to_ms":10,"steps":[]}"#,
                "funnel: missing field `window_ms`",
            ),
            (
                r#"{"from_ms":0,"to_ms":10,"window_ms":"5","steps":[]}"#,
                "funnel: window_ms: invalid type: string, expected i64",
            ),
            (
                r#"{"from_ms":0,"to_ms":10,"window_ms":5,"steps":[{"event":"a"},{"event":"b","where":7}]}"#,
                "steps[1].where: invalid type: integer",
            ),
            (
                r#"{"from_ms":0,"to_ms":10,"window_ms":5,"steps":[]} x"#,
                "funnel: trailing characters",
            ),
        ] {
            let e = parse::<FunnelQuery>(body.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{body}: {e}");
        }
    }
}
