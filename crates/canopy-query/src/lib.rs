//! Queries over the store: Apache DataFusion registered over a project's encrypted segments
//! plus the not-yet-flushed tail (`table.rs`), so an acknowledged event is queryable at once;
//! and the Mixpanel-compatible raw export (`export.rs`, `ndjson.rs`; `where` comes from
//! `canopy-expr`).
//!
//! Life of a query: the server asks [`QueryEngine`] for a plan; `table.rs` takes a store
//! snapshot (segments + tail chunks, never both for one record), unwraps each segment's data
//! key for `keys.rs`' decryption factory, and unions a Parquet scan with the tail's batches.

mod activity;
mod bucket_udf;
mod cohort_members;
mod export;
mod filters;
mod hot;
mod identity_udf;
mod keys;
mod lookups;
mod ndjson;
mod person_set_udf;
mod profiles;
mod property_udf;
mod segment_rows;
mod segmentation;
mod sequences;
mod table;
mod tail;

pub use export::{ExportBackend, ExportRequest, ExportStream};
pub use filters::{FilterOp, PropertyFilter, Source};
pub use hot::DEFAULT_COLUMN_CACHE;
pub use person_set_udf::PersonSet;
pub use profiles::{Profile, Profiles};
pub use property_udf::{PropKind, parse_time_ms, value_text};
pub use segmentation::{
    AggregateRequest, AggregateRow, Breakdown, BreakdownBy, EventSelector, Measure, OTHER_SEGMENT,
    Stat,
};
pub use sequences::{SequenceRequest, SequenceRow, Sequences};
pub use table::{CanopyTable, DEFAULT_QUERY_MEMORY, QueryEngine};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Store(#[from] canopy_store::StoreError),
    #[error("query engine: {0}")]
    DataFusion(datafusion::error::DataFusionError),
    /// The query needs more memory than `query.memory_limit` allows.
    #[error(
        "the query needs more memory than the query memory limit allows; narrow the date range, the events or the breakdown, or raise the limit"
    )]
    TooLarge,
    #[error("columns: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("invalid `where` expression: {0}")]
    Where(String),
    #[error(transparent)]
    Identity(#[from] canopy_identity::IdentityError),
    #[error("invalid request: {0}")]
    Invalid(String),
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;

impl From<datafusion::error::DataFusionError> for QueryError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        match e.find_root() {
            datafusion::error::DataFusionError::ResourcesExhausted(_) => QueryError::TooLarge,
            _ => QueryError::DataFusion(e),
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_identity;
#[cfg(test)]
mod tests_segmentation;
