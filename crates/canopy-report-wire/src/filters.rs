//! Structured property filters (the insights builder's "where plan equals pro") on event or
//! profile properties, and the operand each operator needs. The engine turns a checked
//! [`Operand`] into a predicate (`canopy-query/src/filters.rs`). Semantics (also in
//! `docs/query-semantics.md`): a filter's value decides how a property is read — a string
//! compares text, a number compares numbers; negations (`not_equals`, `not_contains`,
//! `not_in`) also match events where the property is not set.

use crate::{Result, WireError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Whose properties a filter or breakdown reads.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The event's own properties.
    #[default]
    Event,
    /// The person's profile (as it is now, merges applied).
    User,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    Equals,
    NotEquals,
    Contains,
    NotContains,
    In,
    NotIn,
    Gt,
    Gte,
    Lt,
    Lte,
    Between,
    Set,
    NotSet,
    IsTrue,
    IsFalse,
    DateAfter,
    DateBefore,
    DateBetween,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct PropertyFilter {
    pub property: String,
    #[serde(default)]
    pub source: Source,
    pub op: FilterOp,
    #[serde(default)]
    pub value: Value,
}

/// What a filter compares the property with, read from its `value` for its operator.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// `equals`, `in` and their negations: text values compare as text (booleans as
    /// `true` / `false`), numbers as numbers; at least one value.
    OneOf {
        texts: Vec<String>,
        numbers: Vec<f64>,
    },
    /// `contains` / `not_contains`: a case-insensitive substring, lower-cased.
    Needle(String),
    /// `gt`, `gte`, `lt`, `lte`.
    Number(f64),
    /// `between`: both ends included.
    Range(f64, f64),
    /// Dates: `[at_least, below)` in ms since the epoch; a date-only end of `date_between`
    /// includes its whole day.
    Time {
        at_least: Option<i64>,
        below: Option<i64>,
    },
    /// `set`, `not_set`, `is_true`, `is_false`.
    Nothing,
}

const DAY_MS: i64 = 86_400_000;

impl PropertyFilter {
    /// Does the operator negate (match where the positive form does not, or nothing is set)?
    pub fn negated(&self) -> bool {
        matches!(
            self.op,
            FilterOp::NotEquals | FilterOp::NotContains | FilterOp::NotIn
        )
    }

    fn invalid(&self, what: &str) -> WireError {
        let op = serde_json::to_value(self.op).unwrap_or_default();
        WireError::Invalid(format!("the {} filter {what}", op.as_str().unwrap_or("")))
    }

    /// The operand its operator needs, or why `value` does not give one.
    pub fn operand(&self) -> Result<Operand> {
        let number = |v: &Value| v.as_f64().ok_or_else(|| self.invalid("needs a number"));
        let time = |v: &Value| -> Result<(i64, bool)> {
            let s = v.as_str().ok_or_else(|| self.invalid("needs a date"))?;
            let ms = parse_time_ms(s)
                .ok_or_else(|| self.invalid("needs a date (YYYY-MM-DD or RFC 3339)"))?;
            Ok((ms, s.trim().len() == 10))
        };
        let pair = || -> Result<(&Value, &Value)> {
            match self.value.as_array().map(Vec::as_slice) {
                Some([a, b]) => Ok((a, b)),
                _ => Err(self.invalid("needs [from, to]")),
            }
        };
        Ok(match self.op {
            FilterOp::Equals | FilterOp::In | FilterOp::NotEquals | FilterOp::NotIn => {
                let values: Vec<&Value> = match &self.value {
                    Value::Array(items) => items.iter().collect(),
                    v => vec![v],
                };
                let (mut texts, mut numbers) = (Vec::new(), Vec::new());
                for v in values {
                    match v {
                        Value::String(s) => texts.push(s.clone()),
                        Value::Bool(b) => texts.push(b.to_string()),
                        Value::Number(n) => numbers.push(n.as_f64().unwrap_or(f64::NAN)),
                        _ => return Err(self.invalid("needs strings, numbers or booleans")),
                    }
                }
                if texts.is_empty() && numbers.is_empty() {
                    return Err(self.invalid("needs a value"));
                }
                Operand::OneOf { texts, numbers }
            }
            FilterOp::Contains | FilterOp::NotContains => Operand::Needle(
                self.value
                    .as_str()
                    .ok_or_else(|| self.invalid("needs a string"))?
                    .to_lowercase(),
            ),
            FilterOp::Gt | FilterOp::Gte | FilterOp::Lt | FilterOp::Lte => {
                Operand::Number(number(&self.value)?)
            }
            FilterOp::Between => {
                let (a, b) = pair()?;
                Operand::Range(number(a)?, number(b)?)
            }
            FilterOp::Set | FilterOp::NotSet | FilterOp::IsTrue | FilterOp::IsFalse => {
                Operand::Nothing
            }
            FilterOp::DateAfter => Operand::Time {
                at_least: Some(time(&self.value)?.0),
                below: None,
            },
            FilterOp::DateBefore => Operand::Time {
                at_least: None,
                below: Some(time(&self.value)?.0),
            },
            FilterOp::DateBetween => {
                let (a, b) = pair()?;
                let (end, date_only) = time(b)?;
                Operand::Time {
                    at_least: Some(time(a)?.0),
                    // A date-only end includes its whole day; an instant includes itself.
                    below: Some(end.saturating_add(if date_only { DAY_MS } else { 1 })),
                }
            }
        })
    }
}

/// Checks every filter's operand; an error names the filter's index.
pub(crate) fn check_filters(filters: &[PropertyFilter]) -> Result<()> {
    for (i, f) in filters.iter().enumerate() {
        f.operand()
            .map_err(|e| WireError::Invalid(format!("filters[{i}]: {e}")))?;
    }
    Ok(())
}

/// RFC 3339, or a naive `YYYY-MM-DD[THH:MM[:SS[.fff]]]` read as UTC.
pub fn parse_time_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(op: &str, value: Value) -> PropertyFilter {
        serde_json::from_value(serde_json::json!({"property": "plan", "op": op, "value": value}))
            .unwrap()
    }

    #[test]
    fn operands_follow_the_operator_and_wrong_values_are_named() {
        use serde_json::json;
        assert_eq!(
            filter("in", json!(["pro", 3, true])).operand().unwrap(),
            Operand::OneOf {
                texts: vec!["pro".into(), "true".into()],
                numbers: vec![3.0]
            }
        );
        assert_eq!(
            filter("contains", json!("PrO")).operand().unwrap(),
            Operand::Needle("pro".into())
        );
        let day = 86_400_000;
        let start = parse_time_ms("2026-01-01").unwrap();
        assert_eq!(
            filter("date_between", json!(["2026-01-01", "2026-01-02"]))
                .operand()
                .unwrap(),
            Operand::Time {
                at_least: Some(start),
                below: Some(start + 2 * day)
            }
        );
        assert_eq!(
            filter(
                "date_between",
                json!(["2026-01-01", "2026-01-02T00:00:00Z"])
            )
            .operand()
            .unwrap(),
            Operand::Time {
                at_least: Some(start),
                below: Some(start + day + 1)
            }
        );
        for (op, value, why) in [
            ("in", json!([]), "needs a value"),
            ("in", json!([{}]), "needs strings, numbers or booleans"),
            ("gt", json!("3"), "needs a number"),
            ("between", json!([1]), "needs [from, to]"),
            (
                "date_after",
                json!("yesterday"),
                "needs a date (YYYY-MM-DD or RFC 3339)",
            ),
            ("contains", json!(1), "needs a string"),
        ] {
            let e = filter(op, value).operand().unwrap_err().to_string();
            assert!(e.ends_with(why), "{op}: {e}");
        }
    }
}
