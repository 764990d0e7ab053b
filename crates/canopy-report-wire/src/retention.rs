//! `POST /api/v1/query/retention`: people born (a first or every birth event) in a range,
//! cohorts by day, week or month of birth, and returns per bracket. Semantics in
//! `docs/query-semantics.md`; run by `canopy-analytics/src/retention_report.rs`.

use crate::cohort::CohortFilter;
use crate::step::{Step, StepDef};
use crate::unit::Unit;
use crate::{Definition, Result, check_range, invalid};
use serde::Deserialize;

const DAY_MS: i64 = 86_400_000;
pub const MAX_BRACKETS: usize = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    FirstTime,
    Recurring,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RetentionQuery {
    /// Births in `[from_ms, to_ms)` make cohorts.
    pub from_ms: i64,
    pub to_ms: i64,
    pub born: StepDef,
    /// The return event; the birth event when absent.
    #[serde(default)]
    pub returned: Option<StepDef>,
    /// `day`, `week` or `month` (30 days): both the cohort grouping and the bracket length.
    pub unit: String,
    /// Brackets reported after birth (bracket 0 included).
    pub brackets: usize,
    /// `first_time` (default) or `recurring`.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub unbounded: bool,
    /// Only a saved cohort's members (or everyone else).
    #[serde(default)]
    pub cohort: Option<CohortFilter>,
}

impl RetentionQuery {
    /// The cohort grouping and the bracket length in ms.
    pub fn unit(&self) -> Result<(Unit, i64)> {
        match self.unit.as_str() {
            "day" => Ok((Unit::Day, DAY_MS)),
            "week" => Ok((Unit::Week, 7 * DAY_MS)),
            "month" => Ok((Unit::Month, 30 * DAY_MS)),
            _ => invalid("unit must be day, week or month"),
        }
    }

    pub fn kind(&self) -> Result<Kind> {
        match self.kind.as_deref().unwrap_or("first_time") {
            "first_time" => Ok(Kind::FirstTime),
            "recurring" => Ok(Kind::Recurring),
            _ => invalid("kind must be first_time or recurring"),
        }
    }

    /// The birth and return steps, filters parsed.
    pub fn compiled_steps(&self) -> Result<(Step, Step)> {
        Ok((
            self.born.compile("born")?,
            self.returned
                .as_ref()
                .unwrap_or(&self.born)
                .compile("returned")?,
        ))
    }
}

impl Definition for RetentionQuery {
    const REPORT: &'static str = "retention";

    fn check(&self) -> Result<()> {
        self.unit()?;
        if !(1..=MAX_BRACKETS).contains(&self.brackets) {
            return invalid(format!("brackets must be between 1 and {MAX_BRACKETS}"));
        }
        check_range(self.from_ms, self.to_ms)?;
        self.kind()?;
        self.compiled_steps()?;
        Ok(())
    }
}
