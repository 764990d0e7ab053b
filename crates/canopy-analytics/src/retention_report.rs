//! The retention report (issue #5): people born (a first or every birth event) in a range,
//! grouped into cohorts by day, week or month of birth in the project's time zone, and how
//! many came back in each bracket after birth. Rules in `docs/query-semantics.md`; the
//! per-person operator is `retention.rs`.

use crate::Result;
use crate::retention::{Kind, RetentionEvent, RetentionSpec, RetentionTable};
use crate::time_buckets::{Unit, parse_tz, unit_start};
use canopy_query::{QueryEngine, SequenceRequest};
use canopy_report_wire::{Definition, RetentionQuery};
use canopy_types::ProjectId;
use chrono::TimeZone;
use serde::Serialize;

/// A retention report to run: the client's definition and what the server resolved for it.
#[derive(Debug, Clone)]
pub struct RetentionRequest {
    pub project: ProjectId,
    pub query: RetentionQuery,
    /// IANA zone of the cohorts (the project's setting).
    pub timezone: String,
    /// The members of the query's `cohort`.
    pub cohort_members: Option<canopy_query::PersonSet>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Cohort {
    /// The cohort's first day, `YYYY-MM-DD` in the project's time zone.
    pub date: String,
    pub people: u64,
    /// People who returned in each bracket.
    pub counts: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RetentionReport {
    pub cohorts: Vec<Cohort>,
}

const DAY_MS: i64 = 86_400_000;

/// The cohort key of a time: the local date (days since 1970-01-01) starting its unit.
fn cohort_start(tz: &chrono_tz::Tz, unit: Unit, t: i64) -> i64 {
    let Some(local) = tz.timestamp_millis_opt(t).single() else {
        return t.div_euclid(DAY_MS);
    };
    unit_start(unit, local.date_naive())
        .signed_duration_since(chrono::NaiveDate::default())
        .num_days()
}

pub async fn retention(engine: &QueryEngine, req: &RetentionRequest) -> Result<RetentionReport> {
    let q = &req.query;
    q.check()?;
    let (cohort_unit, unit_ms) = q.unit()?;
    let kind = q.kind()?;
    let tz = parse_tz(&req.timezone)?;
    let (born, returned) = q.compiled_steps()?;
    let mut names = vec![born.event.clone(), returned.event.clone()];
    names.dedup();
    // First-time retention needs every earlier birth to know which is the first: scan from
    // the beginning of time for births; returns only matter until the last bracket closes.
    let scan_from = if kind == Kind::FirstTime {
        0
    } else {
        q.from_ms
    };
    let horizon = unit_ms.saturating_mul(q.brackets as i64);
    let rows = engine
        .sequences(&SequenceRequest {
            project: req.project,
            from_ms: scan_from,
            to_ms: q.to_ms.saturating_add(horizon),
            events: names.clone(),
            with_properties: born.has_filter() || returned.has_filter(),
            persons: crate::cohorts::person_filter(q.cohort.as_ref(), req.cohort_members.as_ref())?,
        })
        .await?;
    let spec = RetentionSpec {
        kind,
        unit_ms,
        brackets: q.brackets,
        unbounded: q.unbounded,
        from_ms: q.from_ms,
        to_ms: q.to_ms,
    };
    let bucket = |t: i64| cohort_start(&tz, cohort_unit, t);
    let shards = rows.fold_persons(
        || (RetentionTable::default(), Vec::<RetentionEvent>::new()),
        |(table, person_events), person| {
            person_events.clear();
            person_events.extend(person.iter().map(|r| {
                let name = names[usize::from(r.event)].as_str();
                let props = r.properties.as_deref();
                RetentionEvent {
                    time_ms: r.time_ms,
                    birth: born.matches(name, props),
                    returned: returned.matches(name, props),
                }
            }));
            spec.add_person(person_events, &bucket, table);
        },
    )?;
    let mut table = RetentionTable::default();
    for (shard, _) in shards {
        for (cohort, (people, counts)) in shard.cohorts {
            let row = table
                .cohorts
                .entry(cohort)
                .or_insert_with(|| (0, vec![0; counts.len()]));
            row.0 += people;
            row.1.iter_mut().zip(&counts).for_each(|(a, b)| *a += b);
        }
    }
    let cohorts = table
        .cohorts
        .into_iter()
        .map(|(day, (people, counts))| Cohort {
            date: (chrono::NaiveDate::default() + chrono::Days::new(day.max(0) as u64))
                .format("%Y-%m-%d")
                .to_string(),
            people,
            counts,
        })
        .collect();
    Ok(RetentionReport { cohorts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cohorts_start_on_the_local_day_week_and_month() {
        let kolkata: chrono_tz::Tz = "Asia/Kolkata".parse().unwrap();
        // 2026-11-22T20:00Z is 01:30 on the 23rd in India (a Monday).
        let t = 1_795_377_600_000;
        let day = |d: &str| {
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .unwrap()
                .signed_duration_since(chrono::NaiveDate::default())
                .num_days()
        };
        assert_eq!(cohort_start(&kolkata, Unit::Day, t), day("2026-11-23"));
        assert_eq!(
            cohort_start(&chrono_tz::UTC, Unit::Day, t),
            day("2026-11-22")
        );
        assert_eq!(cohort_start(&kolkata, Unit::Week, t), day("2026-11-23"));
        assert_eq!(
            cohort_start(&chrono_tz::UTC, Unit::Week, t),
            day("2026-11-16")
        );
        assert_eq!(cohort_start(&kolkata, Unit::Month, t), day("2026-11-01"));
    }
}
