//! A report's event definition — a name and an optional `where` — compiled once per query.

use crate::{Result, WireError};
use canopy_expr::Expr;
use serde::Deserialize;
use serde_json::{Map, Value};

/// One step: an event, optionally filtered by a Mixpanel segmentation expression.
#[derive(Debug, Clone, Deserialize)]
pub struct StepDef {
    pub event: String,
    #[serde(default, rename = "where")]
    pub where_expr: Option<String>,
}

/// A [`StepDef`] with its filter parsed.
#[derive(Debug, Clone)]
pub struct Step {
    pub event: String,
    filter: Option<Expr>,
}

/// Compiles every step; an error names the list and the step's index.
pub fn compile_all(list: &str, steps: &[StepDef]) -> Result<Vec<Step>> {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| s.compile(&format!("{list}[{i}]")))
        .collect()
}

impl StepDef {
    /// Parses the filter; an error names the step by `field` (not by its event, which is the
    /// client's text).
    pub fn compile(&self, field: &str) -> Result<Step> {
        let filter = match self.where_expr.as_deref().map(str::trim) {
            Some(w) if !w.is_empty() => Some(
                canopy_expr::parse(w)
                    .map_err(|e| WireError::Invalid(format!("{field}: where: {e}")))?,
            ),
            _ => None,
        };
        Ok(Step {
            event: self.event.clone(),
            filter,
        })
    }
}

impl Step {
    pub fn has_filter(&self) -> bool {
        self.filter.is_some()
    }

    /// Does an event named `name` with `props` (present when any filter needed them) match?
    pub fn matches(&self, name: &str, props: Option<&Map<String, Value>>) -> bool {
        name == self.event
            && match (&self.filter, props) {
                (Some(f), Some(p)) => canopy_expr::matches(f, p),
                (Some(_), None) => false,
                (None, _) => true,
            }
    }
}
