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
use canopy_report_wire::{Definition, FlowsQuery, FunnelQuery, InsightsQuery, RetentionQuery};
use canopy_types::ProjectId;

/// The project a report request is authenticated for, and its definition, parsed and checked.
fn report_request<D: Definition>(
    state: &AppState,
    headers: &HeaderMap,
    p: &ProjectParam,
    body: &[u8],
) -> Result<(ProjectId, D), ApiError> {
    let project = authenticate(state, headers, p.project_id.as_deref())?
        .project
        .id;
    Ok((project, canopy_report_wire::parse(body)?))
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
    let (project, query): (_, FunnelQuery) = report_request(&state, &headers, &p, &body)?;
    let breakdown_cohort = match query.breakdown.as_ref().and_then(|b| b.cohort) {
        Some(id) => crate::cohorts::resolve(&state, project, &[id])
            .await?
            .remove(&id),
        None => None,
    };
    let req = FunnelRequest {
        project,
        timezone: state.projects.control().settings(project)?.1.timezone,
        cohort_members: crate::cohorts::members_of(&state, project, query.cohort.as_ref()).await?,
        breakdown_cohort,
        query,
    };
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
    let (project, query): (_, RetentionQuery) = report_request(&state, &headers, &p, &body)?;
    let req = RetentionRequest {
        project,
        timezone: state.projects.control().settings(project)?.1.timezone,
        cohort_members: crate::cohorts::members_of(&state, project, query.cohort.as_ref()).await?,
        query,
    };
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
    let (project, query): (_, FlowsQuery) = report_request(&state, &headers, &p, &body)?;
    let req = FlowsRequest {
        project,
        cohort_members: crate::cohorts::members_of(&state, project, query.cohort.as_ref()).await?,
        query,
    };
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
    let (project, query): (_, InsightsQuery) = report_request(&state, &headers, &p, &body)?;
    let req = InsightsRequest {
        project,
        timezone: state.projects.control().settings(project)?.1.timezone,
        cohorts: crate::cohorts::resolve(&state, project, &query.cohort_ids()).await?,
        query,
        drop_other: false,
    };
    Ok(Json(
        canopy_analytics::insights(&state.queries, &req).await?,
    ))
}
