//! Sticky age tiers at ingest (issue #4 item 2): the child tiers recorded per identifier
//! (keyed hashes, in the control plane), cached per project, consulted before the policy runs
//! and extended when a record first shows a child's age. `PUT /api/v1/persons/tier` is the
//! audited correction — the only way a child becomes an adult.

use crate::export::ProjectParam;
use crate::export::authenticate;
use crate::project_cache::ProjectCache;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use canopy_control::ControlPlane;
use canopy_policy::AgeTier;
use canopy_types::ProjectId;
use parking_lot::RwLock;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub type TierMap = Arc<RwLock<HashMap<[u8; 32], AgeTier>>>;

/// Sticky tiers per project (keyed id hash → tier).
#[derive(Default)]
pub struct TierMemory(ProjectCache<HashMap<[u8; 32], AgeTier>>);

impl TierMemory {
    /// Drops the cached tiers of a project (after an erasure deleted some).
    pub fn forget(&self, id: ProjectId) {
        self.0.forget(id);
    }

    pub fn project(&self, control: &dyn ControlPlane, id: ProjectId) -> Result<TierMap, ApiError> {
        self.0.get(id, || {
            Ok(control
                .person_tiers(id)?
                .into_iter()
                .filter_map(|(h, t)| Some((h, t.parse().ok()?)))
                .collect())
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Correction {
    distinct_id: String,
    tier: String,
    reason: String,
}

/// `PUT /api/v1/persons/tier` `{"distinct_id", "tier", "reason"}`: sets a person's tier,
/// upwards too, and writes the audit log (with a hash of the id, never the id).
pub(crate) async fn correct(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
    Json(c): Json<Correction>,
) -> Result<Json<Value>, ApiError> {
    let resolved = authenticate(&state, &headers, p.project_id.as_deref())?;
    let tier: AgeTier = c.tier.parse().map_err(ApiError::BadRequest)?;
    if c.distinct_id.is_empty() || c.reason.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "distinct_id and a reason are required".into(),
        ));
    }
    let key = resolved.policy.tier_key(&c.distinct_id);
    let keys: Vec<[u8; 32]> = whole_clusters(&state, resolved.project.id, vec![c.distinct_id])
        .iter()
        .map(|raw| resolved.policy.tier_key(raw))
        .collect();
    let reason: String = c.reason.chars().take(500).collect();
    let detail =
        json!({"id_hash": hex::encode(&key[..8]), "tier": tier.as_str(), "reason": reason})
            .to_string();
    let control = state.projects.control();
    let rows: Vec<([u8; 32], String)> = keys
        .iter()
        .map(|k| (*k, tier.as_str().to_string()))
        .collect();
    control.set_person_tiers(resolved.project.id, &rows, Some(&detail))?;
    let map = state.tiers.project(control.as_ref(), resolved.project.id)?;
    let mut map = map.write();
    for k in keys {
        map.insert(k, tier);
    }
    Ok(Json(json!({"tier": tier.as_str()})))
}

/// Every raw id of the identity clusters `ids` belong to, the ids themselves included: a tier,
/// a consent decision or a suppression recorded for one id of a person holds for all of them.
pub(crate) fn whole_clusters(
    state: &AppState,
    project: ProjectId,
    ids: Vec<String>,
) -> Vec<String> {
    let mut out = ids.clone();
    for id in &ids {
        let cluster = state.identity.lookup(project, id).and_then(|p| match p {
            Some(person) => state.identity.cluster_ids(project, person),
            None => Ok(Vec::new()),
        });
        match cluster {
            Ok(c) => out.extend(c),
            Err(e) => {
                tracing::warn!(error = %e, "identity lookup failed; only the given ids are covered")
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
