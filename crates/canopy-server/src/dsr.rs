//! Data-subject requests over the native API, the worker that carries them out, and the
//! published receipt key. Mixpanel's GDPR API (`mixpanel_gdpr.rs`) and OpenDSR share the same
//! queue (`canopy-dsr`).
//!
//! - `POST /api/v1/dsr/erasures` `{"distinct_ids": [...], "regulation", "suppress",
//!   "submitted_time", "request_id"}` → 202 with the request;
//! - `GET /api/v1/dsr/requests[?limit=]`, `GET /api/v1/dsr/requests/{id}`,
//!   `DELETE /api/v1/dsr/requests/{id}` (cancel while pending),
//!   `GET /api/v1/dsr/requests/{id}/receipt` (the signed receipt);
//! - `GET /.well-known/canopy-receipt-keys.json`: the public keys receipts verify against.

use crate::export::{ProjectParam, authenticate};
use crate::projects::Projects;
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use canopy_control::DsrRow;
use canopy_dsr::{Dsr, DsrError, EraseHooks, NewRequest, Regulation, RequestKind};
use canopy_query::QueryEngine;
use canopy_types::ProjectId;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Request bodies of the DSR APIs are small: 2,000 ids at most.
pub(crate) const MAX_BODY: usize = 1 << 20;

/// What the erasure needs from the server: the policy's id hashes, the caches to drop.
pub(crate) struct ServerHooks {
    pub projects: Arc<Projects>,
    pub tiers: Arc<crate::tiers::TierMemory>,
    pub consent: Arc<crate::consent::ConsentMemory>,
    pub queries: Arc<QueryEngine>,
}

impl ServerHooks {
    fn policy(&self, project: ProjectId) -> canopy_dsr::Result<Arc<canopy_policy::Policy>> {
        match self.projects.by_id(project) {
            Ok(Some(p)) => Ok(p.policy),
            Ok(None) => Err(DsrError::Internal("the project no longer exists".into())),
            Err(e) => Err(DsrError::Internal(e.to_string())),
        }
    }
}

impl EraseHooks for ServerHooks {
    fn suppression_hashes(
        &self,
        project: ProjectId,
        ids: &[String],
    ) -> canopy_dsr::Result<Vec<[u8; 32]>> {
        let policy = self.policy(project)?;
        Ok(ids.iter().map(|i| policy.suppression_hash(i)).collect())
    }

    fn person_row_hashes(
        &self,
        project: ProjectId,
        ids: &[String],
    ) -> canopy_dsr::Result<Vec<[u8; 32]>> {
        let policy = self.policy(project)?;
        Ok(ids.iter().map(|i| policy.tier_key(i)).collect())
    }

    fn clear_caches(&self, project: ProjectId) {
        self.projects.invalidate(project);
        self.tiers.forget(project);
        self.consent.forget(project);
        self.queries.clear_caches();
    }
}

/// Runs open requests whenever one arrives (and every few seconds, for retries), until the
/// server shuts down. The first round resumes requests a crash interrupted.
pub(crate) async fn worker(state: AppState) {
    let Some(dsr) = state.dsr.clone() else {
        return;
    };
    loop {
        if state.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let d = dsr.clone();
        match tokio::task::spawn_blocking(move || d.run_open()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(requests = n, "data-subject requests completed"),
            Ok(Err(e)) => tracing::error!(error = %e, "data-subject request worker failed"),
            Err(e) => tracing::error!(error = %e, "data-subject request worker panicked"),
        }
        crate::opendsr::deliver_callbacks(&state).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), state.dsr_wake.notified()).await;
    }
}

pub(crate) fn dsr_of(state: &AppState) -> Result<&Arc<Dsr>, ApiError> {
    state
        .dsr
        .as_ref()
        .ok_or_else(|| ApiError::Internal("data-subject requests are not enabled".into()))
}

pub(crate) async fn read_bytes(body: Body) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::BadRequest(format!("the body must be at most {MAX_BODY} bytes")))
}

pub(crate) async fn read_body(body: Body) -> Result<Value, ApiError> {
    let bytes = read_bytes(body).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))
}

fn rfc3339(ms: Option<i64>) -> Value {
    ms.and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

/// A request as the native API shows it (no identifier: only how many were given), with the
/// download link of a completed access request.
pub(crate) fn view(state: &AppState, row: &DsrRow) -> Value {
    let now_ms = state.clock.now_ms();
    let receipt = row
        .result
        .as_deref()
        .filter(|_| row.kind == "erasure")
        .and_then(|r| serde_json::from_str::<Value>(r).ok());
    let link = state
        .dsr
        .as_deref()
        .and_then(|d| crate::access::download_link(d, row));
    let open = matches!(row.status.as_str(), "pending" | "running");
    json!({
        "id": row.id,
        "kind": row.kind,
        "api": row.api,
        "regulation": row.regulation,
        "status": row.status,
        "subject_hash": row.subject_hash,
        "identifiers": row.id_count,
        "suppress": row.suppress,
        "submitted_at": rfc3339(Some(row.submitted_ms)),
        "received_at": rfc3339(Some(row.received_ms)),
        "started_at": rfc3339(row.started_ms),
        "completed_at": rfc3339(row.completed_ms),
        "due_at": rfc3339(Some(row.deadline_ms)),
        "overdue": open && now_ms > row.deadline_ms,
        "attempts": row.attempts,
        "error": row.error,
        "receipt": receipt,
        "download_url": link.as_ref().map(|(url, _)| url.clone()),
        "download_expires_at": rfc3339(link.map(|(_, e)| e)),
    })
}

/// `POST /api/v1/dsr/erasures` and `POST /api/v1/dsr/access`: validates and files a request.
pub(crate) async fn create_native(
    state: &AppState,
    headers: &HeaderMap,
    p: &ProjectParam,
    body: Body,
    kind: RequestKind,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let project = authenticate(state, headers, p.project_id.as_deref())?
        .project
        .id;
    let wire_kind = match kind {
        RequestKind::Erasure => canopy_dsr_wire::Kind::Erasure,
        RequestKind::Access => canopy_dsr_wire::Kind::Access,
    };
    let body = canopy_dsr_wire::native(&read_bytes(body).await?, wire_kind)?;
    let request = NewRequest {
        project,
        kind,
        api: "native",
        regulation: Regulation::parse(body.regulation.as_deref().unwrap_or("gdpr"))?,
        ids: body.raw_ids,
        id: body.request_id,
        submitted_ms: body.submitted_ms,
        suppress: kind == RequestKind::Erasure && body.suppress.unwrap_or(true),
        callbacks: Vec::new(),
    };
    let row = submit(state, request).await?;
    Ok((StatusCode::ACCEPTED, Json(view(state, &row))))
}

/// `POST /api/v1/dsr/erasures`.
pub(crate) async fn create_erasure(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    create_native(&state, &headers, &p, body, RequestKind::Erasure).await
}

/// Records a request off the async workers and wakes the worker.
pub(crate) async fn submit(state: &AppState, request: NewRequest) -> Result<DsrRow, ApiError> {
    let dsr = dsr_of(state)?.clone();
    let row = tokio::task::spawn_blocking(move || dsr.submit(request))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    state.dsr_wake.notify_one();
    Ok(row)
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListParams {
    project_id: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/dsr/requests`.
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let rows = dsr_of(&state)?.list(project, p.limit.unwrap_or(100))?;
    Ok(Json(
        json!({"requests": rows.iter().map(|r| view(&state, r)).collect::<Vec<_>>()}),
    ))
}

/// `GET /api/v1/dsr/requests/{id}`.
pub(crate) async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<ProjectParam>,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let row = dsr_of(&state)?.get(project, &id)?;
    Ok(Json(view(&state, &row)))
}

/// `DELETE /api/v1/dsr/requests/{id}`: cancels a request that has not started.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<ProjectParam>,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let row = dsr_of(&state)?.cancel(project, &id)?;
    Ok(Json(view(&state, &row)))
}

/// `GET /api/v1/dsr/requests/{id}/receipt`: the signed receipt of a completed erasure.
pub(crate) async fn receipt(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<ProjectParam>,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let row = dsr_of(&state)?.get(project, &id)?;
    let receipt = row
        .result
        .as_deref()
        .filter(|_| row.status == "completed" && row.kind == "erasure")
        .ok_or_else(|| {
            ApiError::Conflict(format!("the request is {}; no receipt yet", row.status))
        })?;
    let value: Value =
        serde_json::from_str(receipt).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(value))
}

/// `GET /.well-known/canopy-receipt-keys.json`.
pub(crate) async fn receipt_keys(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let key = dsr_of(&state)?.published_key();
    Ok(Json(json!({"keys": [key]})))
}
