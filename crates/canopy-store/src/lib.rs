//! The embedded event store: WAL → in-memory tail → immutable, encrypted Parquet segments.
//!
//! Layout (see `layout.rs`): `segments/p<project>/<table>/<yyyy-mm>/b<bucket>/<id>.parquet`, every
//! segment sorted by (person, time), so one person's events stream in order and erasing a
//! person rewrites only the segments of their bucket. `manifest.json` (swapped atomically)
//! lists the live segments with their wrapped data keys and the WAL checkpoint.
//!
//! Life of an event here: [`Store::append`] dedups, hands the batch to the WAL
//! (`canopy-wal`), whose writer thread puts it into the tail (`tail.rs`) after the fsync; the
//! background worker (`background.rs`) rotates the WAL, writes the frozen tail as segments
//! (`flush.rs`, `columns.rs`, `segment.rs`), swaps the manifest (`manifest.rs`), drops the
//! replayed WAL files, and merges small segments (`compaction.rs`).

mod backend;
mod background;
mod columns;
mod compaction;
mod dedup;
mod erase;
mod erase_verify;
mod flush;
mod layout;
mod manifest;
mod parallel;
mod person_filter;
mod profiles;
mod rectify;
mod segment;
mod store;
mod tail;

pub use backend::EventStore;
pub use columns::{
    EVENT_FIXED_COLUMNS, PROPERTY_COLUMN_PREFIX, batch_to_events, events_to_batch,
    property_of_column,
};
pub use erase::{ErasureReport, RowSelector};
pub use erase_verify::RowsFound;
pub use layout::{Month, Table};
pub use manifest::SegmentMeta;
pub use profiles::{SeqUpdate, TAIL_SEQ_BASE, batch_to_profiles, profiles_to_batch};
pub use segment::{read_segment, read_segment_columns, segment_decryption_properties};
pub use store::{AppendOutcome, CheckpointBarrier, Snapshot, Store, StoreConfig, StoreStats};
pub use tail::TailChunk;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Wal(#[from] canopy_wal::WalError),
    #[error(transparent)]
    Crypto(#[from] canopy_crypto::CryptoError),
    #[error("segment format: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("segment columns: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("manifest: {0}")]
    Manifest(String),
    #[error("the store is overloaded; retry later")]
    Overloaded,
    #[error("the store has stopped")]
    Stopped,
    #[error("checkpoint barrier: {0}")]
    Barrier(String),
}

impl StoreError {
    pub fn is_overload(&self) -> bool {
        matches!(
            self,
            StoreError::Overloaded | StoreError::Wal(canopy_wal::WalError::Overloaded)
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_run;
