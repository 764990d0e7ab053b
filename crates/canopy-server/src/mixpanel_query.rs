//! Mixpanel's ad-hoc query API (reference §15) over Canopy's reports, for tools that already
//! speak it: `segmentation`, `events`, `retention` (under `/api/query/` and `/api/2.0/`), and
//! `engage` in `engage.rs`. Dates are whole days in the project's time zone, as in Mixpanel.

use crate::export::authenticate;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use canopy_analytics::insights_report::Series;
use canopy_analytics::time_buckets::{local_date_start_ms, parse_tz};
use canopy_analytics::{InsightsReport, InsightsRequest, RetentionRequest, StepDef};
use canopy_query::Source;
use canopy_report_wire::RetentionQuery;
use canopy_report_wire::{BreakdownDef, InsightsQuery, MeasureDef};
use canopy_types::ProjectId;
use chrono::{Datelike, Days, Months, NaiveDate, TimeZone};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The project and its time zone.
fn project_zone(
    state: &AppState,
    headers: &HeaderMap,
    project_id: Option<&str>,
) -> Result<(ProjectId, Tz, String), ApiError> {
    let project = authenticate(state, headers, project_id)?.project.id;
    let name = state.projects.control().settings(project)?.1.timezone;
    let tz = parse_tz(&name)?;
    Ok((project, tz, name))
}

fn required(v: Option<String>, name: &str) -> Result<String, ApiError> {
    v.filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("{name} is required")))
}

/// `from_date`..=`to_date` as local days: `[start of from, start of the day after to)`.
fn day_range(tz: &Tz, from: Option<String>, to: Option<String>) -> Result<(i64, i64), ApiError> {
    let day = |v: Option<String>, name: &str| -> Result<NaiveDate, ApiError> {
        let s = required(v, name)?;
        NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
            ApiError::BadRequest(format!("{name} must be a date in the form yyyy-mm-dd"))
        })
    };
    let from = local_date_start_ms(tz, day(from, "from_date")?);
    let next = local_date_start_ms(tz, day(to, "to_date")? + Days::new(1));
    if next <= from {
        return Err(ApiError::BadRequest(
            "to_date must not be before from_date".into(),
        ));
    }
    Ok((from, next))
}

/// `general` → events, `unique` → people, `average` → events per person.
/// Mixpanel's `type` as a measure. Refusals do not repeat the value (as every client error).
pub(crate) fn measure(kind: Option<&str>) -> Result<MeasureDef, ApiError> {
    let (kind, stat) = match kind.unwrap_or("general") {
        "general" => ("total", None),
        "unique" => ("unique", None),
        "average" => ("per_person", Some("avg".to_string())),
        _ => {
            return Err(ApiError::BadRequest(
                "type must be general, unique or average".into(),
            ));
        }
    };
    Ok(MeasureDef {
        kind: kind.into(),
        stat,
        property: None,
        source: Source::Event,
    })
}

fn unit(u: Option<&str>, default: &str) -> Result<String, ApiError> {
    match u.unwrap_or(default) {
        "minute" => Err(ApiError::BadRequest(
            "unit minute is not supported; use hour, day, week or month".into(),
        )),
        u @ ("hour" | "day" | "week" | "month") => Ok(u.to_string()),
        _ => Err(ApiError::BadRequest(
            "unit must be hour, day, week or month".into(),
        )),
    }
}

/// `properties["name"]` or `user["name"]` — the breakdowns `on` can express here.
fn on_property(on: &str) -> Result<(String, Source), ApiError> {
    let on = on.trim();
    let (inner, source) = if let Some(r) = on.strip_prefix("properties[") {
        (r, Source::Event)
    } else if let Some(r) = on.strip_prefix("user[") {
        (r, Source::User)
    } else {
        (on, Source::Event)
    };
    inner
        .strip_suffix(']')
        .and_then(|q| serde_json::from_str::<String>(q).ok())
        .map(|name| (name, source))
        .ok_or_else(|| {
            ApiError::BadRequest(
                "on must name one property: properties[\"name\"] or user[\"name\"]".into(),
            )
        })
}

/// Canopy's bucket labels as Mixpanel writes dates.
fn mixpanel_label(unit: &str, label: &str) -> String {
    match unit {
        "hour" => format!("{label}:00"),
        "month" => format!("{label}-01"),
        _ => label.to_string(),
    }
}

/// `{"data": {"series": [dates], "values": {key: {date: n}}}, "legend_size": n}`.
fn series_json(report: &InsightsReport, key: impl Fn(&Series) -> String) -> Value {
    let labels: Vec<String> = report
        .buckets
        .iter()
        .map(|l| mixpanel_label(&report.unit, l))
        .collect();
    let mut values = Map::new();
    for s in &report.series {
        let per_date: Map<String, Value> = labels
            .iter()
            .cloned()
            .zip(s.values.iter().cloned())
            .collect();
        values.insert(key(s), Value::Object(per_date));
    }
    json!({
        "data": {"series": labels, "values": values},
        "legend_size": report.series.len(),
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct SegmentationParams {
    project_id: Option<String>,
    event: Option<String>,
    from_date: Option<String>,
    to_date: Option<String>,
    on: Option<String>,
    unit: Option<String>,
    #[serde(rename = "where")]
    where_expr: Option<String>,
    limit: Option<usize>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// `GET /api/query/segmentation` (and `/api/2.0/segmentation`).
pub(crate) async fn segmentation(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<SegmentationParams>,
) -> Result<Json<Value>, ApiError> {
    let (project, _, timezone) = project_zone(&state, &headers, p.project_id.as_deref())?;
    let tz = parse_tz(&timezone)?;
    let (from_ms, to_ms) = day_range(&tz, p.from_date, p.to_date)?;
    let event = required(p.event, "event")?;
    let breakdown = match p.on.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(on) => {
            let (property, source) = on_property(on)?;
            Some(BreakdownDef {
                property: Some(property),
                source,
                cohort: None,
                limit: Some(p.limit.unwrap_or(60).clamp(1, 10_000)),
            })
        }
        None => None,
    };
    let by_segment = breakdown.is_some();
    let req = InsightsRequest {
        project,
        timezone,
        query: InsightsQuery {
            from_ms,
            to_ms,
            events: vec![StepDef {
                event: event.clone(),
                where_expr: None,
            }],
            measure: measure(p.kind.as_deref())?,
            measures: Vec::new(),
            unit: Some(unit(p.unit.as_deref(), "day")?),
            filters: Vec::new(),
            where_expr: p.where_expr,
            breakdown,
            cohort: None,
            compare_previous: false,
        },
        cohorts: Default::default(),
        drop_other: true,
    };
    let report = canopy_analytics::insights(&state.queries, &req).await?;
    Ok(Json(series_json(&report, |s| {
        if by_segment {
            s.segment.clone().unwrap_or_else(|| "undefined".into())
        } else {
            s.event.clone()
        }
    })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventsParams {
    project_id: Option<String>,
    event: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    unit: Option<String>,
    interval: Option<u32>,
    from_date: Option<String>,
    to_date: Option<String>,
}

/// The last `n` units up to now, in the project's zone: `[start, end of today)`.
fn last_units(tz: &Tz, unit: &str, n: u32, now_ms: i64) -> Result<(i64, i64), ApiError> {
    if !(1..=10_000).contains(&n) {
        return Err(ApiError::BadRequest(
            "interval must be between 1 and 10000".into(),
        ));
    }
    let today = tz
        .timestamp_millis_opt(now_ms)
        .single()
        .map(|t| t.date_naive())
        .unwrap_or_default();
    let back = u64::from(n - 1);
    let first = match unit {
        "week" => {
            today
                - Days::new(u64::from(today.weekday().num_days_from_monday()))
                - Days::new(7 * back)
        }
        "month" => today.with_day(1).unwrap_or(today) - Months::new(n - 1),
        "hour" => today - Days::new(back / 24),
        _ => today - Days::new(back),
    };
    Ok((
        local_date_start_ms(tz, first),
        local_date_start_ms(tz, today + Days::new(1)),
    ))
}

/// `GET /api/query/events` (and `/api/2.0/events`): `event` is a JSON array of names.
pub(crate) async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<EventsParams>,
) -> Result<Json<Value>, ApiError> {
    let (project, tz, timezone) = project_zone(&state, &headers, p.project_id.as_deref())?;
    let names: Vec<String> = p
        .event
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .filter(|v: &Vec<String>| !v.is_empty())
        .ok_or_else(|| ApiError::BadRequest("event must be a JSON array of event names".into()))?;
    let unit = unit(Some(&required(p.unit, "unit")?), "day")?;
    let kind = required(p.kind, "type")?;
    let (from_ms, to_ms) = match p.interval {
        Some(n) => last_units(&tz, &unit, n, state.clock.now_ms())?,
        None => day_range(&tz, p.from_date, p.to_date)?,
    };
    let req = InsightsRequest {
        project,
        timezone,
        query: InsightsQuery {
            from_ms,
            to_ms,
            events: names
                .into_iter()
                .map(|event| StepDef {
                    event,
                    where_expr: None,
                })
                .collect(),
            measure: measure(Some(&kind))?,
            measures: Vec::new(),
            unit: Some(unit),
            filters: Vec::new(),
            where_expr: None,
            breakdown: None,
            cohort: None,
            compare_previous: false,
        },
        cohorts: Default::default(),
        drop_other: true,
    };
    let report = canopy_analytics::insights(&state.queries, &req).await?;
    Ok(Json(series_json(&report, |s| s.event.clone())))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RetentionParams {
    project_id: Option<String>,
    from_date: Option<String>,
    to_date: Option<String>,
    retention_type: Option<String>,
    born_event: Option<String>,
    event: Option<String>,
    born_where: Option<String>,
    #[serde(rename = "where")]
    where_expr: Option<String>,
    interval_count: Option<usize>,
    unit: Option<String>,
    unbounded_retention: Option<String>,
}

/// `GET /api/query/retention` (and `/api/2.0/retention`): `{"<cohort date>": {"counts":
/// [...], "first": n}}`.
pub(crate) async fn retention(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<RetentionParams>,
) -> Result<Json<Value>, ApiError> {
    let (project, tz, timezone) = project_zone(&state, &headers, p.project_id.as_deref())?;
    let (from_ms, to_ms) = day_range(&tz, p.from_date, p.to_date)?;
    let kind = match p.retention_type.as_deref().unwrap_or("birth") {
        "birth" => "first_time",
        "compounded" => "recurring",
        _ => {
            return Err(ApiError::BadRequest(
                "retention_type must be birth or compounded".into(),
            ));
        }
    };
    let born = StepDef {
        event: required(p.born_event, "born_event")?,
        where_expr: p.born_where,
    };
    let returned = p.event.map(|event| StepDef {
        event,
        where_expr: p.where_expr,
    });
    let req = RetentionRequest {
        project,
        timezone,
        query: RetentionQuery {
            from_ms,
            to_ms,
            born,
            returned,
            unit: p.unit.unwrap_or_else(|| "day".into()),
            brackets: p.interval_count.unwrap_or(1),
            kind: Some(kind.into()),
            unbounded: p.unbounded_retention.as_deref() == Some("true"),
            cohort: None,
        },
        cohort_members: None,
    };
    let report = canopy_analytics::retention(&state.queries, &req).await?;
    let mut out = Map::new();
    for c in report.cohorts {
        out.insert(c.date, json!({"counts": c.counts, "first": c.people}));
    }
    Ok(Json(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_names_one_event_or_profile_property() {
        assert_eq!(
            on_property(r#"properties["plan"]"#).unwrap(),
            ("plan".to_string(), Source::Event)
        );
        assert_eq!(
            on_property(r#" user["$city"] "#).unwrap(),
            ("$city".to_string(), Source::User)
        );
        assert!(on_property(r#"properties["a"] + 1"#).is_err());
        assert!(on_property("plan").is_err());
    }

    #[test]
    fn the_last_n_units_end_with_today() {
        let utc: Tz = "UTC".parse().unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .timestamp_millis();
        let day =
            |s: &str| local_date_start_ms(&utc, NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap());
        assert_eq!(
            last_units(&utc, "day", 3, now).unwrap(),
            (day("2026-11-23"), day("2026-11-26"))
        );
        assert_eq!(
            last_units(&utc, "week", 2, now).unwrap().0,
            day("2026-11-16")
        );
        assert_eq!(
            last_units(&utc, "month", 2, now).unwrap().0,
            day("2026-10-01")
        );
        assert!(last_units(&utc, "day", 0, now).is_err());
    }
}
