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
    /// Drops the cached decisions of a project (after an erasure deleted some).
    pub fn forget(&self, id: ProjectId) {
        self.0.forget(id);
    }

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

/// Verifiable parental consent methods (COPPA, 16 CFR 312.5(b)(2); DPDP Rules r.10); a grant by one of these
/// is marked as such in the ledger.
pub(crate) const VPC_METHODS: [&str; 9] = [
    "signed_form",
    "payment_card",
    "toll_free_call",
    "video_conference",
    "government_id",
    "knowledge_based_questions",
    "face_match_to_id",
    "text_plus",
    // DPDP Rules r.10: an Indian parent's verifiable consent through a virtual token.
    "digilocker_token",
];

/// Other ways consent is collected (not sufficient for a child's verifiable consent).
pub(crate) const OTHER_METHODS: [&str; 8] = [
    "unspecified",
    "checkbox",
    "banner",
    "cookie_banner",
    "settings_page",
    "in_app_prompt",
    "email_plus",
    "api",
];

fn is_known_method(m: &str) -> bool {
    VPC_METHODS.contains(&m) || OTHER_METHODS.contains(&m)
}

/// What a `$consent` event (or an API call) records, one row per scope. An unknown method is
/// recorded as `unspecified` (events cannot be answered with an error).
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
                method: Some(text("method", "unspecified"))
                    .filter(|m| is_known_method(m))
                    .unwrap_or_else(|| "unspecified".into()),
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

/// The ledger keys of every id of the persons `ids` belong to.
pub(crate) fn cluster_keys(
    state: &AppState,
    resolved: &crate::projects::ResolvedProject,
    ids: Vec<String>,
) -> Vec<[u8; 32]> {
    crate::tiers::whole_clusters(state, resolved.project.id, ids)
        .iter()
        .map(|raw| resolved.policy.tier_key(raw))
        .collect()
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
    if let Some(m) = obj.get("method").and_then(Value::as_str)
        && !is_known_method(m)
    {
        return Err(ApiError::BadRequest(format!(
            "method {m:?} is not one of: {}",
            VPC_METHODS
                .iter()
                .chain(OTHER_METHODS.iter())
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // Recorded under every id of the person, so it holds whichever id later events carry.
    let keys = cluster_keys(&state, &resolved, vec![id.to_string()]);
    let rows = records_from(&keys, obj, "api", state.clock.now_ms());
    let n = rows.len() / keys.len().max(1);
    record(&state, resolved.project.id, rows)?;
    Ok(Json(json!({"recorded": n, "ids_covered": keys.len()})))
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
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let vpc = VPC_METHODS.contains(&r.method.as_str());
            let mut v = json!(r);
            v["verifiable_parental_consent"] = json!(vpc);
            v
        })
        .collect();
    Ok(Json(json!({"records": rows})))
}
