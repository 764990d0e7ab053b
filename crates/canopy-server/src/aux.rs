//! Harmless answers for the SDK side endpoints (reference §7), and health.

use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;
use std::sync::atomic::Ordering;

/// Mixpanel's and PostHog's `/decide` in one answer: no flags, no surveys, no recording.
pub(crate) async fn decide() -> Json<serde_json::Value> {
    Json(json!({
        "notifications": [], "config": {"enable_collect_everything": false},
        "automatic_events": false,
        "featureFlags": {}, "featureFlagPayloads": {}, "errorsWhileComputingFlags": false,
        "sessionRecording": false, "supportedCompression": ["gzip", "gzip-js"],
        "siteApps": [], "surveys": false, "toolbarParams": {}, "isAuthenticated": false
    }))
}

/// Mixpanel's `/flags` and PostHog's `/flags?v=2`: no flags.
pub(crate) async fn flags() -> Json<serde_json::Value> {
    Json(
        json!({"flags": {}, "featureFlags": {}, "featureFlagPayloads": {},
                "errorsWhileComputingFlags": false}),
    )
}

pub(crate) async fn flag_definitions() -> Json<serde_json::Value> {
    Json(json!({"flags": []}))
}

pub(crate) async fn settings() -> Json<serde_json::Value> {
    Json(json!({"sdk_config": {"config": {}}}))
}

/// Session replay is not collected: the recording is accepted and discarded.
pub(crate) async fn record() -> Json<serde_json::Value> {
    Json(json!({}))
}

pub(crate) async fn healthz() -> &'static str {
    "ok"
}

pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    if state.shutting_down.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    } else {
        "ready".into_response()
    }
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let stats = state.store.stats();
    metrics::gauge!("canopy_store_segments").set(stats.segments as f64);
    metrics::gauge!("canopy_store_segment_rows").set(stats.segment_rows as f64);
    metrics::gauge!("canopy_store_segment_bytes").set(stats.segment_bytes as f64);
    metrics::gauge!("canopy_store_tail_rows").set(stats.tail_rows as f64);
    metrics::gauge!("canopy_store_flushes").set(stats.flushes as f64);
    metrics::gauge!("canopy_store_compactions").set(stats.compactions as f64);
    metrics::gauge!("canopy_query_column_cache_bytes")
        .set(state.queries.column_cache_bytes() as f64);
    match &state.metrics {
        Some(h) => ([("content-type", "text/plain; version=0.0.4")], h.render()).into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled").into_response(),
    }
}
