//! Retention enforcement (issue #6 item 6): each tier's raw events are deleted once older than
//! the tier's `retention_days` (project settings; never "forever" for a child tier), by a job
//! that runs hourly and on demand, rewriting segments as a clean-up does (a segment whose rows
//! have all aged out is dropped whole). Routes:
//!
//! - `GET /api/v1/retention` — each tier's period, cut-off and how many events are due now;
//! - `POST /api/v1/retention/run` — apply it now;
//! - `GET /api/v1/retention/policy` — the written policy as text, for the privacy notice.

use crate::export::{ProjectParam, authenticate};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use canopy_policy::{RetentionRule, cutoff_for, retention_plan, retention_policy_text};
use canopy_store::RowSelector;
use canopy_types::{Event, ProjectId};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often the job runs.
const PERIOD: Duration = Duration::from_secs(3600);

fn plan(state: &AppState, project: ProjectId) -> Result<Vec<RetentionRule>, ApiError> {
    let (_, settings) = state.projects.control().settings(project)?;
    Ok(retention_plan(&settings.privacy, state.clock.now_ms()))
}

/// The tier whose rule an event follows (unstamped or unknown stamps: `unknown`).
fn rule_tier(plan: &[RetentionRule], e: &Event) -> &'static str {
    let stamped = e.properties.get("$age_tier").and_then(Value::as_str);
    plan.iter()
        .find(|r| Some(r.tier) == stamped)
        .map_or("unknown", |r| r.tier)
}

fn expired(plan: &[RetentionRule]) -> impl Fn(&Event) -> bool + Sync + '_ {
    move |e: &Event| {
        cutoff_for(plan, Some(rule_tier(plan, e))).is_some_and(|cutoff| e.time_ms < cutoff)
    }
}

/// Authenticates, then runs `work` for the project off the async workers.
async fn for_project<T: Send + 'static>(
    state: &AppState,
    headers: &HeaderMap,
    p: &ProjectParam,
    work: impl FnOnce(&AppState, ProjectId) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let project = authenticate(state, headers, p.project_id.as_deref())?
        .project
        .id;
    let st = state.clone();
    tokio::task::spawn_blocking(move || work(&st, project))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// Events older than the newest cut-off can be due; nothing younger is.
fn newest_cutoff(plan: &[RetentionRule]) -> Option<i64> {
    plan.iter().filter_map(|r| r.cutoff_ms).max()
}

/// Before this time every event is due whatever its tier: the oldest cut-off, when every tier
/// (unknown included) has a period.
fn whole_segment_cutoff(plan: &[RetentionRule]) -> Option<i64> {
    plan.iter()
        .map(|r| r.cutoff_ms)
        .collect::<Option<Vec<i64>>>()?
        .into_iter()
        .min()
}

/// Deletes every aged-out event of `project`; returns how many.
pub(crate) fn apply(state: &AppState, project: ProjectId) -> Result<u64, ApiError> {
    let plan = plan(state, project)?;
    let Some(to_ms) = newest_cutoff(&plan) else {
        return Ok(0);
    };
    let matches = expired(&plan);
    let selector = RowSelector::Events {
        from_ms: i64::MIN,
        to_ms,
        matches: &matches,
    };
    // One pass: segments older than every tier's cut-off are dropped whole, unread; the rest
    // are read once and replaced only when they held aged-out events (a dry count first would
    // read them all twice).
    let report = state.queries.store().expire_events(
        project,
        &selector,
        whole_segment_cutoff(&plan),
        Duration::from_secs(30),
    )?;
    if report.event_rows == 0 {
        return Ok(0);
    }
    state.queries.clear_caches();
    state.projects.control().record_audit(
        project,
        "retention.applied",
        &format!(
            "{} events past their tier's retention deleted",
            report.event_rows
        ),
        state.clock.now_ms(),
    )?;
    Ok(report.event_rows)
}

/// Runs hourly until the server shuts down (the first run a minute after start).
pub(crate) async fn worker(state: AppState) {
    tokio::time::sleep(Duration::from_secs(60)).await;
    loop {
        if state.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let s = state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let projects = match s.projects.control().list_projects() {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "retention: listing projects failed");
                    return;
                }
            };
            for p in projects {
                match apply(&s, p.id) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(project = p.id.0, events = n, "retention: aged-out events deleted"),
                    Err(e) => tracing::error!(project = p.id.0, error = %e, "retention failed; will retry"),
                }
            }
        })
        .await;
        tokio::time::sleep(PERIOD).await;
    }
}

fn iso(ms: Option<i64>) -> Value {
    ms.and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .unwrap_or(Value::Null)
}

/// `GET /api/v1/retention`: what will go when.
pub(crate) async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
) -> Result<Json<Value>, ApiError> {
    for_project(&state, &headers, &p, |st, project| {
        let plan = plan(st, project)?;
        let mut tiers = Vec::new();
        for rule in &plan {
            let due = match rule.cutoff_ms {
                Some(cutoff) => {
                    let this_tier = |e: &Event| rule_tier(&plan, e) == rule.tier;
                    let selector = RowSelector::Events {
                        from_ms: i64::MIN,
                        to_ms: cutoff,
                        matches: &this_tier,
                    };
                    st.queries.store().count_selected(project, &selector)?
                }
                None => 0,
            };
            tiers.push(json!({
                "tier": rule.tier,
                "retention_days": rule.days,
                "deletes_events_before": iso(rule.cutoff_ms),
                "events_due_now": due,
            }));
        }
        Ok(Json(
            json!({"tiers": tiers, "runs_every_seconds": PERIOD.as_secs()}),
        ))
    })
    .await
}

/// `POST /api/v1/retention/run`.
pub(crate) async fn run(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
) -> Result<Json<Value>, ApiError> {
    let n = for_project(&state, &headers, &p, apply).await?;
    Ok(Json(json!({"deleted_events": n})))
}

/// `GET /api/v1/retention/policy`: the written policy, as text.
pub(crate) async fn policy(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
) -> Result<impl IntoResponse, ApiError> {
    let project = authenticate(&state, &headers, p.project_id.as_deref())?
        .project
        .id;
    let (_, settings) = state.projects.control().settings(project)?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        retention_policy_text(&settings.privacy),
    ))
}
