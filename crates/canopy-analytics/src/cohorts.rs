//! Saved cohorts (issue #5 item 5): a definition — people who did an event at least N times
//! in the last D days (behavioural), or whose profile passes property filters — and its
//! members, computed when a report uses it. The stored form is versioned JSON
//! ([`StoredCohort`]), kept apart from the in-memory [`CohortDefinition`].

use crate::{AnalyticsError, Result};
use canopy_query::{PersonSet, PropertyFilter, QueryEngine};
use canopy_types::ProjectId;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const DAY_MS: i64 = 86_400_000;
const MAX_WINDOW_DAYS: u32 = 3660;

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

/// The person filter of a sequence report: the cohort it names, with the members the caller
/// resolved.
pub(crate) fn person_filter(
    filter: Option<&CohortFilter>,
    members: Option<&PersonSet>,
) -> Result<Option<(PersonSet, bool)>> {
    match (filter, members) {
        (None, _) => Ok(None),
        (Some(f), Some(m)) => Ok(Some((m.clone(), f.negate))),
        (Some(f), None) => Err(AnalyticsError::Invalid(format!("unknown cohort {}", f.id))),
    }
}

/// The persisted form: `{"version": 1, "definition": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCohort {
    pub version: u32,
    pub definition: CohortDefinition,
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
                    return Err(AnalyticsError::Invalid(
                        "a behavioral cohort needs an event".into(),
                    ));
                }
                if *min_count == 0 {
                    return Err(AnalyticsError::Invalid(
                        "min_count must be at least 1".into(),
                    ));
                }
                if !(1..=MAX_WINDOW_DAYS).contains(window_days) {
                    return Err(AnalyticsError::Invalid(format!(
                        "window_days must be between 1 and {MAX_WINDOW_DAYS}"
                    )));
                }
                if let Some(w) = where_expr.as_deref().filter(|w| !w.trim().is_empty()) {
                    canopy_expr::parse(w)
                        .map_err(|e| AnalyticsError::Invalid(format!("where: {e}")))?;
                }
            }
            CohortDefinition::Profile { filters } => {
                if filters.is_empty() {
                    return Err(AnalyticsError::Invalid(
                        "a profile cohort needs at least one filter".into(),
                    ));
                }
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
            .map_err(|e| AnalyticsError::Invalid(format!("stored cohort: {e}")))?;
        if !(1..=2).contains(&stored.version) {
            return Err(AnalyticsError::Invalid(format!(
                "stored cohort version {} is newer than this binary",
                stored.version
            )));
        }
        Ok(stored.definition)
    }

    /// The members at `now_ms` (current person keys).
    pub async fn members(
        &self,
        engine: &QueryEngine,
        project: ProjectId,
        now_ms: i64,
    ) -> Result<PersonSet> {
        let set = match self {
            CohortDefinition::Behavioral {
                event,
                where_expr,
                min_count,
                window_days,
                did_not,
            } => {
                let from = now_ms - i64::from(*window_days) * DAY_MS;
                let did = engine
                    .persons_with_events(
                        project,
                        (from, now_ms + 1),
                        event,
                        where_expr.as_deref(),
                        *min_count,
                    )
                    .await?;
                if *did_not {
                    let mut everyone = engine.known_persons(project).await?;
                    everyone.retain(|p| !did.contains(p));
                    everyone
                } else {
                    did
                }
            }
            CohortDefinition::Profile { filters } => {
                engine.persons_with_profile(project, filters).await?
            }
        };
        Ok(Arc::new(set))
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
        ] {
            let d: CohortDefinition = serde_json::from_str(bad).unwrap();
            assert!(d.validate().is_err(), "{bad}");
        }
    }
}
