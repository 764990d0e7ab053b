//! The control plane: projects, their keys and versioned settings.
//!
//! [`ControlPlane`] is the access layer; [`SqliteControl`] implements it for the embedded
//! deployment (a PostgreSQL implementation can follow for scale-out). Secrets are shown once
//! at creation; only their argon2 hash is stored. Project keys are stored wrapped by the master
//! key, and a check value proves at start-up that the master key is the right one.

mod cohorts;
mod consent;
mod daily_salts;
mod dsr;
mod keyring;
mod lint_counts;
mod secrets;
mod settings;
mod sqlite;
mod suppression;
mod tiers;

pub use cohorts::CohortRow;
pub use consent::ConsentRecord;
pub use dsr::{DsrRow, OutboxRow};
pub use keyring::ControlKeyring;
pub use secrets::{generate_secret, generate_token};
pub use settings::ProjectSettings;
pub use sqlite::SqliteControl;

use canopy_types::ProjectId;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error(transparent)]
    Crypto(#[from] canopy_crypto::CryptoError),
    #[error(
        "the master key does not match the one this data directory was created with; refusing to start (no data was touched)"
    )]
    WrongMasterKey,
    #[error("project {0} not found")]
    NoSuchProject(u64),
    #[error("invalid settings: {0}")]
    InvalidSettings(String),
    #[error("invalid project name: {0}")]
    InvalidName(String),
    #[error("control database schema version {0} is newer than this binary understands")]
    FutureSchema(i64),
    #[error("password hashing: {0}")]
    Hash(String),
}

pub type Result<T, E = ControlError> = std::result::Result<T, E>;

/// A project as the rest of the system sees it. The API secret is never part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    /// Public ingestion token (as Mixpanel's project token).
    pub token: String,
    pub created_ms: i64,
}

/// Returned once, at creation: the only time the API secret is visible.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedProject {
    #[serde(flatten)]
    pub project: Project,
    pub api_secret: String,
}

/// The control-plane access layer.
pub trait ControlPlane: Send + Sync {
    fn create_project(&self, name: &str) -> Result<CreatedProject>;
    fn list_projects(&self) -> Result<Vec<Project>>;
    fn project(&self, id: ProjectId) -> Result<Option<Project>>;
    fn project_by_token(&self, token: &str) -> Result<Option<Project>>;
    /// The project whose API secret this is, if any (argon2-verified).
    fn project_by_secret(&self, secret: &str) -> Result<Option<Project>>;
    fn settings(&self, id: ProjectId) -> Result<(u32, ProjectSettings)>;
    /// Stores a new settings version; returns its number.
    fn update_settings(&self, id: ProjectId, settings: &ProjectSettings) -> Result<u32>;
    /// Adds keyed hashes of identifiers to the suppression list; returns how many were new.
    fn suppress(&self, id: ProjectId, hashes: &[[u8; 32]]) -> Result<usize>;
    fn unsuppress(&self, id: ProjectId, hashes: &[[u8; 32]]) -> Result<usize>;
    fn suppressions(&self, id: ProjectId) -> Result<Vec<[u8; 32]>>;
    /// The salt of UTC day `day` for aggregate-only pseudonyms, created from `candidate` (fresh
    /// random bytes) when the day has none.
    fn daily_salt(&self, id: ProjectId, day: i64, candidate: [u8; 32]) -> Result<[u8; 32]>;
    /// Destroys the salts of every day before `first_kept_day`; returns how many.
    fn destroy_daily_salts(&self, first_kept_day: i64) -> Result<usize>;
    fn has_daily_salt(&self, id: ProjectId, day: i64) -> Result<bool>;
    /// Adds counters to the persisted lint report.
    fn add_lint(&self, id: ProjectId, delta: &canopy_policy::Lint) -> Result<()>;
    fn lint(&self, id: ProjectId) -> Result<canopy_policy::Lint>;
    /// Sticky age tiers by keyed id hash.
    fn person_tiers(&self, id: ProjectId) -> Result<Vec<([u8; 32], String)>>;
    /// Records tiers; with `audit`, as a correction written to the audit log.
    fn set_person_tiers(
        &self,
        id: ProjectId,
        tiers: &[([u8; 32], String)],
        audit: Option<&str>,
    ) -> Result<()>;
    /// Appends grants / withdrawals to the consent ledger.
    fn record_consent(&self, id: ProjectId, rows: &[ConsentRecord]) -> Result<()>;
    /// The ledger of a project, or of one person (by keyed id hash), in recorded order.
    fn consent(&self, id: ProjectId, person: Option<[u8; 32]>) -> Result<Vec<ConsentRecord>>;
    /// Saves a cohort (its definition as opaque JSON); returns its id.
    fn create_cohort(
        &self,
        id: ProjectId,
        name: &str,
        description: &str,
        definition: &str,
    ) -> Result<u64>;
    fn cohorts(&self, id: ProjectId) -> Result<Vec<CohortRow>>;
    fn cohort(&self, id: ProjectId, cohort: u64) -> Result<Option<CohortRow>>;
    fn delete_cohort(&self, id: ProjectId, cohort: u64) -> Result<bool>;
    /// The project's key, wrapped by the master key.
    fn wrapped_project_key(&self, id: ProjectId) -> Result<Vec<u8>>;
    /// Records a new data-subject request (and its receipt in the audit log).
    fn create_dsr(&self, request: &DsrRow) -> Result<()>;
    /// One request, of `project` when given.
    fn dsr(&self, project: Option<ProjectId>, id: &str) -> Result<Option<DsrRow>>;
    /// A project's requests, newest first.
    fn dsr_list(&self, project: ProjectId, limit: u32) -> Result<Vec<DsrRow>>;
    /// Pending and interrupted requests of every project, oldest first.
    fn dsr_open(&self) -> Result<Vec<DsrRow>>;
    /// Replaces an open request's sealed subject (after its identities were resolved).
    fn dsr_reseal(&self, id: &str, sealed: &[u8]) -> Result<()>;
    /// Moves a request to `to` if its status is one of `from`; false otherwise.
    fn dsr_transition(&self, id: &str, from: &[&str], to: &str, now_ms: i64) -> Result<bool>;
    /// Ends a request with its result or error; its sealed identifiers are deleted (kept when
    /// it failed, so it can be retried, and for a completed access request until its download
    /// link expires: the bundle is built from live data when downloaded).
    fn dsr_finish(
        &self,
        id: &str,
        status: &str,
        result: Option<&str>,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<()>;
    /// Deletes an erased person's consent-ledger rows and sticky tiers; (ledger, tiers) counts.
    fn forget_person_rows(
        &self,
        id: ProjectId,
        hashes: &[[u8; 32]],
        now_ms: i64,
    ) -> Result<(usize, usize)>;
    /// Forgets the identifiers of access requests completed before `before_ms`.
    fn dsr_expire_access(&self, before_ms: i64) -> Result<usize>;
    /// Status callbacks due for delivery (queued with each state change of a request that
    /// named callback URLs).
    fn dsr_due_callbacks(&self, now_ms: i64, limit: u32) -> Result<Vec<OutboxRow>>;
    /// A delivery attempt: `done` removes the callback, otherwise it waits until `retry_ms`.
    fn dsr_callback_attempted(&self, id: i64, done: bool, retry_ms: i64) -> Result<()>;
    /// Appends a row to the audit log (actions on data, never the data itself).
    fn record_audit(&self, id: ProjectId, action: &str, detail: &str, now_ms: i64) -> Result<()>;
    /// The seed of the Ed25519 key that signs erasure receipts, and its id.
    fn receipt_signing_seed(&self, now_ms: i64) -> Result<(String, canopy_crypto::Key)>;
}
