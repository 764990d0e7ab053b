//! Structured property filters (the insights builder's "where plan equals pro") as DataFusion
//! predicates over [`crate::property_udf`] values, on event or profile properties.
//! Semantics (also in `docs/query-semantics.md`): a filter's value decides how a property is
//! read — a string compares text, a number compares numbers; negations (`not_equals`,
//! `not_contains`, `not_in`) also match events where the property is not set.

use crate::property_udf::{PropKind, parse_time_ms, property_expr};
use crate::{QueryError, Result};
use datafusion::common::ScalarValue;
use datafusion::functions::expr_fn::{coalesce, lower, strpos};
use datafusion::prelude::{Expr, lit, not};
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

impl Source {
    /// Column prefix of the source's properties in an events ⋈ profiles join.
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Source::Event => "",
            Source::User => "user.",
        }
    }
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

fn invalid(f: &PropertyFilter, what: &str) -> QueryError {
    QueryError::Invalid(format!("filter on {:?} ({:?}): {what}", f.property, f.op))
}

/// The filter as a predicate over a table with columns `fields`.
pub(crate) fn filter_expr(f: &PropertyFilter, fields: &[String]) -> Result<Expr> {
    let read = |kind| property_expr(fields, f.source.prefix(), &f.property, kind);
    let number = |v: &Value| v.as_f64().ok_or_else(|| invalid(f, "needs a number"));
    let time = |v: &Value, end: bool| -> Result<Expr> {
        let s = v.as_str().ok_or_else(|| invalid(f, "needs a date"))?;
        let ms =
            parse_time_ms(s).ok_or_else(|| invalid(f, "needs a date (YYYY-MM-DD or RFC 3339)"))?;
        // A date-only end bound includes its whole day.
        let date_only = s.trim().len() == 10;
        Ok(match (end, date_only) {
            (true, true) => read(PropKind::Time).lt(lit(ms + 86_400_000)),
            (true, false) => read(PropKind::Time).lt_eq(lit(ms)),
            (false, _) => read(PropKind::Time).gt_eq(lit(ms)),
        })
    };
    let pair = || -> Result<(&Value, &Value)> {
        match f.value.as_array().map(Vec::as_slice) {
            Some([a, b]) => Ok((a, b)),
            _ => Err(invalid(f, "needs [from, to]")),
        }
    };
    let positive = |op: FilterOp| -> Result<Expr> {
        Ok(match op {
            FilterOp::Equals | FilterOp::In | FilterOp::NotEquals | FilterOp::NotIn => {
                let values: Vec<&Value> = match &f.value {
                    Value::Array(items) => items.iter().collect(),
                    v => vec![v],
                };
                one_of(f, &values, read)?
            }
            FilterOp::Contains | FilterOp::NotContains => {
                let needle = f
                    .value
                    .as_str()
                    .ok_or_else(|| invalid(f, "needs a string"))?;
                strpos(lower(read(PropKind::Text)), lit(needle.to_lowercase())).gt(lit(0))
            }
            FilterOp::Gt => read(PropKind::Number).gt(lit(number(&f.value)?)),
            FilterOp::Gte => read(PropKind::Number).gt_eq(lit(number(&f.value)?)),
            FilterOp::Lt => read(PropKind::Number).lt(lit(number(&f.value)?)),
            FilterOp::Lte => read(PropKind::Number).lt_eq(lit(number(&f.value)?)),
            FilterOp::Between => {
                let (a, b) = pair()?;
                let n = read(PropKind::Number);
                n.clone()
                    .gt_eq(lit(number(a)?))
                    .and(n.lt_eq(lit(number(b)?)))
            }
            FilterOp::Set => read(PropKind::Text).is_not_null(),
            FilterOp::NotSet => read(PropKind::Text).is_null(),
            FilterOp::IsTrue => read(PropKind::Text).eq(lit("true")),
            FilterOp::IsFalse => read(PropKind::Text).eq(lit("false")),
            FilterOp::DateAfter => time(&f.value, false)?,
            FilterOp::DateBefore => {
                let s = f.value.as_str().ok_or_else(|| invalid(f, "needs a date"))?;
                let ms = parse_time_ms(s)
                    .ok_or_else(|| invalid(f, "needs a date (YYYY-MM-DD or RFC 3339)"))?;
                read(PropKind::Time).lt(lit(ms))
            }
            FilterOp::DateBetween => {
                let (a, b) = pair()?;
                time(a, false)?.and(time(b, true)?)
            }
        })
    };
    Ok(match f.op {
        FilterOp::NotEquals | FilterOp::NotContains | FilterOp::NotIn => {
            not(coalesce(vec![positive(f.op)?, lit(false)]))
        }
        op => coalesce(vec![positive(op)?, lit(false)]),
    })
}

/// Equality with any of `values`: strings compare text, numbers compare numbers, booleans
/// compare `true`/`false`.
fn one_of(f: &PropertyFilter, values: &[&Value], read: impl Fn(PropKind) -> Expr) -> Result<Expr> {
    let mut texts = Vec::new();
    let mut numbers = Vec::new();
    for v in values {
        match v {
            Value::String(s) => texts.push(lit(s.as_str())),
            Value::Bool(b) => texts.push(lit(b.to_string())),
            Value::Number(n) => numbers.push(lit(n.as_f64().unwrap_or(f64::NAN))),
            _ => return Err(invalid(f, "needs strings, numbers or booleans")),
        }
    }
    if texts.is_empty() && numbers.is_empty() {
        return Err(invalid(f, "needs a value"));
    }
    let mut parts = Vec::new();
    if !texts.is_empty() {
        parts.push(read(PropKind::Text).in_list(texts, false));
    }
    if !numbers.is_empty() {
        parts.push(read(PropKind::Number).in_list(numbers, false));
    }
    Ok(parts
        .into_iter()
        .reduce(Expr::or)
        .unwrap_or(lit(ScalarValue::Boolean(Some(false)))))
}
