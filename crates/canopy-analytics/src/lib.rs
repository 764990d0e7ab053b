//! Analytics reports (issue #5): the sequence operators behind funnels, retention and flows,
//! as pure functions over one person's time-ordered events. The scans that feed them (over the
//! person-sorted segments, through DataFusion) and the report APIs build on these.
//! Definitions, with their edge cases, are in `docs/query-semantics.md`.

pub mod cohorts;
pub mod flows;
pub mod flows_report;
pub mod funnel;
pub mod funnel_report;
pub mod funnel_tally;
pub mod insights_report;
mod insights_shape;
pub mod retention;
pub mod retention_report;
pub mod time_buckets;

pub use canopy_report_wire::{
    CohortFilter, Definition, FlowsQuery, FunnelQuery, InsightsQuery, RetentionQuery, StepDef,
    WireError,
};
pub use cohorts::CohortDefinition;
pub use flows::{Direction, FlowSpec, Flows};
pub use funnel::{Conversion, FunnelSpec, Order, StepEvent};
pub use retention::{Kind, RetentionEvent, RetentionSpec, RetentionTable};

pub use flows_report::{FlowsReport, FlowsRequest, flows};
pub use funnel_report::{FunnelReport, FunnelRequest, funnel};
pub use insights_report::{InsightsReport, InsightsRequest, insights};
pub use retention_report::{RetentionReport, RetentionRequest, retention};

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("invalid query: {0}")]
    Invalid(String),
    /// The client's definition, refused before any data is read.
    #[error(transparent)]
    Definition(#[from] canopy_report_wire::WireError),
    #[error(transparent)]
    Query(#[from] canopy_query::QueryError),
}

pub type Result<T, E = AnalyticsError> = std::result::Result<T, E>;

#[cfg(test)]
mod proptests;
