//! The report definitions clients send (issue #5) — insights, funnels, retention, flows and
//! saved cohorts — as JSON, with every check that needs no data. Kept apart from the engine
//! (no DataFusion) so these parsers are cheap to fuzz (`fuzz/fuzz_targets/report_definitions.rs`)
//! and property-test; `canopy-analytics` runs what passes here, and the server parses request
//! bodies only through [`parse`], so the fuzzed path is the production path.

pub mod cohort;
#[doc(hidden)]
pub mod conformance;
pub mod filters;
pub mod flows;
pub mod funnel;
pub mod insights;
pub mod retention;
pub mod step;
pub mod unit;

pub use cohort::{CohortDefinition, CohortFilter, StoredCohort};
pub use filters::{FilterOp, Operand, PropertyFilter, Source, parse_time_ms};
pub use flows::{Direction, FlowsQuery};
pub use funnel::{ExclusionDef, FunnelBreakdown, FunnelQuery, Order};
pub use insights::{BreakdownDef, InsightsQuery, Measure, MeasureDef, Stat};
pub use retention::{Kind, RetentionQuery};
pub use step::{Step, StepDef};
pub use unit::Unit;

/// Why a definition was refused. Messages name fields and the client's own labels (event
/// and property names), never stored data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    /// Not JSON of the report's shape (the JSON parser's reason).
    #[error("{report}: {reason}")]
    Malformed {
        report: &'static str,
        reason: String,
    },
    /// Well-formed, but not a report that can be run.
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = WireError> = std::result::Result<T, E>;

pub(crate) fn invalid<T>(message: impl Into<String>) -> Result<T> {
    Err(WireError::Invalid(message.into()))
}

/// A report definition: its name in errors, and the checks that need no data.
pub trait Definition: serde::de::DeserializeOwned {
    const REPORT: &'static str;
    /// Refuses what cannot be run, with the reason.
    fn check(&self) -> Result<()>;
}

/// Parses and checks a request body.
pub fn parse<D: Definition>(body: &[u8]) -> Result<D> {
    let malformed =
        |path: Option<&serde_path_to_error::Path>, e: &serde_json::Error| WireError::Malformed {
            report: D::REPORT,
            reason: json_reason(path, e),
        };
    let mut json = serde_json::Deserializer::from_slice(body);
    let definition: D = serde_path_to_error::deserialize(&mut json)
        .map_err(|e| malformed(Some(e.path()), e.inner()))?;
    json.end().map_err(|e| malformed(None, &e))?;
    definition.check()?;
    Ok(definition)
}

/// The JSON parser's reason without the values it quotes (a filter's value may be a person's
/// email): syntax errors are fixed texts; of data errors only the kind of mistake, the
/// expected shape and our field names are kept.
fn json_reason(path: Option<&serde_path_to_error::Path>, e: &serde_json::Error) -> String {
    if !e.is_data() {
        // serde_json's syntax and end-of-input messages are fixed texts, plus the position
        // (not the path: a syntax error may be inside a key the client made up).
        return e.to_string();
    }
    // A data error is in a field we read, so the path holds only our names and indexes.
    let field = match path.map(ToString::to_string) {
        Some(p) if p != "." && !p.is_empty() => format!("{p}: "),
        _ => String::new(),
    };
    let message = e.to_string();
    let message = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(m, _)| m);
    let expected = message
        .split_once(", expected ")
        .map(|(_, x)| format!(", expected {x}"))
        .unwrap_or_default();
    let what = if let Some(rest) = message.strip_prefix("invalid type: ") {
        // "invalid type: string \"…\"" → "invalid type: string".
        let kind = rest.split([' ', ',']).next().unwrap_or("");
        format!("invalid type: {kind}{expected}")
    } else if message.starts_with("invalid value: ") {
        format!("invalid value{expected}")
    } else if message.starts_with("unknown variant ") {
        format!("unknown variant{expected}")
    } else if message.starts_with("missing field ")
        || message.starts_with("duplicate field ")
        || message.starts_with("invalid length ")
    {
        // Our field names (serde names only fields it knows) or a count.
        message.to_string()
    } else {
        "invalid value".to_string()
    };
    format!("{field}{what} at line {} column {}", e.line(), e.column())
}

/// What a breakdown splits people by: a property or a saved cohort's membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split<'a> {
    Property(&'a str),
    Cohort(u64),
}

/// A breakdown names exactly one of a property and a cohort.
pub(crate) fn split(property: Option<&str>, cohort: Option<u64>) -> Result<Split<'_>> {
    match (property, cohort) {
        (Some(p), None) => Ok(Split::Property(p)),
        (None, Some(id)) => Ok(Split::Cohort(id)),
        _ => invalid("a breakdown names either a property or a cohort"),
    }
}

/// `to_ms` after `from_ms`, as every report's range needs.
pub(crate) fn check_range(from_ms: i64, to_ms: i64) -> Result<()> {
    if to_ms <= from_ms {
        return invalid("to_ms must be after from_ms");
    }
    Ok(())
}

#[cfg(test)]
mod proptests;
