//! OpenDSR 2.0 (ingestion-and-dsr-standards.md §3): Canopy as the Processor. Routes under
//! `/opendsr/v1/` (the major version first, as the spec asks), with the legacy OpenGDPR
//! collection name `opengdpr_requests` honoured too:
//!
//! - `GET /opendsr/v1/discovery` — capabilities and the signing key's URL (public);
//! - `POST /opendsr/v1/requests` — create (201); `GET …/requests/{id}` — status;
//!   `DELETE …/requests/{id}` — cancel while pending (202);
//! - status callbacks to every `status_callback_urls` entry on each state change, from a
//!   durable outbox, retried with backoff.
//!
//! Every response and callback carries `X-OpenDSR-Processor-Domain` and `X-OpenDSR-Signature`:
//! base64 Ed25519 over the raw body with the receipt key, published as a PEM public key at
//! `/opendsr/v1/certificate.pem`. (The spec asks for a CA-issued X.509 certificate; Canopy
//! publishes its own key instead — see docs/dsr.md.) Authentication is the project's API
//! secret over HTTP Basic, as mParticle's implementation does.

use crate::dsr::{dsr_of, submit};
use crate::export::authenticate;
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use canopy_control::DsrRow;
use canopy_dsr::{NewRequest, Regulation, RequestKind};
use canopy_types::ProjectId;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

const API_VERSION: &str = "2.0";
/// Delivery attempts before a callback is given up (about a day and a half of backoff).
const MAX_CALLBACK_ATTEMPTS: u32 = 15;

fn invalid(reason: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::OpenDsr {
        code: 400,
        reason,
        message: message.into(),
    }
}

fn opendsr_status(status: &str) -> &'static str {
    match status {
        "pending" => "pending",
        "running" | "failed" => "in_progress",
        "completed" => "completed",
        "cancelled" => "cancelled",
        _ => "pending",
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A JSON body signed the OpenDSR way.
pub(crate) fn signed(
    state: &AppState,
    status: StatusCode,
    body: &Value,
) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.to_string()))?;
    let signature = dsr_of(state)?.sign_raw(&bytes);
    let mut resp = (status, bytes).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in signature_headers(state, &signature) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    Ok(resp)
}

/// Both the v2 headers and the legacy OpenGDPR names, which v2 says must still be honoured.
fn signature_headers(state: &AppState, signature: &str) -> [(&'static str, String); 4] {
    let domain = state.opendsr_domain.as_str().to_string();
    [
        ("x-opendsr-processor-domain", domain.clone()),
        ("x-opendsr-signature", signature.to_string()),
        ("x-opengdpr-processor-domain", domain),
        ("x-opengdpr-signature", signature.to_string()),
    ]
}

/// `GET /opendsr/v1/discovery`.
pub(crate) async fn discovery(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let body = json!({
        "api_version": API_VERSION,
        "supported_identities": [
            {"identity_type": "controller_customer_id", "identity_format": "raw"},
            {"identity_type": "controller_customer_id", "identity_format": "sha256"},
        ],
        "supported_subject_request_types": ["erasure", "access", "portability"],
        "processor_certificate": format!("https://{host}/opendsr/v1/certificate.pem"),
    });
    signed(&state, StatusCode::OK, &body)
}

/// `GET /opendsr/v1/certificate.pem`: the public key responses and callbacks are signed with.
pub(crate) async fn certificate(State(state): State<AppState>) -> Result<Response, ApiError> {
    let pem = dsr_of(&state)?.public_key_pem();
    Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response())
}

/// The raw ids behind the request's identities: raw values as given, SHA-256 hex digests
/// matched against every id the project holds.
fn identities(
    state: &AppState,
    project: ProjectId,
    mut raw: Vec<String>,
    hashed: Vec<String>,
) -> Result<Vec<String>, ApiError> {
    if !hashed.is_empty() {
        let by_hash: HashMap<String, String> = state
            .identity
            .all_raw_ids(project)?
            .into_iter()
            .map(|id| (hex::encode(Sha256::digest(id.as_bytes())), id))
            .collect();
        for h in hashed {
            // A digest nobody matches stays in the request as itself: it then erases nothing,
            // and the receipt says so.
            raw.push(by_hash.get(&h).cloned().unwrap_or(h));
        }
    }
    Ok(raw)
}

/// `POST /opendsr/v1/requests`.
pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let project = authenticate(&state, &headers, None)?.project.id;
    let bytes = axum::body::to_bytes(body, crate::dsr::MAX_BODY)
        .await
        .map_err(|_| invalid("too_large", "the request body is too large"))?;
    let request = canopy_dsr_wire::opendsr(&bytes).map_err(|e| invalid(e.reason, e.message))?;
    let kind = match request.kind {
        Some(canopy_dsr_wire::Kind::Access) => RequestKind::Access,
        _ => RequestKind::Erasure,
    };
    let regulation = Regulation::parse(request.regulation.as_deref().unwrap_or("gdpr"))?;
    let st = state.clone();
    let (raw, hashed) = (request.raw_ids, request.sha256_ids);
    let ids = tokio::task::spawn_blocking(move || identities(&st, project, raw, hashed))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let row = submit(
        &state,
        NewRequest {
            project,
            kind,
            api: "opendsr",
            regulation,
            ids,
            id: request.request_id,
            submitted_ms: request.submitted_ms,
            suppress: kind == RequestKind::Erasure,
            callbacks: request.callbacks,
        },
    )
    .await
    .map_err(|e| match e {
        ApiError::BadRequest(m) => invalid("invalid_request", m),
        ApiError::Conflict(m) => invalid("duplicate_subject_request_id", m),
        other => other,
    })?;
    let body = json!({
        "controller_id": row.project.0.to_string(),
        "expected_completion_time": rfc3339(row.deadline_ms),
        "received_time": rfc3339(row.received_ms),
        "encoded_request": base64::engine::general_purpose::STANDARD.encode(&bytes),
        "subject_request_id": row.id,
        "api_version": API_VERSION,
    });
    signed(&state, StatusCode::CREATED, &body)
}

/// Where an access request's bundle can be fetched, once it is ready.
fn results_url(state: &AppState, row: &DsrRow, base: &str) -> Option<String> {
    let (path, _) = crate::access::download_link(dsr_of(state).ok()?, row)?;
    Some(format!("{base}{path}"))
}

fn status_body(state: &AppState, row: &DsrRow, base: &str) -> Value {
    let mut body = json!({
        "controller_id": row.project.0.to_string(),
        "expected_completion_time": rfc3339(row.deadline_ms),
        "subject_request_id": row.id,
        "request_status": opendsr_status(&row.status),
        "api_version": API_VERSION,
    });
    if let Some(url) = results_url(state, row, base) {
        body["results_url"] = json!(url);
        body["results_count"] = json!(1);
    }
    body
}

/// `GET /opendsr/v1/requests/{id}`.
pub(crate) async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let project = authenticate(&state, &headers, None)?.project.id;
    let row = dsr_of(&state)?.get(project, &id.to_ascii_lowercase())?;
    let base = crate::access::absolute_url(&headers, "");
    signed(&state, StatusCode::OK, &status_body(&state, &row, &base))
}

/// `DELETE /opendsr/v1/requests/{id}`: 202 while pending.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let project = authenticate(&state, &headers, None)?.project.id;
    let row = dsr_of(&state)?
        .cancel(project, &id.to_ascii_lowercase())
        .map_err(|e| match e {
            canopy_dsr::DsrError::Conflict(m) => ApiError::OpenDsr {
                code: 409,
                reason: "request_not_pending",
                message: m,
            },
            other => other.into(),
        })?;
    let body = json!({
        "controller_id": row.project.0.to_string(),
        "received_time": rfc3339(row.received_ms),
        "subject_request_id": row.id,
        "api_version": API_VERSION,
    });
    signed(&state, StatusCode::ACCEPTED, &body)
}

/// Delivers the status callbacks that are due; each signed, retried with backoff on failure.
pub(crate) async fn deliver_callbacks(state: &AppState) {
    let Ok(dsr) = dsr_of(state) else {
        return;
    };
    let control = state.projects.control().clone();
    let now = state.clock.now_ms();
    let due = match control.dsr_due_callbacks(now, 100) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "reading the callback outbox failed");
            return;
        }
    };
    let client = &state.http;
    for cb in due {
        let Ok(Some(row)) = control.dsr(None, &cb.request_id) else {
            continue;
        };
        let base = format!("https://{}", state.opendsr_domain);
        let mut body = status_body(state, &row, &base);
        body["request_status"] = json!(opendsr_status(&cb.status));
        body["status_callback_url"] = json!(cb.url);
        let Ok(bytes) = serde_json::to_vec(&body) else {
            continue;
        };
        let signature = dsr.sign_raw(&bytes);
        let mut req = client
            .post(&cb.url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(bytes);
        for (name, value) in signature_headers(state, &signature) {
            req = req.header(name, value);
        }
        let delivered = matches!(req.send().await, Ok(r) if r.status().is_success());
        let attempts = cb.attempts + 1;
        let give_up = !delivered && attempts >= MAX_CALLBACK_ATTEMPTS;
        if give_up {
            tracing::warn!(request = %cb.request_id, attempts, "status callback given up");
        }
        let backoff_ms = (30_000i64 << attempts.min(12)).min(6 * 3_600_000);
        if let Err(e) =
            control.dsr_callback_attempted(cb.id, delivered || give_up, now + backoff_ms)
        {
            tracing::error!(error = %e, "recording a callback attempt failed");
        }
    }
}
