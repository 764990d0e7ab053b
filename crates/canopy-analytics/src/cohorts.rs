//! Saved cohorts (issue #5 item 5): the members of a definition, computed when a report uses
//! it. The definitions, their checks and their versioned stored form are client wire formats
//! (`canopy-report-wire/src/cohort.rs`).

use crate::{AnalyticsError, Result};
use canopy_query::{PersonSet, QueryEngine};
pub use canopy_report_wire::{CohortDefinition, CohortFilter, StoredCohort};
use canopy_types::ProjectId;
use std::sync::Arc;

const DAY_MS: i64 = 86_400_000;

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

/// The members at `now_ms` (current person keys).
pub async fn members(
    definition: &CohortDefinition,
    engine: &QueryEngine,
    project: ProjectId,
    now_ms: i64,
) -> Result<PersonSet> {
    let set = match definition {
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
