//! Identity: which person each event and profile update belongs to (mixpanel-api.md §11).
//!
//! Life of an event here: the server hands a batch to [`IdentityStore::resolve_events`];
//! `hints.rs` reads the reserved properties under the project's ID-merge mode, `graph.rs`
//! applies the merges (simplified: `$device_id`/`$user_id`; original: `$identify`,
//! `$create_alias`, `$merge`, 500 ids per cluster), `sqlite.rs` writes the changes — raw ids
//! sealed, the only place they are kept — and each event leaves with its person key.
//!
//! Queries see merges retroactively: events keep the key they were stored under, and
//! [`IdentityStore::aliases`] maps old keys to current persons at query time.
//! `profile.rs` folds `/engage` and `/groups` operations into profiles.

mod graph;
mod hints;
mod keys;
mod profile;
mod sqlite;
mod store;

pub use graph::{Change, Graph, MAX_CLUSTER_IDS};
pub use hints::{Hints, IDENTIFIER_PROPERTIES, Op, hints, looks_anonymous};
pub use keys::ProjectSecrets;
pub use profile::ProfileState;
pub use store::{IdentityStore, ResolveOptions, ResolveStats};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("identity database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Crypto(#[from] canopy_crypto::CryptoError),
    #[error("identity store is damaged: {0}")]
    Corrupt(String),
}

pub type Result<T, E = IdentityError> = std::result::Result<T, E>;

#[cfg(test)]
mod golden;
