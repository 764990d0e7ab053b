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
/// "window_ms", "order"?, "exclusions"?: [{"event", "after_step"}], "hold_constant"?}`.
pub(crate) async fn funnel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
    body: axum::body::Bytes,
) -> Result<Json<FunnelReport>, ApiError> {
    let (project, mut req): (_, FunnelRequest) =
        report_request(&state, &headers, &p, &body, "funnel")?;
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
    let (project, mut req): (_, RetentionRequest) =
        report_request(&state, &headers, &p, &body, "retention")?;
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
    let (project, mut req): (_, FlowsRequest) =
        report_request(&state, &headers, &p, &body, "flows")?;
    req.project = project;
    Ok(Json(canopy_analytics::flows(&state.queries, &req).await?))
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct MixpanelRetentionParams {
    project_id: Option<String>,
    from_date: Option<String>,
    to_date: Option<String>,
    retention_type: Option<String>,
    born_event: Option<String>,
    event: Option<String>,
    born_where: Option<String>,
    #[serde(rename = "where")]
    where_expr: Option<String>,
    interval_count: Option<usize>,
    unit: Option<String>,
    unbounded_retention: Option<String>,
}

/// Mixpanel's `GET /api/query/retention` (and `/api/2.0/retention`): `{"<cohort date>":
/// {"counts": [...], "first": n}}`. Dates are whole UTC days, as in the export API.
pub(crate) async fn mixpanel_retention(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<MixpanelRetentionParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use canopy_analytics::StepDef;
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let need = |v: Option<String>, name: &str| {
        v.filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ApiError::BadRequest(format!("{name} is required")))
    };
    let from_ms = crate::export::day_start_ms(&need(p.from_date, "from_date")?, "from_date")?;
    let to_ms = crate::export::day_start_ms(&need(p.to_date, "to_date")?, "to_date")? + 86_400_000;
    let kind = match p.retention_type.as_deref().unwrap_or("birth") {
        "birth" => "first_time",
        "compounded" => "recurring",
        other => {
            return Err(ApiError::BadRequest(format!(
                "retention_type must be birth or compounded (got {other:?})"
            )));
        }
    };
    let born = StepDef {
        event: need(p.born_event, "born_event")?,
        where_expr: p.born_where,
    };
    let returned = p.event.map(|event| StepDef {
        event,
        where_expr: p.where_expr,
    });
    let req = RetentionRequest {
        project,
        timezone: "UTC".into(),
        from_ms,
        to_ms,
        born,
        returned,
        unit: p.unit.unwrap_or_else(|| "day".into()),
        brackets: p.interval_count.unwrap_or(1),
        kind: Some(kind.into()),
        unbounded: p.unbounded_retention.as_deref() == Some("true"),
    };
    let report = canopy_analytics::retention(&state.queries, &req).await?;
    let mut out = serde_json::Map::new();
    for c in report.cohorts {
        out.insert(
            c.date,
            serde_json::json!({"counts": c.counts, "first": c.people}),
        );
    }
    Ok(Json(serde_json::Value::Object(out)))
}
