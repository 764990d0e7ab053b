//! Rectification (issue #6 item 4, control A24): `POST /api/v1/persons/rectify`
//! `{"distinct_id", "reason", "profile": {"$set": {...}, "$unset": [...]},
//!   "events": {"property", "value", "event"}}` corrects a person's profile (a `$set` / `$unset`
//! through the ingestion pipeline, so the privacy policy still applies) and a property on
//! their past events (set to `value`, or removed when `value` is null; only events named
//! `event` when given) by rewriting the segments that hold them under new keys. Every
//! correction is written to the audit log with its reason.

use crate::dsr::read_body;
use crate::export::{ProjectParam, authenticate};
use crate::request::RequestFacts;
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use canopy_types::{Event, PersonKey, ProfileTarget, ProfileUpdate, Record};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RectifyBody {
    distinct_id: String,
    reason: String,
    #[serde(default)]
    profile: Option<ProfileFix>,
    #[serde(default)]
    events: Option<EventFix>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFix {
    #[serde(default, rename = "$set")]
    set: Map<String, Value>,
    #[serde(default, rename = "$unset")]
    unset: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFix {
    property: String,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    event: Option<String>,
}

fn update(
    project: canopy_types::ProjectId,
    distinct_id: &str,
    operation: &str,
    value: Value,
    now_ms: i64,
) -> Record {
    Record::Profile(ProfileUpdate {
        project,
        target: ProfileTarget::User {
            distinct_id: distinct_id.to_string(),
        },
        person: PersonKey::NONE,
        operation: operation.into(),
        value,
        time_ms: now_ms,
        received_ms: now_ms,
        modifiers: Map::new(),
    })
}

/// `POST /api/v1/persons/rectify`.
pub(crate) async fn rectify(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let resolved = authenticate(&state, &headers, p.project_id.as_deref())?;
    let project = resolved.project.id;
    let body: RectifyBody = serde_json::from_value(read_body(body).await?)
        .map_err(|e| ApiError::BadRequest(format!("rectification: {e}")))?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.len() > 500 {
        return Err(ApiError::BadRequest(
            "a reason (1 to 500 characters) is required".into(),
        ));
    }
    if body.profile.is_none() && body.events.is_none() {
        return Err(ApiError::BadRequest(
            "nothing to correct: give profile, events or both".into(),
        ));
    }
    let person = state
        .identity
        .lookup(project, &body.distinct_id)?
        .ok_or(ApiError::NotFound)?;
    if let Some(fix) = &body.events {
        if fix.property.is_empty() || fix.property.starts_with('$') {
            return Err(ApiError::BadRequest(
                "events.property must name an app property (not a reserved $ property)".into(),
            ));
        }
        if matches!(fix.value, Value::Object(_) | Value::Array(_)) {
            return Err(ApiError::BadRequest(
                "events.value must be a string, number, boolean or null".into(),
            ));
        }
        if let Value::String(s) = &fix.value
            && !canopy_policy::detect(s).is_empty()
        {
            return Err(ApiError::BadRequest(
                "events.value looks like personal data (the policy's detectors matched); correct it to a value that is not".into(),
            ));
        }
    }
    let now = state.clock.now_ms();
    let mut profile_updates = 0;
    if let Some(fix) = body.profile {
        let mut records = Vec::new();
        if !fix.set.is_empty() {
            records.push(update(
                project,
                &body.distinct_id,
                "$set",
                Value::Object(fix.set),
                now,
            ));
        }
        if !fix.unset.is_empty() {
            records.push(update(
                project,
                &body.distinct_id,
                "$unset",
                json!(fix.unset),
                now,
            ));
        }
        profile_updates = crate::ingest_track::store_batch(
            &state,
            &resolved,
            false,
            &RequestFacts::default(),
            records,
            "rectify",
        )
        .await?;
    }
    let mut events_changed = 0;
    if let Some(fix) = body.events {
        let keys: HashSet<u64> = state
            .identity
            .cluster_keys(project, person)?
            .into_iter()
            .collect();
        let store = state.queries.store().clone();
        let change = move |e: &mut Event| {
            if fix.event.as_ref().is_some_and(|n| *n != e.name)
                || !e.properties.contains_key(&fix.property)
            {
                return false;
            }
            if fix.value.is_null() {
                e.properties.remove(&fix.property);
            } else {
                e.properties.insert(fix.property.clone(), fix.value.clone());
            }
            true
        };
        let report = tokio::task::spawn_blocking(move || {
            store.rewrite_events_of(project, &keys, &change, Duration::from_secs(30))
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
        events_changed = report.event_rows;
        state.queries.clear_caches();
    }
    state.projects.control().record_audit(
        project,
        "person.rectified",
        &format!("{profile_updates} profile update(s), {events_changed} event(s) corrected; reason: {reason}"),
        now,
    )?;
    Ok(Json(
        json!({"profile_updates": profile_updates, "events_changed": events_changed}),
    ))
}
