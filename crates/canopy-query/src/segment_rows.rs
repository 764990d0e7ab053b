//! The two ends of an insights aggregation that are not the plan itself: mapping segments
//! outside a breakdown's top N to `$other`, and reading the result batches into rows.

use crate::ndjson::Strings;
use crate::segmentation::{AggregateRow, OTHER_SEGMENT};
use crate::{QueryError, Result};
use arrow::array::{Array, Float64Array, Int32Array};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::when;
use datafusion::prelude::{DataFrame, Expr, lit};

/// `segment` when it is one of `keep`, else [`OTHER_SEGMENT`].
pub(crate) fn keep_top(segment: Expr, keep: &[Option<String>]) -> Expr {
    let values: Vec<Expr> = keep.iter().flatten().map(|s| lit(s.as_str())).collect();
    let keep_unset = keep.iter().any(Option::is_none);
    let unset = if keep_unset {
        lit(ScalarValue::Utf8(None))
    } else {
        lit(OTHER_SEGMENT)
    };
    let kept = if values.is_empty() {
        lit(false)
    } else {
        segment.clone().in_list(values, false)
    };
    when(segment.clone().is_null(), unset)
        .when(kept, segment)
        .otherwise(lit(OTHER_SEGMENT))
        .unwrap_or_else(|_| lit(OTHER_SEGMENT))
}

pub(crate) async fn collect_rows(df: DataFrame) -> Result<Vec<AggregateRow>> {
    let mut rows = Vec::new();
    for batch in df.collect().await? {
        let ev = string_column(&batch, "ev")?;
        let seg_col = batch
            .column_by_name("seg")
            .ok_or_else(|| QueryError::Invalid("aggregate lacks seg".into()))?;
        let seg_text = arrow::compute::cast(seg_col, &DataType::Utf8)?;
        let seg = Strings::of(&seg_text)
            .ok_or_else(|| QueryError::Invalid("aggregate seg is not text".into()))?;
        let bucket = batch
            .column_by_name("bucket")
            .and_then(|c| c.as_any().downcast_ref::<Int32Array>())
            .ok_or_else(|| QueryError::Invalid("aggregate lacks bucket".into()))?;
        let v = batch
            .column_by_name("v")
            .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
            .ok_or_else(|| QueryError::Invalid("aggregate lacks v".into()))?;
        for row in 0..batch.num_rows() {
            rows.push(AggregateRow {
                event: ev.get(row).unwrap_or_default().to_string(),
                segment: seg.get(row).map(str::to_string),
                bucket: (!bucket.is_null(row)).then(|| bucket.value(row).max(0) as u32),
                value: (!v.is_null(row)).then(|| v.value(row)),
            });
        }
    }
    Ok(rows)
}

/// A text column of a result batch.
pub(crate) fn string_column<'a>(
    batch: &'a arrow::record_batch::RecordBatch,
    name: &str,
) -> Result<Strings<'a>> {
    batch
        .column_by_name(name)
        .and_then(Strings::of)
        .ok_or_else(|| QueryError::Invalid(format!("result lacks the text column {name}")))
}
