//! Mixpanel's lookups for query builders (reference §15.1): `events/names` — the most common
//! event names — and `events/properties/values` — the most common values of a property —
//! over the last 31 days, as Mixpanel computes them.

use crate::export::authenticate;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

const WINDOW_MS: i64 = 31 * 86_400_000;
const DEFAULT_LIMIT: usize = 255;
const MAX_LIMIT: usize = 10_000;

#[derive(Debug, Deserialize)]
pub(crate) struct LookupParams {
    project_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    limit: Option<usize>,
    event: Option<String>,
    name: Option<String>,
}

fn check(p: &LookupParams) -> Result<usize, ApiError> {
    if let Some(t) = p.kind.as_deref()
        && !matches!(t, "general" | "unique" | "average")
    {
        return Err(ApiError::BadRequest(format!(
            "type must be general, unique or average (got {t:?})"
        )));
    }
    Ok(p.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT))
}

/// `GET /api/query/events/names` (and `/api/2.0/…`): `["name", …]`, most common first.
pub(crate) async fn event_names(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<LookupParams>,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let limit = check(&p)?;
    let now = state.clock.now_ms();
    let names = state
        .queries
        .event_names(project, (now - WINDOW_MS, now + 1), limit)
        .await?;
    Ok(Json(Value::from(
        names.into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
    )))
}

/// `GET /api/query/events/properties/values` (and `/api/2.0/…`) with `name` (and optionally
/// `event`): `["value", …]`, most common first.
pub(crate) async fn property_values(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<LookupParams>,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let limit = check(&p)?;
    let name = p
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::BadRequest("name is required".into()))?;
    let now = state.clock.now_ms();
    let values = state
        .queries
        .property_values(
            project,
            (now - WINDOW_MS, now + 1),
            p.event.as_deref().filter(|e| !e.is_empty()),
            name,
            limit,
        )
        .await?;
    Ok(Json(Value::from(
        values.into_iter().map(|(v, _)| v).collect::<Vec<_>>(),
    )))
}
