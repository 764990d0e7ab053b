//! `POST /api/v1/query/flows`: the paths people take after or before an anchor event.
//! Semantics in `docs/query-semantics.md`; run by `canopy-analytics/src/flows_report.rs`.

use crate::cohort::CohortFilter;
use crate::{Definition, Result, check_range, invalid};
use serde::Deserialize;

pub const MAX_STEPS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    After,
    Before,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FlowsQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    pub anchor: String,
    /// The events a path may contain (the anchor is added). Flows need a list: the scan is
    /// over these names.
    pub events: Vec<String>,
    /// Steps after (or before) the anchor, 1 to 10.
    pub steps: usize,
    /// `after` (default) or `before`.
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub all_anchors: bool,
    /// Collapse consecutive repeats of one event (default true, as Mixpanel).
    #[serde(default)]
    pub keep_repeats: bool,
    /// Only a saved cohort's members (or everyone else).
    #[serde(default)]
    pub cohort: Option<CohortFilter>,
}

impl FlowsQuery {
    pub fn direction(&self) -> Result<Direction> {
        match self.direction.as_deref().unwrap_or("after") {
            "after" => Ok(Direction::After),
            "before" => Ok(Direction::Before),
            _ => invalid("direction must be \"after\" or \"before\""),
        }
    }
}

impl Definition for FlowsQuery {
    const REPORT: &'static str = "flows";

    fn check(&self) -> Result<()> {
        if !(1..=MAX_STEPS).contains(&self.steps) {
            return invalid(format!("steps must be between 1 and {MAX_STEPS}"));
        }
        check_range(self.from_ms, self.to_ms)?;
        self.direction()?;
        Ok(())
    }
}
