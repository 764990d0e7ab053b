//! Accepting, listing and cancelling requests; the [`Dsr`] handle the server holds.

use crate::erasure::EraseHooks;
use crate::receipt::ReceiptSigner;
use crate::subject::Subject;
use crate::{DsrError, Regulation, Result};
use canopy_control::{ControlPlane, DsrRow};
use canopy_crypto::ProjectKeyring;
use canopy_identity::IdentityStore;
use canopy_store::Store;
use canopy_types::{Clock, ProjectId};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Erasure,
    /// Access / portability: a bundle of everything held about the person, downloaded
    /// through an expiring link.
    Access,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Erasure => "erasure",
            RequestKind::Access => "access",
        }
    }
}

/// A request as an API hands it over.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub project: ProjectId,
    pub kind: RequestKind,
    /// `native`, `mixpanel` or `opendsr`: which API's status shapes apply.
    pub api: &'static str,
    pub regulation: Regulation,
    pub ids: Vec<String>,
    /// The controller's own request id (OpenDSR's `subject_request_id`), if it sent one.
    pub id: Option<String>,
    /// When the data subject made the request, if earlier than its arrival.
    pub submitted_ms: Option<i64>,
    /// Add the person's ids to the suppression list (the default).
    pub suppress: bool,
    pub callbacks: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DsrConfig {
    /// How long an erasure waits for running queries to release replaced segment files.
    pub unlink_wait: Duration,
    /// Attempts before a request that keeps failing is marked failed.
    pub max_attempts: u32,
    /// How long a request waits before it runs (and can be cancelled); zero by default.
    pub cancel_window: Duration,
    /// How long an access bundle's download link works.
    pub download_ttl: Duration,
}

impl Default for DsrConfig {
    fn default() -> Self {
        Self {
            unlink_wait: Duration::from_secs(30),
            max_attempts: 5,
            cancel_window: Duration::ZERO,
            download_ttl: Duration::from_secs(7 * 86_400),
        }
    }
}

/// Everything a data-subject request touches.
pub struct Dsr {
    pub(crate) store: Store,
    pub(crate) identity: Arc<IdentityStore>,
    pub(crate) control: Arc<dyn ControlPlane>,
    pub(crate) keyring: Arc<dyn ProjectKeyring>,
    pub(crate) hooks: Arc<dyn EraseHooks>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) signer: ReceiptSigner,
    pub(crate) config: DsrConfig,
    /// One batch at a time: concurrent requests wait and join the next batch.
    pub(crate) running: std::sync::Mutex<()>,
}

impl std::fmt::Debug for Dsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dsr").field("signer", &self.signer).finish()
    }
}

impl Dsr {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        identity: Arc<IdentityStore>,
        control: Arc<dyn ControlPlane>,
        keyring: Arc<dyn ProjectKeyring>,
        hooks: Arc<dyn EraseHooks>,
        clock: Arc<dyn Clock>,
        config: DsrConfig,
    ) -> Result<Dsr> {
        let (key_id, seed) = control.receipt_signing_seed(clock.now_ms())?;
        Ok(Dsr {
            store,
            identity,
            control,
            keyring,
            hooks,
            clock,
            signer: ReceiptSigner::from_seed(key_id, &seed),
            config,
            running: Default::default(),
        })
    }

    /// Signs bytes (an OpenDSR response or callback body) with the receipt key; base64.
    pub fn sign_raw(&self, message: &[u8]) -> String {
        self.signer.sign_raw(message)
    }

    /// The receipt key as a PEM public key (SubjectPublicKeyInfo), for OpenDSR discovery.
    pub fn public_key_pem(&self) -> String {
        self.signer.public_key_pem()
    }

    /// The public half of the receipt-signing key, for the well-known URL.
    pub fn published_key(&self) -> crate::PublishedKey {
        self.signer.published()
    }

    /// Records a request; the worker ([`Dsr::run_open`]) carries it out.
    pub fn submit(&self, r: NewRequest) -> Result<DsrRow> {
        let subject = Subject::new(r.ids)?;
        let id = match r.id {
            Some(id) => {
                let parsed = uuid::Uuid::parse_str(&id)
                    .map_err(|_| DsrError::BadRequest("the request id must be a UUID".into()))?;
                if self.control.dsr(None, &parsed.to_string())?.is_some() {
                    return Err(DsrError::Conflict(
                        "a request with this id already exists".into(),
                    ));
                }
                parsed.to_string()
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        if r.callbacks.len() > 10
            || r.callbacks
                .iter()
                .any(|u| !(u.starts_with("https://") || u.starts_with("http://")) || u.len() > 2000)
        {
            return Err(DsrError::BadRequest(
                "status callbacks must be at most 10 http(s) URLs".into(),
            ));
        }
        let now = self.clock.now_ms();
        let key = self.keyring.project_key(r.project.0)?;
        let row = DsrRow {
            subject_hash: subject.hash(&id),
            subject_sealed: Some(subject.seal(&key, &id)?),
            id_count: subject.ids.len() as u32,
            id,
            project: r.project,
            kind: r.kind.as_str().into(),
            api: r.api.into(),
            regulation: r.regulation.as_str().into(),
            suppress: r.suppress,
            status: "pending".into(),
            received_ms: now,
            submitted_ms: r.submitted_ms.filter(|s| *s <= now).unwrap_or(now),
            deadline_ms: r.regulation.due_ms(now),
            started_ms: None,
            completed_ms: None,
            attempts: 0,
            callbacks: r.callbacks,
            result: None,
            error: None,
        };
        self.control.create_dsr(&row)?;
        metrics::counter!("canopy_dsr_requests_total", "kind" => r.kind.as_str(), "api" => r.api)
            .increment(1);
        Ok(row)
    }

    /// One request of `project`.
    pub fn get(&self, project: ProjectId, id: &str) -> Result<DsrRow> {
        self.control
            .dsr(Some(project), id)?
            .ok_or(DsrError::NotFound)
    }

    /// A request by id alone (for status pages whose URL carries the id).
    pub fn get_any(&self, id: &str) -> Result<DsrRow> {
        self.control.dsr(None, id)?.ok_or(DsrError::NotFound)
    }

    pub fn list(&self, project: ProjectId, limit: u32) -> Result<Vec<DsrRow>> {
        Ok(self.control.dsr_list(project, limit.clamp(1, 1000))?)
    }

    /// The identifiers of an open request (they are deleted when it ends: then none).
    pub fn open_ids(&self, row: &DsrRow) -> Result<Vec<String>> {
        match &row.subject_sealed {
            Some(sealed) if matches!(row.status.as_str(), "pending" | "running") => {
                let key = self.keyring.project_key(row.project.0)?;
                Ok(Subject::open(sealed, &key, &row.id)?.ids)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Cancels every pending request of `project` naming exactly these identifiers; returns
    /// the cancelled ids (Mixpanel's cancel-by-ids form).
    pub fn cancel_by_ids(&self, project: ProjectId, ids: Vec<String>) -> Result<Vec<String>> {
        let wanted = Subject::new(ids)?.ids;
        let mut cancelled = Vec::new();
        for row in self.control.dsr_open()? {
            if row.project != project || row.status != "pending" {
                continue;
            }
            if self.open_ids(&row)? == wanted
                && self.control.dsr_transition(
                    &row.id,
                    &["pending"],
                    "cancelled",
                    self.clock.now_ms(),
                )?
            {
                cancelled.push(row.id);
            }
        }
        Ok(cancelled)
    }

    /// Cancels a request that has not started.
    pub fn cancel(&self, project: ProjectId, id: &str) -> Result<DsrRow> {
        let row = self.get(project, id)?;
        if !self
            .control
            .dsr_transition(&row.id, &["pending"], "cancelled", self.clock.now_ms())?
        {
            return Err(DsrError::Conflict(format!(
                "the request is {} and can no longer be cancelled",
                self.get(project, id)?.status
            )));
        }
        self.get(project, id)
    }
}
