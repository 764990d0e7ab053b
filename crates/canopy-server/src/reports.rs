//! Analytics reports over the native JSON API (issue #5): `POST /api/v1/query/funnel`,
//! `POST /api/v1/query/retention` and `POST /api/v1/query/flows`.
//! Definitions in `docs/query-semantics.md`; the operators in `canopy-analytics`.

use crate::export::{ProjectParam, authenticate};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use canopy_analytics::{
    FlowsReport, FlowsRequest, FunnelReport, FunnelRequest, RetentionReport, RetentionRequest,
};

/// `POST /api/v1/query/funnel` `{"from_ms", "to_ms", "steps": [{"event", "where"?}],
/// "window_ms", "order"?, "exclusions"?: [{"event", "after_step"}], "hold_constant"?}`.
pub(crate) async fn funnel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
    body: axum::body::Bytes,
) -> Result<Json<FunnelReport>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let mut req: FunnelRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("funnel: {e}")))?;
    req.project = project;
    Ok(Json(canopy_analytics::funnel(&state.queries, &req).await?))
}

/// `POST /api/v1/query/retention` `{"from_ms", "to_ms", "born": {"event", "where"?},
/// "returned"?: {...}, "unit": "day"|"week"|"month", "brackets", "kind"?:
/// "first_time"|"recurring", "unbounded"?}`; cohorts in the project's time zone.
pub(crate) async fn retention(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
    body: axum::body::Bytes,
) -> Result<Json<RetentionReport>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let mut req: RetentionRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("retention: {e}")))?;
    req.project = project;
    req.timezone = state.projects.control().settings(project)?.1.timezone;
    Ok(Json(
        canopy_analytics::retention(&state.queries, &req).await?,
    ))
}

/// `POST /api/v1/query/flows` `{"from_ms", "to_ms", "anchor", "events", "steps",
/// "direction"?: "after"|"before", "all_anchors"?, "keep_repeats"?}`: Sankey links.
pub(crate) async fn flows(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
    body: axum::body::Bytes,
) -> Result<Json<FlowsReport>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let mut req: FlowsRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("flows: {e}")))?;
    req.project = project;
    Ok(Json(canopy_analytics::flows(&state.queries, &req).await?))
}
