//! PostHog's capture API (`/capture`, `/batch`, `/e`, `/i/v0/e`, and `/track` or `/engage`
//! when the request is PostHog's; ingestion-and-dsr-standards.md §2): 200 `{"status":1}` (204
//! with `beacon=1`); 400/401/403/413 with `{"status","code","error"}` as Rust capture answers.
//! Invalid events are counted and skipped; the rest of the batch is kept.

use crate::ingest_track::{count_rejected, store_batch};
use crate::request::{self, RawRequest};
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use canopy_ingest::{
    PosthogParts, Reason, Rejection, check_token, decode_posthog, event_token, normalize_posthog,
    query_value,
};
use serde_json::json;

const ENDPOINT: &str = "posthog";
const EVENT_BODY_LIMIT: usize = 2 << 20;
const BATCH_BODY_LIMIT: usize = 20 << 20;

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"status": status.as_u16(), "code": code, "error": message.into()});
    (status, Json(body)).into_response()
}

fn rejection(r: &Rejection) -> Response {
    count_rejected(ENDPOINT, r.reason, 1);
    let (status, code) = match r.reason {
        Reason::BodyTooLarge | Reason::DecompressedTooLarge | Reason::EventTooLarge => {
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        }
        Reason::NoData => (StatusCode::BAD_REQUEST, "empty_batch"),
        Reason::MissingEventName => (StatusCode::BAD_REQUEST, "missing_event_name"),
        Reason::MissingDistinctId => (StatusCode::BAD_REQUEST, "missing_distinct_id"),
        Reason::BadJson | Reason::NotAnObject => (StatusCode::BAD_REQUEST, "request_parsing_error"),
        _ => (StatusCode::BAD_REQUEST, "request_decoding_error"),
    };
    error(status, code, r.message.clone())
}

pub(crate) async fn capture(State(state): State<AppState>, req: Request<Body>) -> Response {
    let batch = req.uri().path().trim_end_matches('/').ends_with("/batch");
    let limit = if batch {
        BATCH_BODY_LIMIT
    } else {
        EVENT_BODY_LIMIT
    };
    let raw = request::read(req, limit, &state.enrichment).await;
    handle(&state, &raw, false).await
}

/// `/track` and `/engage` requests that are PostHog's, detected by the caller.
pub(crate) async fn handle(state: &AppState, raw: &RawRequest, engage: bool) -> Response {
    let body = match &raw.body {
        Ok(b) => b.clone(),
        Err(r) => return rejection(r),
    };
    let parts = PosthogParts {
        query: &raw.query,
        content_type: raw.content_type.as_deref(),
        content_encoding: raw.content_encoding.as_deref(),
        body: &body,
        engage,
    };
    let decoded = match decode_posthog(parts, &state.limits) {
        Ok(d) => d,
        Err(r) => return rejection(&r),
    };
    // A batch-level key wins; otherwise every event must carry the same one.
    let token = match decoded.token.clone() {
        Some(t) => Some(t),
        None => {
            let mut tokens: Vec<String> = decoded.events.iter().filter_map(event_token).collect();
            tokens.dedup();
            if tokens.len() > 1 {
                return error(
                    StatusCode::BAD_REQUEST,
                    "multiple_tokens",
                    "events carry different project keys",
                );
            }
            tokens.pop()
        }
    };
    let Some(token) = token else {
        count_rejected(ENDPOINT, Reason::MissingToken, 1);
        return error(
            StatusCode::UNAUTHORIZED,
            "ingest_key_required",
            "a project API key is required",
        );
    };
    let token = match check_token(&token) {
        Ok(t) => t,
        Err(r) => {
            count_rejected(ENDPOINT, r.reason, 1);
            return error(StatusCode::UNAUTHORIZED, "ingest_key_required", r.message);
        }
    };
    let project = match state.projects.by_token(&token) {
        Ok(Some(p)) => p,
        Ok(None) => {
            count_rejected(ENDPOINT, Reason::UnknownToken, 1);
            return error(
                StatusCode::FORBIDDEN,
                "ingest_key_unknown",
                "unknown project API key",
            );
        }
        Err(e) => return e.into_response(),
    };
    let now = state.clock.now_ms();
    let total = decoded.events.len();
    let mut records = Vec::new();
    let mut first_error: Option<Rejection> = None;
    let mut rejected = 0;
    for ev in decoded.events {
        match normalize_posthog(ev, decoded.sent_at_ms, now, &state.limits) {
            Ok(r) => records.extend(r),
            Err(r) => {
                count_rejected(ENDPOINT, r.reason, 1);
                rejected += 1;
                first_error.get_or_insert(r);
            }
        }
    }
    if rejected == total
        && let Some(r) = &first_error
    {
        return error(
            StatusCode::BAD_REQUEST,
            match r.reason {
                Reason::MissingEventName => "missing_event_name",
                Reason::MissingDistinctId => "missing_distinct_id",
                _ => "request_parsing_error",
            },
            r.message.clone(),
        );
    }
    if let Err(e) = store_batch(state, &project, false, &raw.facts(true), records, ENDPOINT).await {
        return match e {
            ApiError::Overloaded => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "retry later",
            ),
            other => other.into_response(),
        };
    }
    if query_value(&raw.query, "beacon").as_deref() == Some("1") {
        return StatusCode::NO_CONTENT.into_response();
    }
    let mut body = json!({"status": 1});
    if rejected > 0 {
        body["rejected"] = json!(rejected);
    }
    Json(body).into_response()
}
