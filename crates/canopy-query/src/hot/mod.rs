//! The cached-column engine: decoded columns of segments kept in memory between queries
//! (`cache.rs`, bounded, cleared by every rewrite), and the scans that read them for the
//! reports run most — insights counts and uniques (`aggregate.rs`) and the sequence scan of
//! funnels, retention and flows (`sequences.rs`, folded person by person in `runs.rs`).
//! Each declines a shape it does not cover,
//! and the caller takes the DataFusion path; both paths answer alike (tests compare them).

mod aggregate;
mod cache;
mod columns;
mod measure;
mod runs;
mod sequences;
mod sources;
mod ties;

pub(crate) use cache::ColumnCache;
pub use cache::DEFAULT_COLUMN_CACHE;
pub(crate) use runs::RunSet;
pub(crate) use sources::on_cores;

#[cfg(test)]
mod tests;
