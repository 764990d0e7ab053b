//! Analytics reports over the native JSON API (issue #5): `POST /api/v1/query/funnel`,
//! `POST /api/v1/query/retention`, `POST /api/v1/query/flows` and `POST /api/v1/query/insights`.
//! Definitions in `docs/query-semantics.md`; the operators in `canopy-analytics`.

use crate::export::{ProjectParam, authenticate};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use canopy_analytics::{
    FlowsReport, FlowsRequest, FunnelReport, FunnelRequest, InsightsReport, InsightsRequest,
    RetentionReport, RetentionRequest,
};
use canopy_types::ProjectId;

/// The project a report request is authenticated for, and its JSON body.
fn report_request<T: serde::de::DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    p: &ProjectParam,
    body: &[u8],
    report: &str,
) -> Result<(ProjectId, T), ApiError> {
    let project = authenticate(state, headers, p.project_id.as_deref())?
        .project
        .id;
    let req =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("{report}: {e}")))?;
    Ok((project, req))
}

/// `POST /api/v1/query/funnel` `{"from_ms", "to_ms", "steps": [{"event", "where"?}],
/// "window_ms", "order"?, "exclusions"?: [{"event", "after_step"}], "hold_constant"?,
/// "breakdown"?: {"property" | "cohort", "limit"?}, "unit"?: "day"|"week"|"month"}`.
pub(crate) async fn funnel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
    body: axum::body::Bytes,
) -> Result<Json<FunnelReport>, ApiError> {
    let (project, mut req): (_, FunnelRequest) =
        report_request(&state, &headers, &p, &body, "funnel")?;
    req.project = project;
    req.timezone = state.projects.control().settings(project)?.1.timezone;
    req.cohort_members = crate::cohorts::members_of(&state, project, req.cohort.as_ref()).await?;
    if let Some(id) = req.breakdown.as_ref().and_then(|b| b.cohort) {
        req.breakdown_cohort = crate::cohorts::resolve(&state, project, &[id])
            .await?
            .remove(&id);
    }
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
    let (project, mut req): (_, RetentionRequest) =
        report_request(&state, &headers, &p, &body, "retention")?;
    req.project = project;
    req.timezone = state.projects.control().settings(project)?.1.timezone;
    req.cohort_members = crate::cohorts::members_of(&state, project, req.cohort.as_ref()).await?;
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
    let (project, mut req): (_, FlowsRequest) =
        report_request(&state, &headers, &p, &body, "flows")?;
    req.project = project;
    req.cohort_members = crate::cohorts::members_of(&state, project, req.cohort.as_ref()).await?;
    Ok(Json(canopy_analytics::flows(&state.queries, &req).await?))
}

/// `POST /api/v1/query/insights` `{"from_ms", "to_ms", "events": [{"event", "where"?}],
/// "measure"?: {"type", "stat"?, "property"?, "source"?}, "unit"?, "filters"?, "where"?,
/// "breakdown"?: {"property", "source"?, "limit"?}, "compare_previous"?}`; buckets in the
/// project's time zone.
pub(crate) async fn insights(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
    body: axum::body::Bytes,
) -> Result<Json<InsightsReport>, ApiError> {
    let (project, mut req): (_, InsightsRequest) =
        report_request(&state, &headers, &p, &body, "insights")?;
    req.project = project;
    req.timezone = state.projects.control().settings(project)?.1.timezone;
    req.cohorts = crate::cohorts::resolve(&state, project, &req.cohort_ids()).await?;
    Ok(Json(
        canopy_analytics::insights(&state.queries, &req).await?,
    ))
}
