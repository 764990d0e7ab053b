//! Saved cohorts over the API: `POST /api/v1/cohorts` (create), `GET /api/v1/cohorts` (list
//! with member counts), `GET` / `DELETE /api/v1/cohorts/{id}`, and Mixpanel's
//! `cohorts/list`. Reports name cohorts by id; [`resolve`] turns the ids into members.

use crate::export::{ProjectParam, authenticate};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use canopy_control::CohortRow;
use canopy_query::PersonSet;
use canopy_report_wire::CohortDefinition;
use canopy_report_wire::cohort::NewCohort;
use canopy_types::ProjectId;
use serde_json::{Value, json};
use std::collections::HashMap;

fn load(
    state: &AppState,
    project: ProjectId,
    id: u64,
) -> Result<(CohortRow, CohortDefinition), ApiError> {
    let row = state
        .projects
        .control()
        .cohort(project, id)?
        .ok_or(ApiError::NotFound)?;
    let def = CohortDefinition::from_stored(&row.definition)?;
    Ok((row, def))
}

/// `load`, where the cohort is named by a report: an unknown id is the client's error.
fn load_named(
    state: &AppState,
    project: ProjectId,
    id: u64,
) -> Result<(CohortRow, CohortDefinition), ApiError> {
    load(state, project, id).map_err(|e| match e {
        ApiError::NotFound => ApiError::BadRequest(format!("unknown cohort {id}")),
        other => other,
    })
}

/// Who is in the cohort now.
async fn members_now(
    state: &AppState,
    project: ProjectId,
    def: &CohortDefinition,
) -> Result<PersonSet, ApiError> {
    Ok(
        canopy_analytics::cohorts::members(def, &state.queries, project, state.clock.now_ms())
            .await?,
    )
}

/// The members of saved cohort `id`, now.
pub(crate) async fn members(
    state: &AppState,
    project: ProjectId,
    id: u64,
) -> Result<PersonSet, ApiError> {
    let (_, def) = load(state, project, id)?;
    members_now(state, project, &def).await
}

/// Names and members of the cohorts a report refers to.
pub(crate) async fn resolve(
    state: &AppState,
    project: ProjectId,
    ids: &[u64],
) -> Result<HashMap<u64, (String, PersonSet)>, ApiError> {
    let mut out = HashMap::new();
    for &id in ids {
        let (row, def) = load_named(state, project, id)?;
        out.insert(id, (row.name, members_now(state, project, &def).await?));
    }
    Ok(out)
}

/// The members of the cohort a sequence report is restricted to, if any.
pub(crate) async fn members_of(
    state: &AppState,
    project: ProjectId,
    filter: Option<&canopy_analytics::cohorts::CohortFilter>,
) -> Result<Option<PersonSet>, ApiError> {
    let Some(f) = filter else { return Ok(None) };
    let (_, def) = load_named(state, project, f.id)?;
    Ok(Some(members_now(state, project, &def).await?))
}

/// A cohort as the native API shows it, with its member count now.
async fn with_count(
    state: &AppState,
    project: ProjectId,
    row: CohortRow,
    def: CohortDefinition,
) -> Result<Value, ApiError> {
    let count = members_now(state, project, &def).await?.len();
    Ok(json!({
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "definition": def,
        "created_ms": row.created_ms,
        "count": count,
    }))
}

/// Every cohort of the project with its definition.
fn all(
    state: &AppState,
    project: ProjectId,
) -> Result<Vec<(CohortRow, CohortDefinition)>, ApiError> {
    state
        .projects
        .control()
        .cohorts(project)?
        .into_iter()
        .map(|row| {
            let def = CohortDefinition::from_stored(&row.definition)?;
            Ok((row, def))
        })
        .collect()
}

pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let req: NewCohort = canopy_report_wire::parse(&body)?;
    let name = req.name.trim();
    let id = state.projects.control().create_cohort(
        project,
        name,
        &req.description,
        &req.definition.to_stored(),
    )?;
    let (row, def) = load(&state, project, id)?;
    Ok((
        StatusCode::CREATED,
        Json(with_count(&state, project, row, def).await?),
    ))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let mut out = Vec::new();
    for (row, def) in all(&state, project)? {
        out.push(with_count(&state, project, row, def).await?);
    }
    Ok(Json(json!({ "cohorts": out })))
}

pub(crate) async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Query(p): Query<ProjectParam>,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let (row, def) = load(&state, project, id)?;
    Ok(Json(with_count(&state, project, row, def).await?))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Query(p): Query<ProjectParam>,
) -> Result<StatusCode, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    if state.projects.control().delete_cohort(project, id)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// Mixpanel's `cohorts/list`: `[{"count", "is_visible", "description", "created",
/// "project_id", "id", "name"}]`.
pub(crate) async fn mixpanel_list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let mut out = Vec::new();
    for (row, def) in all(&state, project)? {
        let count = members_now(&state, project, &def).await?.len();
        let created = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(row.created_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        out.push(json!({
            "count": count,
            "is_visible": 1,
            "description": row.description,
            "created": created,
            "project_id": project.0,
            "id": row.id,
            "name": row.name,
        }));
    }
    Ok(Json(Value::Array(out)))
}
