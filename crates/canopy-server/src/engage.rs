//! Mixpanel's profile query, `/api/query/engage` and `/api/2.0/engage` (GET, or POST with a
//! form body): user profiles (or a group type's profiles with `data_group_id`), selected by
//! ids, a `where` expression over profile properties or a saved cohort, 1,000 per page,
//! sorted by distinct_id so pages are stable.

use crate::export::authenticate;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use canopy_query::PersonSet;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::sync::Arc;

const PAGE_SIZE: usize = 1000;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct EngageParams {
    project_id: Option<String>,
    distinct_id: Option<String>,
    distinct_ids: Option<String>,
    data_group_id: Option<String>,
    #[serde(rename = "where")]
    where_expr: Option<String>,
    output_properties: Option<String>,
    page: Option<usize>,
    session_id: Option<String>,
    filter_by_cohort: Option<String>,
}

/// Parameters from the query string and, for POST, the form body (the body wins).
fn params(query: Option<&str>, body: &[u8]) -> Result<EngageParams, ApiError> {
    let bad = |e: serde_urlencoded::de::Error| ApiError::BadRequest(format!("engage: {e}"));
    let mut pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or_default()).map_err(bad)?;
    if !body.is_empty() {
        let from_body: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(bad)?;
        pairs.retain(|(k, _)| !from_body.iter().any(|(b, _)| b == k));
        pairs.extend(from_body);
    }
    let encoded = serde_urlencoded::to_string(&pairs)
        .map_err(|e| ApiError::BadRequest(format!("engage: {e}")))?;
    serde_urlencoded::from_str(&encoded).map_err(bad)
}

fn json_list(v: Option<&str>, name: &str) -> Result<Option<Vec<String>>, ApiError> {
    v.filter(|s| !s.trim().is_empty())
        .map(|s| {
            serde_json::from_str(s).map_err(|_| {
                ApiError::BadRequest(format!("{name} must be a JSON array of strings"))
            })
        })
        .transpose()
}

pub(crate) async fn engage(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let p = params(query.as_deref(), &body)?;
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let filter = match p.where_expr.as_deref().filter(|w| !w.trim().is_empty()) {
        Some(w) => Some(
            canopy_expr::parse(w)
                .map_err(|e| ApiError::BadRequest(format!("invalid `where` expression: {e}")))?,
        ),
        None => None,
    };
    let output = json_list(p.output_properties.as_deref(), "output_properties")?;
    let mut wanted: Option<PersonSet> = None;
    let mut ids = json_list(p.distinct_ids.as_deref(), "distinct_ids")?.unwrap_or_default();
    ids.extend(p.distinct_id.clone());
    if !ids.is_empty() && p.data_group_id.is_none() {
        let mut keys = HashSet::new();
        for id in &ids {
            if let Some(k) = state.identity.lookup(project, id)? {
                keys.insert(k.0);
            }
        }
        wanted = Some(Arc::new(keys));
    }
    if let Some(c) = p.filter_by_cohort.as_deref() {
        let id = serde_json::from_str::<Value>(c)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_u64))
            .ok_or_else(|| ApiError::BadRequest("filter_by_cohort must be {\"id\": N}".into()))?;
        let members = crate::cohorts::members(&state, project, id).await?;
        wanted = Some(match wanted {
            Some(w) => Arc::new(w.intersection(&members).copied().collect()),
            None => members,
        });
    }
    let profiles = state.queries.profiles(project).await?;
    let mut rows: Vec<(String, Map<String, Value>)> = Vec::new();
    match p.data_group_id.as_deref() {
        Some(group_key) => {
            for g in &profiles.groups {
                let Some((key, id)) = &g.group else { continue };
                if key != group_key || (!ids.is_empty() && !ids.contains(id)) {
                    continue;
                }
                rows.push((id.clone(), g.state.properties.clone()));
            }
        }
        None => {
            let users: Vec<_> = profiles
                .users
                .iter()
                .filter(|u| wanted.as_ref().is_none_or(|w| w.contains(&u.person.0)))
                .collect();
            let keys: Vec<u64> = users.iter().map(|u| u.person.0).collect();
            let display = state.identity.display_ids(project, &keys)?;
            for u in users {
                let mut props = u.state.properties.clone();
                if let Some(t) = u.state.last_seen_ms {
                    props.insert("$last_seen".into(), crate::persons::iso(t));
                }
                let id = display
                    .get(&u.person.0)
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                rows.push((id, props));
            }
        }
    }
    if let Some(f) = &filter {
        rows.retain(|(_, props)| canopy_expr::matches(f, props));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let total = rows.len();
    let page = p.page.unwrap_or(0);
    let results: Vec<Value> = rows
        .into_iter()
        .skip(page.saturating_mul(PAGE_SIZE))
        .take(PAGE_SIZE)
        .map(|(id, mut props)| {
            if let Some(keep) = &output {
                props.retain(|k, _| keep.contains(k));
            }
            json!({"$distinct_id": id, "$properties": props})
        })
        .collect();
    let session_id = p
        .session_id
        .unwrap_or_else(|| format!("{:x}", state.clock.now_ms()));
    Ok(Json(json!({
        "page": page,
        "page_size": PAGE_SIZE,
        "session_id": session_id,
        "status": "ok",
        "total": total,
        "results": results,
    })))
}
