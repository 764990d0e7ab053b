//! The write-side contract of an event store. The embedded [`Store`] implements it; the
//! ClickHouse backend planned for scale-out implements the same semantics (durable before
//! `Ok`, dedup on the event key inside a window, queryable at once).

use crate::{AppendOutcome, Result, Store, StoreStats};
use async_trait::async_trait;
use canopy_types::{ProjectId, Record};

#[async_trait]
pub trait EventStore: Send + Sync {
    /// Makes `records` durable; `Ok` means they survive a crash and are visible to queries.
    async fn append(&self, project: ProjectId, records: Vec<Record>) -> Result<AppendOutcome>;
    /// Sizes and counters for `/metrics`.
    fn stats(&self) -> StoreStats;
}

#[async_trait]
impl EventStore for Store {
    async fn append(&self, project: ProjectId, records: Vec<Record>) -> Result<AppendOutcome> {
        Store::append(self, project, records).await
    }

    fn stats(&self) -> StoreStats {
        Store::stats(self)
    }
}
