//! `/engage` (user profiles) and `/groups` (group profiles): stored as profile updates.

use crate::AppState;
use crate::ingest_track::process;
use crate::request;
use crate::respond::ingest_response;
use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use canopy_ingest::{ProfileKind, normalize_profile};
use canopy_types::Record;
use serde_json::Value;

pub(crate) async fn engage(State(state): State<AppState>, req: Request<Body>) -> Response {
    profiles(state, req, ProfileKind::User, "engage").await
}

pub(crate) async fn groups(State(state): State<AppState>, req: Request<Body>) -> Response {
    profiles(state, req, ProfileKind::Group, "groups").await
}

async fn profiles(
    state: AppState,
    req: Request<Body>,
    kind: ProfileKind,
    endpoint: &'static str,
) -> Response {
    let raw = request::read(req, state.limits.max_body_bytes, &state.enrichment).await;
    if kind == ProfileKind::User
        && let Ok(body) = &raw.body
        && canopy_ingest::looks_like_posthog(&raw.query, body)
    {
        return crate::ingest_posthog::handle(&state, &raw, true).await;
    }
    let limits = state.limits.clone();
    let normalize = move |item: Value, now_ms: i64| {
        let (token, update) = normalize_profile(item, kind, now_ms, &limits)?;
        Ok(Some((token, Record::Profile(update))))
    };
    match process(&state, &raw, endpoint, &normalize, None).await {
        Ok((params, outcome)) => ingest_response(&params, &outcome),
        Err(e) => e.into_response(),
    }
}
