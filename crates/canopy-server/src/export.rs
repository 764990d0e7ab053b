//! `GET /api/2.0/export`: Mixpanel's raw export, streamed as NDJSON (reference §14).

use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use canopy_query::ExportRequest;
use chrono::NaiveDate;
use futures::StreamExt;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(crate) struct ExportParams {
    from_date: Option<String>,
    to_date: Option<String>,
    event: Option<String>,
    #[serde(rename = "where")]
    where_expr: Option<String>,
    limit: Option<usize>,
    time_in_ms: Option<String>,
    project_id: Option<String>,
}

const MAX_LIMIT: usize = 100_000;

#[derive(Debug, Deserialize)]
pub(crate) struct ProjectParam {
    pub(crate) project_id: Option<String>,
}

/// `GET /api/v1/profile-updates`: the stored `/engage` and `/groups` operations, as NDJSON.
pub(crate) async fn profile_updates(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
) -> Result<Response, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?;
    let stream = state
        .engine
        .export_profile_updates(project.project.id)
        .await?;
    Ok(ndjson_body(stream))
}

/// Query APIs take the API secret, a service account, or the local admin token — never the
/// public ingestion token.
pub(crate) fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    project_id: Option<&str>,
) -> Result<crate::projects::ResolvedProject, ApiError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let admin = state.admin_token.as_deref().map(String::as_str);
    state.projects.authenticate(auth, project_id, admin, false)
}

fn ndjson_body(stream: canopy_query::ExportStream) -> Response {
    let body = Body::from_stream(stream.map(|chunk| {
        chunk.map_err(|e| {
            tracing::error!(error = %e, "export stream failed");
            std::io::Error::other("export failed")
        })
    }));
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

pub(crate) fn day_start_ms(s: &str, field: &str) -> Result<i64, ApiError> {
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
        ApiError::BadRequest(format!("{field} must be a date in the form yyyy-mm-dd"))
    })?;
    Ok(d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0))
}

pub(crate) async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?;
    let from = p
        .from_date
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest("from_date is required".into()))?;
    let to = p
        .to_date
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest("to_date is required".into()))?;
    let from_ms = day_start_ms(from, "from_date")?;
    let to_ms = day_start_ms(to, "to_date")? + 86_400_000;
    let events: Vec<String> = match p.event.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(e) => serde_json::from_str(e).map_err(|_| {
            ApiError::BadRequest("event must be a JSON array of event names".into())
        })?,
        None => Vec::new(),
    };
    if p.limit.is_some_and(|l| l > MAX_LIMIT) {
        return Err(ApiError::BadRequest(format!(
            "limit must be at most {MAX_LIMIT}"
        )));
    }
    let request = ExportRequest {
        project: project.project.id,
        from_ms,
        to_ms,
        events,
        where_expr: p.where_expr,
        limit: p.limit,
        time_in_ms: p
            .time_in_ms
            .as_deref()
            .is_some_and(|v| v == "true" || v == "1"),
    };
    let stream = state.engine.export(request).await?;
    Ok(ndjson_body(stream))
}
