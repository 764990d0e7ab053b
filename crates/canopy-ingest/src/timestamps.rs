//! Timestamps as Segment and PostHog send them: ISO-8601 / RFC 3339 (with or without a zone,
//! naive times are UTC), dates, or numeric epochs (seconds or milliseconds).

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::Value;

/// Milliseconds since the epoch, or `None` when `v` is not a time.
pub fn parse_timestamp(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => {
            let f = n.as_f64()?;
            if !f.is_finite() {
                return None;
            }
            Some(if f.abs() < 1e11 {
                (f * 1000.0) as i64
            } else {
                f as i64
            })
        }
        Value::String(s) => parse_str(s.trim()),
        _ => None,
    }
}

fn parse_str(s: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        return Some(t.timestamp_millis());
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis());
    }
    if let Ok(n) = s.parse::<f64>() {
        return parse_timestamp(&serde_json::json!(n));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_formats_sdks_send() {
        let t = 1_763_000_000_123;
        assert_eq!(parse_timestamp(&json!("2025-11-13T02:13:20.123Z")), Some(t));
        assert_eq!(
            parse_timestamp(&json!("2025-11-13T07:43:20.123+05:30")),
            Some(t)
        );
        assert_eq!(parse_timestamp(&json!("2025-11-13T02:13:20.123")), Some(t));
        assert_eq!(parse_timestamp(&json!(t)), Some(t));
        assert_eq!(
            parse_timestamp(&json!(1_763_000_000)),
            Some(1_763_000_000_000)
        );
        assert_eq!(
            parse_timestamp(&json!("2025-11-13")),
            Some(1_762_992_000_000)
        );
        assert_eq!(parse_timestamp(&json!("yesterday")), None);
        assert_eq!(parse_timestamp(&json!(null)), None);
    }
}
