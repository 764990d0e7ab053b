//! Segment's HTTP Tracking API (`/v1/*`, ingestion-and-dsr-standards.md §1): the write key
//! in every form the SDKs use, 200 `{"success":true}` for accepted input (invalid messages
//! are counted and skipped, the rest of the batch is kept), 400 with `code` and `message` for
//! an unreadable or oversized body, and the settings document analytics.js fetches.

use crate::ingest_track::{count_rejected, store_batch};
use crate::request::{self, RawRequest};
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use canopy_ingest::{
    Rejection, SEGMENT_MAX_BATCH_BYTES as MAX_BATCH_BYTES, decode_segment, normalize_segment,
    query_value, type_of_path,
};
use serde_json::{Value, json};

const ENDPOINT: &str = "segment";

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"success": false, "code": code, "message": message.into()})),
    )
        .into_response()
}

fn rejection(r: &Rejection) -> Response {
    count_rejected(ENDPOINT, r.reason, 1);
    let status = if r.reason == canopy_ingest::Reason::BodyTooLarge {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        StatusCode::BAD_REQUEST
    };
    error(status, r.reason.label(), r.message.clone())
}

/// The write key: body `writeKey`, HTTP Basic (`key:`), `X-Write-Key`, `?writekey=`, or a
/// Bearer key (Jitsu; Segment's OAuth tokens come with the key in the body, which wins).
fn write_key(body_key: Option<String>, raw: &RawRequest, headers: &HeaderMap) -> Option<String> {
    if body_key.is_some() {
        return body_key;
    }
    if let Some(auth) = &raw.authorization {
        if let Some(b) = auth.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok());
            if let Some(d) = decoded {
                let user = d.split_once(':').map_or(d.as_str(), |(u, _)| u);
                if !user.is_empty() {
                    return Some(user.to_string());
                }
            }
        }
        if let Some(b) = auth.strip_prefix("Bearer ") {
            return Some(b.trim().to_string());
        }
    }
    if let Some(k) = headers.get("x-write-key").and_then(|v| v.to_str().ok()) {
        return Some(k.to_string());
    }
    query_value(&raw.query, "writekey").or_else(|| query_value(&raw.query, "writeKey"))
}

pub(crate) async fn call(
    State(state): State<AppState>,
    Path(call): Path<String>,
    req: Request<Body>,
) -> Response {
    let batch = matches!(call.as_str(), "batch" | "b");
    let kind = type_of_path(&call);
    if !batch && kind.is_none() {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "unknown Segment endpoint",
        );
    }
    let headers = req.headers().clone();
    let raw = request::read(
        req,
        MAX_BATCH_BYTES.max(state.limits.max_body_bytes),
        &state.enrichment,
    )
    .await;
    let body = match &raw.body {
        Ok(b) => b.clone(),
        Err(r) => return rejection(r),
    };
    let decoded = match decode_segment(&body, kind, &state.limits) {
        Ok(d) => d,
        Err(r) => return rejection(&r),
    };
    let Some(key) = write_key(decoded.write_key.clone(), &raw, &headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing_write_key",
            "a write key is required",
        );
    };
    let project = match state.projects.by_token(&key) {
        Ok(Some(p)) => p,
        Ok(None) => {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_write_key",
                "unknown write key",
            );
        }
        Err(e) => return e.into_response(),
    };
    let now = state.clock.now_ms();
    let mut records = Vec::new();
    let mut rejected = Vec::new();
    for (i, m) in decoded.messages.into_iter().enumerate() {
        match normalize_segment(m, project.id_merge, decoded.sent_at_ms, now, &state.limits) {
            Ok(r) => records.extend(r),
            Err(r) => {
                count_rejected(ENDPOINT, r.reason, 1);
                rejected.push(json!({"index": i, "code": r.reason.label(), "message": r.message}));
            }
        }
    }
    if let Err(e) = store_batch(&state, &project, false, &raw.facts(true), records, ENDPOINT).await
    {
        return e.into_response();
    }
    let mut body = json!({"success": true});
    if !rejected.is_empty() {
        body["rejected"] = Value::Array(rejected);
    }
    Json(body).into_response()
}

/// `GET /v1/projects/{writeKey}/settings`: what analytics.js needs to send here.
pub(crate) async fn settings(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if state.projects.by_token(&key)?.is_none() {
        return Err(ApiError::NotFound);
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let io = json!({"apiKey": key, "apiHost": format!("{host}/v1"), "protocol": "http",
                    "addBundledMetadata": true, "unbundledIntegrations": []});
    Ok(Json(json!({
        "integrations": {"Segment.io": io},
        "plan": {"track": {"__default": {"enabled": true, "integrations": {}}},
                 "identify": {"__default": {"enabled": true}},
                 "group": {"__default": {"enabled": true}}},
        "edgeFunction": {},
        "analyticsNextEnabled": true,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0.0},
        "legacyVideoPluginsEnabled": false,
        "remotePlugins": []
    }))
    .into_response())
}
