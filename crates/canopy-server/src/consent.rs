//! The consent ledger at ingest and over the API (issue #4 item 6): grants and withdrawals
//! recorded append-only in the control plane (keyed id hashes), the latest state per (person,
//! scope) cached per project and consulted by the policy, so a withdrawal takes effect on the
//! next request. SDKs record consent with the reserved event `$consent`.

use crate::export::authenticate;
use crate::project_cache::ProjectCache;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use canopy_control::{ConsentRecord, ControlPlane};
use canopy_types::{Event, ProjectId};
use parking_lot::RwLock;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub type ConsentMap = Arc<RwLock<HashMap<([u8; 32], String), bool>>>;

/// The latest decision per (keyed id hash, scope), per project.
#[derive(Default)]
pub struct ConsentMemory(ProjectCache<HashMap<([u8; 32], String), bool>>);

impl ConsentMemory {
    pub fn project(
        &self,
        control: &dyn ControlPlane,
        id: ProjectId,
    ) -> Result<ConsentMap, ApiError> {
        self.0.get(id, || {
            let mut latest = HashMap::new();
            for r in control.consent(id, None)? {
                latest.insert((r.id_hash, r.scope), r.granted);
            }
            Ok(latest)
        })
    }
}

/// What a `$consent` event (or an API call) records, one row per scope.
pub(crate) fn records_from(
    keys: &[[u8; 32]],
    props: &serde_json::Map<String, Value>,
    source: &str,
    now_ms: i64,
) -> Vec<ConsentRecord> {
    let text = |k: &str, d: &str| {
        props
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or(d)
            .chars()
            .take(200)
            .collect::<String>()
    };
    let scopes: Vec<String> = match props.get("scope").or_else(|| props.get("scopes")) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => vec!["analytics".into()],
    };
    let granted = props
        .get("granted")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut out = Vec::new();
    for k in keys {
        for s in &scopes {
            out.push(ConsentRecord {
                id_hash: *k,
                scope: s.chars().take(64).collect(),
                granted,
                method: text("method", "unspecified"),
                notice_version: text("notice_version", ""),
                time_ms: now_ms,
                evidence_hash: text("evidence_hash", ""),
                source: source.into(),
            });
        }
    }
    out
}

/// Appends `rows` and updates the cache.
pub(crate) fn record(
    state: &AppState,
    project: ProjectId,
    rows: Vec<ConsentRecord>,
) -> Result<(), ApiError> {
    if rows.is_empty() {
        return Ok(());
    }
    let control = state.projects.control();
    control.record_consent(project, &rows)?;
    let map = state.consent.project(control.as_ref(), project)?;
    let mut m = map.write();
    for r in rows {
        m.insert((r.id_hash, r.scope), r.granted);
    }
    Ok(())
}

/// The latest decision on `scope` among `keys`: a withdrawal anywhere wins.
pub(crate) fn lookup(
    map: &HashMap<([u8; 32], String), bool>,
    keys: &[[u8; 32]],
    scope: &str,
) -> Option<bool> {
    let mut found = None;
    for k in keys {
        match map.get(&(*k, scope.to_string())) {
            Some(false) => return Some(false),
            Some(true) => found = Some(true),
            None => {}
        }
    }
    found
}

pub(crate) fn is_consent_event(e: &Event) -> bool {
    e.name == "$consent"
}

#[derive(Debug, Deserialize)]
pub(crate) struct PersonParam {
    project_id: Option<String>,
    distinct_id: Option<String>,
}

/// `POST /api/v1/consent` `{"distinct_id", "scopes", "granted", "method", "notice_version",
/// "evidence_hash"}`: appends to the ledger.
pub(crate) async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<crate::export::ProjectParam>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let resolved = authenticate(&state, &headers, p.project_id.as_deref())?;
    let Some(obj) = body.as_object() else {
        return Err(ApiError::BadRequest("body must be a JSON object".into()));
    };
    let Some(id) = obj
        .get("distinct_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return Err(ApiError::BadRequest("distinct_id is required".into()));
    };
    let key = resolved.policy.tier_key(id);
    let rows = records_from(&[key], obj, "api", state.clock.now_ms());
    let n = rows.len();
    record(&state, resolved.project.id, rows)?;
    Ok(Json(json!({"recorded": n})))
}

/// `GET /api/v1/consent?distinct_id=…`: the person's ledger, oldest first.
pub(crate) async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<PersonParam>,
) -> Result<Json<Value>, ApiError> {
    let resolved = authenticate(&state, &headers, p.project_id.as_deref())?;
    let Some(id) = p.distinct_id.as_deref().filter(|s| !s.is_empty()) else {
        return Err(ApiError::BadRequest("distinct_id is required".into()));
    };
    let rows = state
        .projects
        .control()
        .consent(resolved.project.id, Some(resolved.policy.tier_key(id)))?;
    Ok(Json(json!({"records": rows})))
}
