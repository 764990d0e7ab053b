//! Saved cohorts (issue #5 item 5): a definition — people who did (or did not do) an event at
//! least N times in the last D days (behavioural), or whose profile passes property filters.
//! The stored form is versioned JSON ([`StoredCohort`]), kept apart from the in-memory
//! [`CohortDefinition`]. Members are computed by `canopy-analytics/src/cohorts.rs`.

use crate::filters::{PropertyFilter, check_filters};
use crate::{Definition, Result, WireError, invalid};
use serde::{Deserialize, Serialize};

const MAX_WINDOW_DAYS: u32 = 3660;
const MAX_NAME: usize = 255;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CohortDefinition {
    /// Did `event` (passing `where`) at least `min_count` times in the `window_days` before
    /// the moment the cohort is evaluated — or, with `did_not`, everyone the project knows
    /// (an event at any time, or a profile) who did not.
    Behavioral {
        event: String,
        #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
        where_expr: Option<String>,
        #[serde(default = "one")]
        min_count: u64,
        window_days: u32,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        did_not: bool,
    },
    /// The profile passes every filter (properties of the user profile).
    Profile { filters: Vec<PropertyFilter> },
}

fn one() -> u64 {
    1
}

/// A report restricted to a saved cohort's members (or, with `negate`, to everyone else).
#[derive(Debug, Clone, Deserialize)]
pub struct CohortFilter {
    pub id: u64,
    #[serde(default)]
    pub negate: bool,
}

/// The persisted form: `{"version": 1, "definition": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCohort {
    pub version: u32,
    pub definition: CohortDefinition,
}

/// `POST /api/v1/cohorts`: `{"name", "description"?, "definition"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct NewCohort {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub definition: CohortDefinition,
}

impl Definition for NewCohort {
    const REPORT: &'static str = "cohort";
    fn check(&self) -> Result<()> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME {
            return invalid(format!("a cohort name has 1 to {MAX_NAME} characters"));
        }
        self.definition.validate()
    }
}

impl CohortDefinition {
    /// Rejects definitions that cannot be evaluated, with the reason.
    pub fn validate(&self) -> Result<()> {
        match self {
            CohortDefinition::Behavioral {
                event,
                where_expr,
                min_count,
                window_days,
                ..
            } => {
                if event.trim().is_empty() {
                    return invalid("a behavioral cohort needs an event");
                }
                if *min_count == 0 {
                    return invalid("min_count must be at least 1");
                }
                if !(1..=MAX_WINDOW_DAYS).contains(window_days) {
                    return invalid(format!(
                        "window_days must be between 1 and {MAX_WINDOW_DAYS}"
                    ));
                }
                if let Some(w) = where_expr.as_deref().filter(|w| !w.trim().is_empty()) {
                    canopy_expr::parse(w).map_err(|e| WireError::Invalid(format!("where: {e}")))?;
                }
            }
            CohortDefinition::Profile { filters } => {
                if filters.is_empty() {
                    return invalid("a profile cohort needs at least one filter");
                }
                check_filters(filters)?;
            }
        }
        Ok(())
    }

    /// The stored JSON: version 2 only for what version 1 cannot say ("did not do"), so a
    /// binary that knows only version 1 refuses it instead of reading it as "did".
    pub fn to_stored(&self) -> String {
        let version = match self {
            CohortDefinition::Behavioral { did_not: true, .. } => 2,
            _ => 1,
        };
        serde_json::to_string(&StoredCohort {
            version,
            definition: self.clone(),
        })
        .unwrap_or_default()
    }

    /// Reads a stored definition; refuses versions this binary does not know.
    pub fn from_stored(json: &str) -> Result<Self> {
        let stored: StoredCohort = serde_json::from_str(json)
            .map_err(|e| WireError::Invalid(format!("stored cohort: {e}")))?;
        if !(1..=2).contains(&stored.version) {
            return invalid(format!(
                "stored cohort version {} is newer than this binary",
                stored.version
            ));
        }
        Ok(stored.definition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_round_trip_through_the_versioned_form_and_bad_ones_are_refused() {
        let d: CohortDefinition = serde_json::from_str(
            r#"{"kind":"behavioral","event":"Buy","min_count":2,"window_days":30}"#,
        )
        .unwrap();
        d.validate().unwrap();
        assert_eq!(CohortDefinition::from_stored(&d.to_stored()).unwrap(), d);
        assert!(d.to_stored().starts_with(r#"{"version":1,"#));
        // "Did not do" is version 2, so a version-1 binary refuses it rather than reading
        // it as "did".
        let not: CohortDefinition = serde_json::from_str(
            r#"{"kind":"behavioral","event":"Buy","window_days":30,"did_not":true}"#,
        )
        .unwrap();
        not.validate().unwrap();
        assert!(not.to_stored().starts_with(r#"{"version":2,"#));
        assert_eq!(
            CohortDefinition::from_stored(&not.to_stored()).unwrap(),
            not
        );
        assert!(
            CohortDefinition::from_stored(
                r#"{"version":3,"definition":{"kind":"profile","filters":[]}}"#
            )
            .is_err()
        );
        for bad in [
            r#"{"kind":"behavioral","event":"Buy","min_count":0,"window_days":30}"#,
            r#"{"kind":"behavioral","event":"Buy","window_days":0}"#,
            r#"{"kind":"behavioral","event":"Buy","window_days":3,"where":"properties["}"#,
            r#"{"kind":"profile","filters":[]}"#,
            r#"{"kind":"profile","filters":[{"property":"age","op":"gt","value":"old"}]}"#,
        ] {
            let d: CohortDefinition = serde_json::from_str(bad).unwrap();
            assert!(d.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_new_cohort_needs_a_name_of_at_most_255_characters() {
        let body = |name: &str| {
            format!(
                r#"{{"name":{name:?},"definition":{{"kind":"behavioral","event":"Buy","window_days":7}}}}"#
            )
        };
        assert!(crate::parse::<NewCohort>(body("Buyers").as_bytes()).is_ok());
        for bad in ["", "  ", &"x".repeat(256)] {
            assert!(crate::parse::<NewCohort>(body(bad).as_bytes()).is_err());
        }
    }
}
