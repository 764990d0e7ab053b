//! The privacy policy at ingest (issue #4): applied to every record before identity and the
//! WAL, so what it removes is never written; every action counted in the project's lint
//! report (values never) and in `canopy_policy_rejected_total{reason}`. Also the settings and
//! lint APIs.

use crate::export::{ProjectParam, authenticate};
use crate::projects::ResolvedProject;
use crate::request::RequestFacts;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use canopy_policy::{AgeTier, Facts, Geo, Lint, Policy, SignalEffect, Verdict};
use canopy_types::{ProfileTarget, Record};
use serde::Deserialize;
use serde_json::{Value, json};

pub(crate) fn apply_policy(
    state: &AppState,
    resolved: &ResolvedProject,
    req: &RequestFacts,
    mut records: Vec<Record>,
) -> Vec<Record> {
    let policy = &resolved.policy;
    let now = state.clock.now_ms();
    let mut lint = Lint::default();
    let effect = policy.signals(req.signals, &mut lint, now);
    if effect == SignalEffect::StopAnalytics {
        metrics::counter!("canopy_policy_rejected_total", "reason" => "privacy_signal")
            .increment(records.len() as u64);
        records.clear();
    }
    // Without the sticky tiers or the consent ledger the safe answer is to keep nothing.
    let control = state.projects.control().as_ref();
    let id = resolved.project.id;
    let unavailable = |reason: &'static str, e: ApiError, n: usize| {
        tracing::error!(error = %e, reason, "policy state unavailable; batch dropped");
        metrics::counter!("canopy_policy_rejected_total", "reason" => reason).increment(n as u64);
    };
    let tiers = match state.tiers.project(control, id) {
        Ok(t) => t,
        Err(e) => {
            unavailable("tiers_unavailable", e, records.len());
            return Vec::new();
        }
    };
    let consent = match state.consent.project(control, id) {
        Ok(c) => c,
        Err(e) => {
            unavailable("consent_unavailable", e, records.len());
            return Vec::new();
        }
    };
    let lookups_needed = !tiers.read().is_empty() || !consent.read().is_empty();
    let salt = |time_ms: i64| match state.salts.salt_for(control, id, time_ms, now) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "aggregate-only salt unavailable");
            None
        }
    };
    let mut geo_memo: Option<(std::net::IpAddr, Option<Geo>)> = None;
    let mut geo_of = |ip: Option<std::net::IpAddr>| -> Option<Geo> {
        let (ip, db) = (ip?, state.enrichment.geoip.as_ref()?);
        if let Some((last, g)) = &geo_memo
            && *last == ip
        {
            return g.clone();
        }
        let g = db.lookup(ip);
        geo_memo = Some((ip, g.clone()));
        g
    };
    let mut remembered: Vec<(String, AgeTier)> = Vec::new();
    let mut consent_rows = Vec::new();
    records.retain_mut(|r| {
        let verdict = match r {
            Record::Event(e) => {
                if crate::consent::is_consent_event(e) {
                    // A consent record, not analytics data: into the ledger, not the store.
                    let keys = crate::consent::cluster_keys(state, resolved, Policy::ids_of(e));
                    consent_rows.extend(crate::consent::records_from(
                        &keys,
                        &e.properties,
                        "event",
                        now,
                    ));
                    lint.record("(event)", "consent_recorded", "ledger", "any", now);
                    return false;
                }
                // The ids (and their hashes) cost: only when a tier or a consent could be on
                // record, or the event carries an age that may make a child tier to remember.
                let ids = if lookups_needed || Policy::states_age(e) {
                    Policy::ids_of(e)
                } else {
                    Vec::new()
                };
                let keys: Vec<[u8; 32]> = if lookups_needed {
                    ids.iter().map(|i| policy.tier_key(i)).collect()
                } else {
                    Vec::new()
                };
                let (prior, missing) = {
                    let map = tiers.read();
                    let prior = keys.iter().find_map(|k| map.get(k).copied());
                    let missing = keys.iter().any(|k| !map.contains_key(k));
                    (prior, missing)
                };
                let map = consent.read();
                let lookup = |scope: &str| crate::consent::lookup(&map, &keys, scope);
                let facts = Facts {
                    prior,
                    consent: Some(&lookup),
                    daily_salt: Some(&salt),
                    geo: geo_of(e.ip),
                };
                let (v, remember) = policy.apply_event_with(e, &mut lint, now, &facts);
                // A child tier learned now, or one on record for an id this event links to
                // ids without it: remembered for every id of the person.
                match (remember, prior) {
                    (Some(t), _) => remembered.extend(ids.into_iter().map(|i| (i, t))),
                    (None, Some(p)) if p.is_child() && missing => {
                        remembered.extend(ids.into_iter().map(|i| (i, p)))
                    }
                    _ => {}
                }
                v
            }
            Record::Profile(u) => {
                let prior = match &u.target {
                    ProfileTarget::User { distinct_id } if lookups_needed => {
                        tiers.read().get(&policy.tier_key(distinct_id)).copied()
                    }
                    _ => None,
                };
                let geo = geo_of(req.client_ip);
                policy.apply_profile(u, &mut lint, now, prior, geo.as_ref())
            }
        };
        match verdict {
            Verdict::Keep => {
                if effect == SignalEffect::OptOutOfSale
                    && let Record::Event(e) = r
                {
                    e.properties
                        .insert("$opt_out_sale".into(), Value::Bool(true));
                }
                true
            }
            Verdict::Reject(reason) => {
                metrics::counter!("canopy_policy_rejected_total", "reason" => reason).increment(1);
                false
            }
        }
    });
    if let Err(e) = crate::consent::record(state, id, consent_rows) {
        tracing::error!(error = %e, "recording consent failed");
    }
    remember_tiers(state, resolved, &tiers, remembered);
    if !lint.is_empty() {
        for (k, v) in lint.entries() {
            metrics::counter!("canopy_policy_actions_total", "action" => k.action.clone(), "tier" => k.tier.clone())
                .increment(v.count);
        }
        state.lint.lock().entry(id).or_default().merge(lint);
    }
    records
}

/// Records child tiers for every id of each person (their whole identity cluster).
fn remember_tiers(
    state: &AppState,
    resolved: &ResolvedProject,
    tiers: &crate::tiers::TierMap,
    remembered: Vec<(String, AgeTier)>,
) {
    if remembered.is_empty() {
        return;
    }
    let id = resolved.project.id;
    let mut by_tier: std::collections::BTreeMap<AgeTier, Vec<String>> = Default::default();
    for (raw, t) in remembered {
        by_tier.entry(t).or_default().push(raw);
    }
    let mut keys: Vec<([u8; 32], AgeTier)> = Vec::new();
    for (t, ids) in by_tier {
        for raw in crate::tiers::whole_clusters(state, id, ids) {
            keys.push((resolved.policy.tier_key(&raw), t));
        }
    }
    let rows: Vec<([u8; 32], String)> = keys
        .iter()
        .map(|(k, t)| (*k, t.as_str().to_string()))
        .collect();
    match state.projects.control().set_person_tiers(id, &rows, None) {
        Ok(()) => tiers.write().extend(keys),
        Err(e) => tracing::error!(error = %e, "recording sticky tiers failed"),
    }
}

/// `GET /api/v1/privacy/lint`: every policy action on record (persisted, plus the last seconds').
pub(crate) async fn lint(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let mut lint = state.projects.control().lint(project)?;
    if let Some(pending) = state.lint.lock().get(&project).cloned() {
        lint.merge(pending);
    }
    let rows: Vec<Value> = lint
        .sorted_entries()
        .into_iter()
        .map(|(k, v)| {
            json!({"property": k.property, "rule": k.rule, "action": k.action, "tier": k.tier,
                   "count": v.count, "first_seen_ms": v.first_seen_ms, "last_seen_ms": v.last_seen_ms})
        })
        .collect();
    Ok(Json(json!({"project_id": project.0, "actions": rows})))
}

/// `GET /api/v1/settings`: the project's current settings and their version.
pub(crate) async fn get_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let (version, settings) = state.projects.control().settings(project)?;
    Ok(Json(json!({"version": version, "settings": settings})))
}

/// `PUT /api/v1/settings`: replaces the settings (validated; a new version).
pub(crate) async fn put_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let settings: canopy_control::ProjectSettings = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("settings: {e}")))?;
    settings
        .validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (_, current) = state.projects.control().settings(project)?;
    if current.id_merge != settings.id_merge && state.identity.lookup_any(project)? {
        return Err(ApiError::BadRequest(
            "id_merge cannot change once the project holds identities".into(),
        ));
    }
    let version = state
        .projects
        .control()
        .update_settings(project, &settings)?;
    state.projects.invalidate(project);
    Ok(Json(json!({"version": version, "settings": settings})))
}

#[derive(Debug, Deserialize)]
pub(crate) struct SuppressBody {
    distinct_ids: Vec<String>,
}

/// `POST /api/v1/suppressions` `{"distinct_ids": [...]}`: drop everything these ids send from
/// now on, before any write. Only keyed hashes are stored.
pub(crate) async fn suppress(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
    Json(body): Json<SuppressBody>,
) -> Result<Json<Value>, ApiError> {
    change_suppressions(&state, &headers, p, body, true)
}

/// `DELETE /api/v1/suppressions` `{"distinct_ids": [...]}`.
pub(crate) async fn unsuppress(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
    Json(body): Json<SuppressBody>,
) -> Result<Json<Value>, ApiError> {
    change_suppressions(&state, &headers, p, body, false)
}

fn change_suppressions(
    state: &AppState,
    headers: &HeaderMap,
    p: ProjectParam,
    body: SuppressBody,
    add: bool,
) -> Result<Json<Value>, ApiError> {
    let resolved = authenticate(state, headers, p.project_id.as_deref())?;
    if body.distinct_ids.is_empty() || body.distinct_ids.len() > 5000 {
        return Err(ApiError::BadRequest(
            "distinct_ids must hold between 1 and 5000 ids".into(),
        ));
    }
    // Every id of each person: a suppression follows the person, not one of their ids.
    let ids: Vec<String> = body
        .distinct_ids
        .into_iter()
        .filter(|d| !d.is_empty())
        .collect();
    let hashes: Vec<[u8; 32]> = crate::tiers::whole_clusters(state, resolved.project.id, ids)
        .iter()
        .map(|d| resolved.policy.suppression_hash(d))
        .collect();
    let control = state.projects.control();
    let changed = if add {
        control.suppress(resolved.project.id, &hashes)?
    } else {
        control.unsuppress(resolved.project.id, &hashes)?
    };
    state.projects.invalidate(resolved.project.id);
    Ok(Json(json!({"changed": changed})))
}

/// `GET /api/v1/suppressions`: how many identifiers are suppressed, and their hashes.
pub(crate) async fn suppressions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let hashes = state.projects.control().suppressions(project)?;
    let hex: Vec<String> = hashes.iter().map(hex::encode).collect();
    Ok(Json(json!({"count": hex.len(), "hashes": hex})))
}
