//! `GET /api/v1/persons`: one person — every id of the identity cluster, the materialized
//! profile and recent activity — found through any of the person's ids. And
//! `GET /api/v1/groups`: one group profile.

use crate::export::authenticate;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use canopy_types::PersonKey;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

const DEFAULT_EVENTS: usize = 50;
const MAX_EVENTS: usize = 1000;

#[derive(Debug, Deserialize)]
pub(crate) struct PersonParams {
    distinct_id: String,
    project_id: Option<String>,
    events: Option<usize>,
}

pub(crate) fn iso(ms: i64) -> Value {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

fn with_last_seen(
    mut properties: Map<String, Value>,
    last_seen: Option<i64>,
) -> Map<String, Value> {
    if let Some(t) = last_seen {
        properties.insert("$last_seen".into(), iso(t));
    }
    properties
}

pub(crate) async fn person(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<PersonParams>,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let Some(person) = state.identity.lookup(project, &p.distinct_id)? else {
        return Err(ApiError::NotFound);
    };
    let ids = state.identity.cluster_ids(project, person)?;
    let limit = p.events.unwrap_or(DEFAULT_EVENTS).min(MAX_EVENTS);
    let (profile, events) = state.queries.person_view(project, person, limit).await?;
    let canonical = ids.first().cloned().unwrap_or_default();
    let recent: Vec<Value> = events
        .into_iter()
        .map(|e| crate::activity::event_json(e, &canonical))
        .collect();
    Ok(Json(json!({
        "distinct_id": canonical,
        "identities": ids,
        "profile": profile.map(|s| json!({
            "properties": with_last_seen(s.properties, s.last_seen_ms),
        })),
        "recent_events": recent,
    })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct GroupParams {
    group_key: String,
    group_id: String,
    project_id: Option<String>,
}

pub(crate) async fn group(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<GroupParams>,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let key: PersonKey = state
        .identity
        .group_key(project, &p.group_key, &p.group_id)?;
    let profiles = state.queries.profiles(project).await?;
    let found = profiles
        .groups
        .iter()
        .find(|g| g.person == key)
        .ok_or(ApiError::NotFound)?;
    Ok(Json(json!({
        "group_key": p.group_key,
        "group_id": p.group_id,
        "properties": with_last_seen(found.state.properties.clone(), found.state.last_seen_ms),
    })))
}
