//! The HTTP server: Mixpanel-compatible ingestion, export, health and metrics, on axum.
//!
//! Life of an event here: `routes.rs` normalizes the path and applies CORS; `ingest_*.rs`
//! read the bounded body (`request.rs`), decode it with `canopy-ingest`, resolve the token and
//! the person key (`projects.rs`), and await `Store::append` — which returns only once the
//! batch is fsync'd in the WAL — before answering in the shape the SDK expects (`respond.rs`).
//! Errors become HTTP in exactly one place (`error.rs`).

mod access;
mod access_bundle;
mod activity;
mod aux;
mod cleanup;
mod cohorts;
mod consent;
pub mod daily_salts;
mod dsr;
mod engage;
pub mod enrich;
mod error;
mod export;
mod ingest_import;
mod ingest_posthog;
mod ingest_profiles;
mod ingest_segment;
mod ingest_track;
mod maintenance;
mod mixpanel_gdpr;
mod mixpanel_lookup;
mod mixpanel_query;
mod observability;
mod opendsr;
mod persons;
mod privacy;
mod project_cache;
mod projects;
mod rectify;
mod reports;
mod request;
mod respond;
mod retention;
mod routes;
mod tiers;

pub use error::ApiError;
pub use observability::{MetricsHandle, install_metrics};
pub use projects::Projects;
pub use routes::{router, serve};

use canopy_control::ControlPlane;
use canopy_identity::IdentityStore;
use canopy_ingest::Limits;
use canopy_query::{ExportBackend, QueryEngine};
use canopy_store::{EventStore, Store};
use canopy_types::Clock;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    pub projects: Arc<Projects>,
    /// Who each event and profile update belongs to; the only home of raw identifiers.
    pub identity: Arc<IdentityStore>,
    /// Where ingested records go (the embedded store, or later ClickHouse).
    pub store: Arc<dyn EventStore>,
    /// Where exports come from.
    pub engine: Arc<dyn ExportBackend>,
    /// Queries over the embedded store (profiles, person views).
    pub queries: Arc<QueryEngine>,
    pub limits: Arc<Limits>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Option<MetricsHandle>,
    /// Bearer token that lets local CLI commands act on any project (file in the data dir).
    pub admin_token: Option<Arc<String>>,
    pub shutting_down: Arc<AtomicBool>,
    /// The latest consent decision per (keyed id hash, scope), per project.
    pub consent: Arc<consent::ConsentMemory>,
    /// Sticky age tiers per project (keyed id hashes → child tier).
    pub tiers: Arc<tiers::TierMemory>,
    /// Salts of aggregate-only pseudonyms, destroyed 48 hours after their day began.
    pub salts: Arc<daily_salts::DailySalts>,
    /// GeoIP database and client-address rules from the config.
    pub enrichment: Arc<enrich::Enrichment>,
    /// Privacy lint counters per project not yet written to `control.db` (values never).
    pub lint: Arc<
        parking_lot::Mutex<std::collections::HashMap<canopy_types::ProjectId, canopy_policy::Lint>>,
    >,
    /// Data-subject requests (erasure, receipts); set by [`AppState::enable_dsr`].
    pub dsr: Option<Arc<canopy_dsr::Dsr>>,
    /// Wakes the request worker when a request arrives.
    pub dsr_wake: Arc<tokio::sync::Notify>,
    /// `X-OpenDSR-Processor-Domain` of OpenDSR responses and callbacks (`[dsr] opendsr_domain`).
    pub opendsr_domain: Arc<String>,
    /// Outgoing HTTP (OpenDSR status callbacks).
    pub http: reqwest::Client,
}

impl AppState {
    /// Bounds each query's operator memory (`[query] memory_limit_mb`) and the column cache
    /// (`[query] column_cache_mb`; 0 turns it off).
    pub fn set_query_limits(&mut self, memory_bytes: usize, column_cache_bytes: usize) {
        let engine = Arc::new(
            (*self.queries)
                .clone()
                .with_memory_limit(memory_bytes)
                .with_column_cache(column_cache_bytes),
        );
        self.queries = engine.clone();
        self.engine = engine;
    }

    /// Enables data-subject requests over `store` (creating the receipt-signing key on first
    /// use). Call after the query settings are final.
    pub fn enable_dsr(
        &mut self,
        store: Store,
        keyring: Arc<dyn canopy_crypto::ProjectKeyring>,
        config: canopy_dsr::DsrConfig,
    ) -> Result<(), ApiError> {
        let hooks = Arc::new(dsr::ServerHooks {
            projects: self.projects.clone(),
            tiers: self.tiers.clone(),
            consent: self.consent.clone(),
            queries: self.queries.clone(),
        });
        let dsr = canopy_dsr::Dsr::new(
            store,
            self.identity.clone(),
            self.projects.control().clone(),
            keyring,
            hooks,
            self.clock.clone(),
            config,
        )?;
        self.dsr = Some(Arc::new(dsr));
        Ok(())
    }

    pub fn new(
        control: Arc<dyn ControlPlane>,
        keyring: Arc<dyn canopy_crypto::ProjectKeyring>,
        store: Store,
        identity: Arc<IdentityStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let engine = Arc::new(QueryEngine::new(store.clone(), identity.clone()));
        Self {
            projects: Arc::new(Projects::new(control, keyring)),
            identity,
            queries: engine.clone(),
            engine,
            store: Arc::new(store),
            limits: Arc::new(Limits::default()),
            clock,
            metrics: None,
            admin_token: None,
            shutting_down: Arc::new(AtomicBool::new(false)),
            lint: Arc::default(),
            salts: Arc::default(),
            enrichment: Arc::default(),
            tiers: Arc::default(),
            consent: Arc::default(),
            dsr: None,
            dsr_wake: Arc::default(),
            opendsr_domain: Arc::new("localhost".into()),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }
}
