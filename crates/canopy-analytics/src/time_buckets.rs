//! Time buckets in a project's time zone: the instants local hours, days, weeks (Monday) and
//! months start, and their labels. Computed once per query; rows find their bucket by binary
//! search over the starts (`canopy_query`'s `canopy_bucket`), so DST days are 23 or 25 hours
//! long exactly as the wall clock says.

use crate::{AnalyticsError, Result};
use chrono::{Datelike, Days, Months, NaiveDate, NaiveDateTime, TimeZone, Timelike};
use chrono_tz::Tz;

pub use canopy_report_wire::Unit;

/// At most this many buckets per query (an hourly year is 8,784).
pub const MAX_BUCKETS: usize = 10_000;

pub fn parse_tz(name: &str) -> Result<Tz> {
    name.parse()
        .map_err(|_| AnalyticsError::Invalid(format!("unknown time zone {name:?}")))
}

/// The instant a local wall-clock time first occurs (the next hour's, when a DST gap skips it).
fn instant(tz: &Tz, local: NaiveDateTime) -> i64 {
    let mut t = local;
    for _ in 0..4 {
        if let Some(dt) = tz.from_local_datetime(&t).earliest() {
            return dt.timestamp_millis();
        }
        t += chrono::Duration::hours(1);
    }
    local.and_utc().timestamp_millis()
}

fn local(tz: &Tz, ms: i64) -> NaiveDateTime {
    tz.timestamp_millis_opt(ms)
        .single()
        .map(|d| d.naive_local())
        .unwrap_or_default()
}

/// The first day of the unit containing `date`.
pub(crate) fn unit_start(unit: Unit, date: NaiveDate) -> NaiveDate {
    match unit {
        Unit::Week => date - Days::new(u64::from(date.weekday().num_days_from_monday())),
        Unit::Month => date.with_day(1).unwrap_or(date),
        Unit::Hour | Unit::Day => date,
    }
}

/// Bucket starts covering `[from_ms, to_ms)` (the first at or before `from_ms`) and labels:
/// `YYYY-MM-DD HH:00` for hours, `YYYY-MM-DD` for days and weeks (the Monday), `YYYY-MM` for
/// months.
pub fn buckets(tz: &Tz, unit: Unit, from_ms: i64, to_ms: i64) -> Result<(Vec<i64>, Vec<String>)> {
    let mut starts = Vec::new();
    let mut labels = Vec::new();
    let first = local(tz, from_ms);
    match unit {
        Unit::Hour => {
            let hour = first
                .date()
                .and_hms_opt(first.hour(), 0, 0)
                .unwrap_or(first);
            let mut t = instant(tz, hour);
            while t < to_ms {
                starts.push(t);
                labels.push(local(tz, t).format("%Y-%m-%d %H:00").to_string());
                t += 3_600_000;
                if starts.len() > MAX_BUCKETS {
                    break;
                }
            }
        }
        _ => {
            let mut date = unit_start(unit, first.date());
            loop {
                let t = instant(tz, date.and_time(chrono::NaiveTime::MIN));
                if t >= to_ms || starts.len() > MAX_BUCKETS {
                    break;
                }
                starts.push(t);
                labels.push(match unit {
                    Unit::Month => date.format("%Y-%m").to_string(),
                    _ => date.format("%Y-%m-%d").to_string(),
                });
                date = match unit {
                    Unit::Week => date + Days::new(7),
                    Unit::Month => date + Months::new(1),
                    _ => date + Days::new(1),
                };
            }
        }
    }
    if starts.len() > MAX_BUCKETS {
        return Err(AnalyticsError::Invalid(format!(
            "more than {MAX_BUCKETS} time buckets; choose a coarser unit or a shorter range"
        )));
    }
    Ok((starts, labels))
}

/// The instant local day `date` begins in `tz`.
pub fn local_date_start_ms(tz: &Tz, date: NaiveDate) -> i64 {
    instant(tz, date.and_time(chrono::NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn days_follow_the_wall_clock_across_dst() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // 2026-11-01 is the day New York falls back: 25 hours long.
        let (starts, labels) = buckets(
            &ny,
            Unit::Day,
            utc("2026-10-31T12:00:00Z"),
            utc("2026-11-03T05:00:00Z"),
        )
        .unwrap();
        assert_eq!(labels, ["2026-10-31", "2026-11-01", "2026-11-02"]);
        assert_eq!(starts[0], utc("2026-10-31T04:00:00Z"));
        assert_eq!(starts[2] - starts[1], 25 * 3_600_000);
    }

    #[test]
    fn weeks_start_on_monday_months_on_the_first_hours_on_local_hours() {
        let kolkata: Tz = "Asia/Kolkata".parse().unwrap();
        let (_, w) = buckets(
            &kolkata,
            Unit::Week,
            utc("2026-11-22T00:00:00Z"),
            utc("2026-11-24T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(w, ["2026-11-16", "2026-11-23"]);
        let (_, m) = buckets(
            &kolkata,
            Unit::Month,
            utc("2026-11-22T00:00:00Z"),
            utc("2027-01-02T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(m, ["2026-11", "2026-12", "2027-01"]);
        let (s, h) = buckets(
            &kolkata,
            Unit::Hour,
            utc("2026-11-22T00:10:00Z"),
            utc("2026-11-22T01:00:00Z"),
        )
        .unwrap();
        // 00:10 UTC is 05:40 IST; the local hour began at 05:00 IST = 23:30 UTC.
        assert_eq!(h, ["2026-11-22 05:00", "2026-11-22 06:00"]);
        assert_eq!(s[0], utc("2026-11-21T23:30:00Z"));
        assert!(buckets(&kolkata, Unit::Hour, 0, 20_000 * 3_600_000).is_err());
    }
}
