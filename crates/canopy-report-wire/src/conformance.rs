//! The invariants of the definition parsers, checked by the fuzz target
//! (`fuzz/fuzz_targets/report_definitions.rs`) and the property tests alike.

use crate::cohort::{CohortDefinition, NewCohort};
use crate::{Definition, FlowsQuery, FunnelQuery, InsightsQuery, RetentionQuery, WireError, parse};

/// Parses `body` as `D`; a refusal must carry a reason.
fn parsed<D: Definition>(body: &[u8]) -> Option<D> {
    match parse::<D>(body) {
        Ok(d) => Some(d),
        Err(WireError::Malformed { report, reason }) => {
            assert_eq!(report, D::REPORT);
            assert!(!reason.is_empty());
            None
        }
        Err(WireError::Invalid(reason)) => {
            assert!(!reason.is_empty());
            None
        }
    }
}

/// Parses `body` as every kind of definition: no input panics, a refusal carries a reason,
/// and nothing the engine derives from an accepted definition fails — so a client's mistake
/// is always found before any data is read. Panics (an assertion) when that does not hold.
pub fn assert_consistent(body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    let text = text.as_ref();
    if let Some(f) = parsed::<FunnelQuery>(body) {
        assert!(f.order().is_ok(), "order");
        assert!(f.compiled_steps().is_ok(), "compiled_steps");
        assert!(f.split().is_ok(), "split");
        assert!(f.over_time_unit().is_ok(), "over_time_unit");
        assert!(f.exclusions.iter().all(|x| x.after_step < f.steps.len()));
    }
    if let Some(r) = parsed::<RetentionQuery>(body) {
        assert!(r.unit().is_ok(), "unit");
        assert!(r.kind().is_ok(), "kind");
        assert!(r.compiled_steps().is_ok(), "compiled_steps");
    }
    if let Some(f) = parsed::<FlowsQuery>(body) {
        assert!(f.direction().is_ok(), "direction");
    }
    if let Some(i) = parsed::<InsightsQuery>(body) {
        assert!(i.unit().is_ok(), "unit");
        assert!(i.breakdown_limit().is_ok(), "breakdown_limit");
        for m in i.measure_defs() {
            assert!(m.measure().is_ok(), "measure");
        }
        for f in &i.filters {
            assert!(f.operand().is_ok(), "operand");
        }
    }
    if let Some(c) = parsed::<NewCohort>(body) {
        assert!(c.definition.validate().is_ok());
    }
    if let Ok(c) = CohortDefinition::from_stored(text) {
        let _ = c.validate();
        // A stored definition reads back as itself.
        assert_eq!(CohortDefinition::from_stored(&c.to_stored()).ok(), Some(c));
    }
}
