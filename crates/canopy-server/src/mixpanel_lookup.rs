//! Mixpanel's lookups for query builders (reference §15.1): `events/names` — the most common
//! event names — and `events/properties/values` — the most common values of a property —
//! over the last 31 days, as Mixpanel computes them.

use crate::export::authenticate;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use canopy_types::ProjectId;
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

/// The project, the row limit and the last 31 days, once the parameters are checked.
fn lookup(
    state: &AppState,
    headers: &HeaderMap,
    p: &LookupParams,
) -> Result<(ProjectId, usize, (i64, i64)), ApiError> {
    let project = authenticate(state, headers, p.project_id.as_deref())?
        .project
        .id;
    crate::mixpanel_query::measure(p.kind.as_deref())?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let now = state.clock.now_ms();
    Ok((project, limit, (now - WINDOW_MS, now + 1)))
}

fn names_only(pairs: Vec<(String, u64)>) -> Json<Value> {
    Json(Value::from(
        pairs.into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
    ))
}

/// `GET /api/query/events/names` (and `/api/2.0/…`): `["name", …]`, most common first.
pub(crate) async fn event_names(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<LookupParams>,
) -> Result<Json<Value>, ApiError> {
    let (project, limit, range) = lookup(&state, &headers, &p)?;
    Ok(names_only(
        state.queries.event_names(project, range, limit).await?,
    ))
}

/// `GET /api/query/events/properties/values` (and `/api/2.0/…`) with `name` (and optionally
/// `event`): `["value", …]`, most common first.
pub(crate) async fn property_values(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<LookupParams>,
) -> Result<Json<Value>, ApiError> {
    let (project, limit, range) = lookup(&state, &headers, &p)?;
    let name = p
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::BadRequest("name is required".into()))?;
    let values = state
        .queries
        .property_values(
            project,
            range,
            p.event.as_deref().filter(|e| !e.is_empty()),
            name,
            limit,
        )
        .await?;
    Ok(names_only(values))
}
