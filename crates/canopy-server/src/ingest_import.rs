//! `/import`: authenticated historical import (reference §6).

use crate::AppState;
use crate::ingest_track::{count_rejected, process};
use crate::request;
use crate::respond::ingest_response;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use canopy_ingest::{Endpoint, EventContext, Params, Reason, normalize_event};
use canopy_types::Record;
use serde_json::{Value, json};

pub(crate) async fn import(State(state): State<AppState>, req: Request<Body>) -> Response {
    let raw = request::read(req, state.limits.max_body_bytes, &state.enrichment).await;
    // `project_id` and `strict` come from the query string (the SDKs put them there).
    let query = Params::from_query(&raw.query);
    let project = match state.projects.authenticate(
        raw.authorization.as_deref(),
        query.project_id.as_deref(),
        state.admin_token.as_deref().map(String::as_str),
        true,
    ) {
        Ok(p) => p,
        Err(e) => {
            count_rejected("import", Reason::UnknownToken, 1);
            return e.into_response();
        }
    };
    let limits = state.limits.clone();
    let strict = query.strict;
    let normalize = move |item: Value, now_ms: i64| {
        let ctx = EventContext {
            endpoint: Endpoint::Import { strict },
            now_ms,
            track_max_age_ms: 0,
            limits: &limits,
        };
        Ok(normalize_event(item, &ctx)?.map(|(t, e)| (t, Record::Event(e))))
    };
    let (params, outcome) = match process(&state, &raw, "import", &normalize, Some(&project)).await
    {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    if let Some(f) = &outcome.fatal {
        let status = if f.reason == Reason::BodyTooLarge || f.reason == Reason::DecompressedTooLarge
        {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        if strict || status == StatusCode::PAYLOAD_TOO_LARGE || f.reason == Reason::TooManyItems {
            let body = json!({"code": status.as_u16(), "error": f.message, "status": status.canonical_reason(), "num_records_imported": 0});
            return (status, axum::Json(body)).into_response();
        }
    }
    if !strict {
        return ingest_response(&params, &outcome);
    }
    if outcome.rejected.is_empty() {
        return (
            StatusCode::OK,
            axum::Json(
                json!({"code": 200, "num_records_imported": outcome.accepted, "status": "OK"}),
            ),
        )
            .into_response();
    }
    let failed: Vec<Value> = outcome
        .rejected
        .iter()
        .map(|(i, r)| json!({"index": i, "field": r.field, "message": r.message, "reason": r.reason.label()}))
        .collect();
    let body = json!({
        "code": 400,
        "error": "some data points in the request failed validation",
        "status": "Bad Request",
        "num_records_imported": outcome.accepted,
        "failed_records": failed,
    });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}
