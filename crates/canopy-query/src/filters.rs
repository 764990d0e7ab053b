//! Structured property filters as DataFusion predicates over [`crate::property_udf`] values,
//! on event or profile properties. The filters and their operands are client definitions
//! (`canopy-report-wire/src/filters.rs`, where the semantics are written down); this module
//! only turns a checked operand into an expression.

use crate::property_udf::{PropKind, property_expr};
use crate::{QueryError, Result};
use canopy_report_wire::Operand;
pub use canopy_report_wire::{FilterOp, PropertyFilter, Source};
use datafusion::common::ScalarValue;
use datafusion::functions::expr_fn::{coalesce, lower, strpos};
use datafusion::prelude::{Expr, lit, not};

/// Column prefix of the source's properties in an events ⋈ profiles join.
pub(crate) fn source_prefix(source: Source) -> &'static str {
    match source {
        Source::Event => "",
        Source::User => "user.",
    }
}

/// The filter as a predicate over a table with columns `fields`.
pub(crate) fn filter_expr(f: &PropertyFilter, fields: &[String]) -> Result<Expr> {
    let read = |kind| property_expr(fields, source_prefix(f.source), &f.property, kind);
    let operand = f
        .operand()
        .map_err(|e| QueryError::Invalid(e.to_string()))?;
    let positive = match operand {
        Operand::OneOf { texts, numbers } => {
            let mut parts = Vec::new();
            if !texts.is_empty() {
                let texts = texts.into_iter().map(lit).collect();
                parts.push(read(PropKind::Text).in_list(texts, false));
            }
            if !numbers.is_empty() {
                let numbers = numbers.into_iter().map(lit).collect();
                parts.push(read(PropKind::Number).in_list(numbers, false));
            }
            parts
                .into_iter()
                .reduce(Expr::or)
                .unwrap_or(lit(ScalarValue::Boolean(Some(false))))
        }
        Operand::Needle(needle) => strpos(lower(read(PropKind::Text)), lit(needle)).gt(lit(0)),
        Operand::Number(n) => {
            let x = read(PropKind::Number);
            match f.op {
                FilterOp::Gt => x.gt(lit(n)),
                FilterOp::Gte => x.gt_eq(lit(n)),
                FilterOp::Lt => x.lt(lit(n)),
                _ => x.lt_eq(lit(n)),
            }
        }
        Operand::Range(a, b) => {
            let x = read(PropKind::Number);
            x.clone().gt_eq(lit(a)).and(x.lt_eq(lit(b)))
        }
        Operand::Time { at_least, below } => {
            let t = read(PropKind::Time);
            let lower_bound = at_least.map(|ms| t.clone().gt_eq(lit(ms)));
            let upper_bound = below.map(|ms| t.lt(lit(ms)));
            lower_bound
                .into_iter()
                .chain(upper_bound)
                .reduce(Expr::and)
                .unwrap_or(lit(ScalarValue::Boolean(Some(false))))
        }
        Operand::Nothing => match f.op {
            FilterOp::Set => read(PropKind::Text).is_not_null(),
            FilterOp::NotSet => read(PropKind::Text).is_null(),
            FilterOp::IsTrue => read(PropKind::Text).eq(lit("true")),
            _ => read(PropKind::Text).eq(lit("false")),
        },
    };
    // A property that is not set makes the comparison null: no match, and a match for the
    // negations.
    let matched = coalesce(vec![positive, lit(false)]);
    Ok(if f.negated() { not(matched) } else { matched })
}
