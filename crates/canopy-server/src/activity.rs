//! One person's activity, oldest first (issue #5 item 6): `GET /api/v1/persons/activity`
//! (`distinct_id`, `from_date`, `to_date`, `limit`) and Mixpanel's activity stream
//! `/api/query/stream/query` (`distinct_ids` as a JSON array, `from_date`, `to_date`). Any id of
//! a person finds all of the person's events, shown under the canonical id.

use crate::export::{authenticate, day_start_ms};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use canopy_types::{Event, ProjectId};
use serde::Deserialize;
use serde_json::{Value, json};

const DAY_MS: i64 = 86_400_000;
const DEFAULT_LIMIT: usize = 1_000;
const MAX_LIMIT: usize = 100_000;

/// An event as Mixpanel's export and activity feed show it.
pub(crate) fn event_json(e: Event, canonical: &str) -> Value {
    let mut props = e.properties;
    props.insert("time".into(), json!(e.time_ms / 1000));
    props.insert("distinct_id".into(), json!(canonical));
    if !e.insert_id.is_empty() {
        props.insert("$insert_id".into(), json!(e.insert_id));
    }
    json!({"event": e.name, "properties": props})
}

fn range(from: Option<&str>, to: Option<&str>) -> Result<(i64, i64), ApiError> {
    let from = from.ok_or_else(|| ApiError::BadRequest("from_date is required".into()))?;
    let to = to.ok_or_else(|| ApiError::BadRequest("to_date is required".into()))?;
    let (f, t) = (
        day_start_ms(from, "from_date")?,
        day_start_ms(to, "to_date")? + DAY_MS,
    );
    if t <= f {
        return Err(ApiError::BadRequest(
            "to_date must not be before from_date".into(),
        ));
    }
    Ok((f, t))
}

/// The person's canonical id and events, or `None` when no such id was ever seen.
async fn person_events(
    state: &AppState,
    project: ProjectId,
    distinct_id: &str,
    (from, to): (i64, i64),
    limit: usize,
) -> Result<Option<(String, Vec<Event>)>, ApiError> {
    let Some(person) = state.identity.lookup(project, distinct_id)? else {
        return Ok(None);
    };
    // The person key is the canonical id's key: one sealed lookup, not the whole cluster.
    let canonical = state
        .identity
        .display_ids(project, &[person.0])?
        .remove(&person.0)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let events = state
        .queries
        .person_activity(project, person, from, to, limit)
        .await?;
    Ok(Some((canonical, events)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ActivityParams {
    distinct_id: String,
    from_date: Option<String>,
    to_date: Option<String>,
    limit: Option<usize>,
    project_id: Option<String>,
}

pub(crate) async fn person_activity(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ActivityParams>,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let r = range(p.from_date.as_deref(), p.to_date.as_deref())?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let (canonical, events) = person_events(&state, project, &p.distinct_id, r, limit)
        .await?
        .ok_or(ApiError::NotFound)?;
    let events: Vec<Value> = events
        .into_iter()
        .map(|e| event_json(e, &canonical))
        .collect();
    Ok(Json(json!({"distinct_id": canonical, "events": events})))
}

#[derive(Debug, Deserialize)]
pub(crate) struct StreamParams {
    distinct_ids: Option<String>,
    from_date: Option<String>,
    to_date: Option<String>,
    project_id: Option<String>,
}

/// Mixpanel's `stream/query`: the events of up to 100 people, oldest first per person.
pub(crate) async fn stream_query(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<StreamParams>,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let ids: Vec<String> = p
        .distinct_ids
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .filter(|v: &Vec<String>| !v.is_empty() && v.len() <= 100)
        .ok_or_else(|| {
            ApiError::BadRequest("distinct_ids must be a JSON array of 1 to 100 ids".into())
        })?;
    let r = range(p.from_date.as_deref(), p.to_date.as_deref())?;
    let mut out = Vec::new();
    for id in ids {
        if let Some((canonical, events)) = person_events(&state, project, &id, r, MAX_LIMIT).await?
        {
            out.extend(events.into_iter().map(|e| event_json(e, &canonical)));
        }
    }
    Ok(Json(json!({"status": "ok", "results": {"events": out}})))
}
