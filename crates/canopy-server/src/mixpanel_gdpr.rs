//! Mixpanel's GDPR / CCPA API v3 (mixpanel-api.md §12.4) over Canopy's request queue:
//! `POST /api/app/data-deletions/v3.0/?token=` creates an erasure, `GET …/{tracking_id}` polls
//! it, `DELETE …/{tracking_id}` (or `DELETE …/` with `{"distinct_ids"}`) cancels it while it
//! is pending. `POST /api/app/data-retrievals/v3.0/` creates an access request whose status,
//! once SUCCESS, carries the download link of the person's bundle in `result` (and `results`).
//! Statuses: PENDING (not started, cancellable), STARTED, SUCCESS, FAILURE, REVOKED
//! (cancelled).

use crate::dsr::{dsr_of, read_bytes, submit};
use crate::projects::ResolvedProject;
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use canopy_control::DsrRow;
use canopy_dsr::{NewRequest, Regulation, RequestKind};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
pub(crate) struct TokenParam {
    token: Option<String>,
}

fn auth(
    state: &AppState,
    headers: &HeaderMap,
    p: &TokenParam,
) -> Result<ResolvedProject, ApiError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let admin = state.admin_token.as_deref().map(String::as_str);
    state
        .projects
        .authenticate_gdpr(authorization, p.token.as_deref(), admin)
}

fn mixpanel_status(status: &str) -> &'static str {
    match status {
        "pending" => "PENDING",
        "running" => "STARTED",
        "completed" => "SUCCESS",
        "failed" => "FAILURE",
        "cancelled" => "REVOKED",
        _ => "UNKNOWN",
    }
}

fn date_requested(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}

/// One request in Mixpanel's shape (both `task_id` and `tracking_id`, both `result` and
/// `results` for the link, as its two documents disagree): a completed retrieval's download
/// link, a completed deletion's receipt.
fn task(state: &AppState, headers: &HeaderMap, row: &DsrRow, ids: Vec<String>) -> Value {
    let download = state
        .dsr
        .as_deref()
        .and_then(|d| crate::access::download_link(d, row));
    let receipt = match download {
        Some((path, _)) => crate::access::absolute_url(headers, &path),
        None if row.status == "completed" && row.kind == "erasure" => crate::access::absolute_url(
            headers,
            &format!(
                "/api/v1/dsr/requests/{}/receipt?project_id={}",
                row.id, row.project.0
            ),
        ),
        None => String::new(),
    };
    json!({
        "task_id": row.id,
        "tracking_id": row.id,
        "status": mixpanel_status(&row.status),
        "result": receipt,
        "results": receipt,
        "requesting_user": "api",
        "compliance_type": row.regulation.to_ascii_uppercase(),
        "project_id": row.project.0,
        "date_requested": date_requested(row.received_ms),
        "distinct_id_count": row.id_count,
        "distinct_ids": ids,
        "destination_url": Value::Null,
    })
}

async fn create(
    state: AppState,
    headers: HeaderMap,
    p: TokenParam,
    body: Body,
    kind: RequestKind,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let project = auth(&state, &headers, &p)?.project.id;
    let body = canopy_dsr_wire::mixpanel_gdpr(&read_bytes(body).await?)?;
    let ids = body.raw_ids;
    let request = NewRequest {
        project,
        kind,
        api: "mixpanel",
        regulation: Regulation::parse(body.regulation.as_deref().unwrap_or("gdpr"))?,
        ids: ids.clone(),
        id: None,
        submitted_ms: None,
        suppress: kind == RequestKind::Erasure,
        callbacks: Vec::new(),
    };
    let row = submit(&state, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"status": "ok", "results": task(&state, &headers, &row, ids)})),
    ))
}

/// `POST /api/app/data-deletions/v3.0/`.
pub(crate) async fn create_deletion(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<TokenParam>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    create(state, headers, p, body, RequestKind::Erasure).await
}

/// `POST /api/app/data-retrievals/v3.0/`.
pub(crate) async fn create_retrieval(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<TokenParam>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    create(state, headers, p, body, RequestKind::Access).await
}

/// `GET /api/app/data-deletions/v3.0/{tracking_id}` and `…/data-retrievals/v3.0/{tracking_id}`.
pub(crate) async fn task_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(tracking_id): Path<String>,
    Query(p): Query<TokenParam>,
) -> Result<Json<Value>, ApiError> {
    let project = auth(&state, &headers, &p)?.project.id;
    let dsr = dsr_of(&state)?;
    let row = dsr.get(project, &tracking_id)?;
    let ids = dsr.open_ids(&row)?;
    Ok(Json(
        json!({"status": "ok", "results": task(&state, &headers, &row, ids)}),
    ))
}

/// `DELETE /api/app/data-deletions/v3.0/{tracking_id}` → 204, or 405 once started.
pub(crate) async fn cancel_deletion(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(tracking_id): Path<String>,
    Query(p): Query<TokenParam>,
) -> Result<Response, ApiError> {
    let project = auth(&state, &headers, &p)?.project.id;
    match dsr_of(&state)?.cancel(project, &tracking_id) {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(canopy_dsr::DsrError::Conflict(m)) => Err(ApiError::NotAllowed(m)),
        Err(e) => Err(e.into()),
    }
}

/// `DELETE /api/app/data-deletions/v3.0/` with `{"distinct_ids": [...]}`: cancels the pending
/// deletion of exactly these ids.
pub(crate) async fn cancel_deletion_by_ids(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<TokenParam>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let project = auth(&state, &headers, &p)?.project.id;
    let ids = canopy_dsr_wire::mixpanel_gdpr(&read_bytes(body).await?)?.raw_ids;
    let cancelled = dsr_of(&state)?.cancel_by_ids(project, ids)?;
    match cancelled.first() {
        Some(id) => Ok(Json(
            json!({"status": "ok", "results": {"task_id": id, "cancelled": cancelled}}),
        )),
        None => Err(ApiError::NotAllowed(
            "no pending deletion of these distinct_ids can be cancelled".into(),
        )),
    }
}
