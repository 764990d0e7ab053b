//! Data clean-up (issue #6 item 5): delete events sent by mistake, by event name, date range
//! and property predicate (Mixpanel's `where` syntax). A dry run (the default) reports how many
//! events match; `"dry_run": false` rewrites the affected segments without them (under new
//! keys, as an erasure does). Every real deletion is written to the audit log (names and dates,
//! never the predicate's values).
//!
//! `POST /api/v1/data/deletions` `{"events": [...], "from_date", "to_date", "where", "dry_run"}`

use crate::dsr::read_body;
use crate::export::{ProjectParam, authenticate, day_start_ms};
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use canopy_store::{RowSelector, Store};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CleanupBody {
    #[serde(default)]
    events: Vec<String>,
    from_date: String,
    to_date: String,
    #[serde(default, rename = "where")]
    where_expr: Option<String>,
    #[serde(default)]
    dry_run: Option<bool>,
}

/// `POST /api/v1/data/deletions`.
pub(crate) async fn delete_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let body: CleanupBody = serde_json::from_value(read_body(body).await?)
        .map_err(|e| ApiError::BadRequest(format!("clean-up request: {e}")))?;
    let from_ms = day_start_ms(&body.from_date, "from_date")?;
    let to_ms = day_start_ms(&body.to_date, "to_date")? + DAY_MS;
    if to_ms <= from_ms {
        return Err(ApiError::BadRequest(
            "to_date must not be before from_date".into(),
        ));
    }
    let filter = match body
        .where_expr
        .as_deref()
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        Some(w) => {
            Some(canopy_expr::parse(w).map_err(|e| ApiError::BadRequest(format!("where: {e}")))?)
        }
        None => None,
    };
    if body.events.is_empty() && filter.is_none() {
        return Err(ApiError::BadRequest(
            "name the events to delete, or a where expression (or both)".into(),
        ));
    }
    let dry_run = body.dry_run.unwrap_or(true);
    let store: Store = state.queries.store().clone();
    let names: std::collections::HashSet<String> = body.events.iter().cloned().collect();
    let queries = state.queries.clone();
    let control = state.projects.control().clone();
    let now = state.clock.now_ms();
    let detail = format!(
        "{} event name(s), {} to {}, where: {}",
        names.len(),
        body.from_date,
        body.to_date,
        if filter.is_some() { "yes" } else { "no" }
    );
    let outcome = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let matches = |e: &canopy_types::Event| {
            (names.is_empty() || names.contains(&e.name))
                && filter
                    .as_ref()
                    .is_none_or(|f| canopy_expr::matches(f, &e.properties))
        };
        let selector = RowSelector::Events {
            from_ms,
            to_ms,
            matches: &matches,
        };
        if dry_run {
            let n = store.count_selected(project, &selector)?;
            return Ok(json!({"dry_run": true, "matching_events": n}));
        }
        let report = store.rewrite_without(project, &selector, Duration::from_secs(30))?;
        queries.clear_caches();
        control.record_audit(
            project,
            "data.cleanup",
            &format!("{} events deleted ({detail})", report.event_rows),
            now,
        )?;
        Ok(json!({
            "dry_run": false,
            "deleted_events": report.event_rows,
            "segments_rewritten": report.segments_rewritten,
            "segments_dropped": report.segments_dropped,
            "old_files_unlinked": report.old_files_unlinked,
        }))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(Json(outcome))
}
