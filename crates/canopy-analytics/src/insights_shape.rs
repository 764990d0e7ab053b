//! Turning the aggregation's rows into an insights report: the top segments of a breakdown,
//! `$other` for additive measures, and one series per (event, segment) with a value per
//! bucket. Split from `insights_report.rs`, which validates and runs the queries.

use crate::insights_report::Series;
use canopy_query::{AggregateRow, Measure, Stat};
use canopy_report_wire::StepDef;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

pub(crate) type Rows = Vec<(usize, AggregateRow)>;

/// Measures whose value for a union of segments is the sum of the segments' values.
pub(crate) fn additive(m: &Measure) -> bool {
    matches!(
        m,
        Measure::Total
            | Measure::Property {
                stat: Stat::Sum,
                ..
            }
    )
}

/// Sums every segment outside `keep` into `$other`, per event and bucket (for additive
/// measures, this saves the second scan).
pub(crate) fn fold_other(rows: Rows, keep: &[Option<String>]) -> Rows {
    let mut out: Rows = Vec::with_capacity(rows.len());
    let mut other: BTreeMap<(usize, Option<u32>), (String, Option<f64>)> = BTreeMap::new();
    for (e, r) in rows {
        if keep.contains(&r.segment) {
            out.push((e, r));
            continue;
        }
        let slot = other
            .entry((e, r.bucket))
            .or_insert_with(|| (r.event.clone(), None));
        if let Some(v) = r.value {
            slot.1 = Some(slot.1.unwrap_or(0.0) + v);
        }
    }
    for ((e, bucket), (event, value)) in other {
        out.push((
            e,
            AggregateRow {
                event,
                segment: Some(canopy_query::OTHER_SEGMENT.to_string()),
                bucket,
                value,
            },
        ));
    }
    out
}

pub(crate) fn segments_per_event(rows: &Rows) -> HashMap<usize, usize> {
    let mut n = HashMap::new();
    for (e, _) in rows.iter().filter(|(_, r)| r.bucket.is_none()) {
        *n.entry(*e).or_insert(0) += 1;
    }
    n
}

/// The union over events of each event's `limit` largest segments (ties: by label).
pub(crate) fn top_segments(rows: &Rows, limit: usize) -> Vec<Option<String>> {
    let mut by_event: BTreeMap<usize, Vec<&AggregateRow>> = BTreeMap::new();
    for (e, r) in rows.iter().filter(|(_, r)| r.bucket.is_none()) {
        by_event.entry(*e).or_default().push(r);
    }
    let mut keep: Vec<Option<String>> = Vec::new();
    for (_, mut segs) in by_event {
        segs.sort_by(|a, b| {
            b.value
                .unwrap_or(f64::MIN)
                .total_cmp(&a.value.unwrap_or(f64::MIN))
                .then_with(|| a.segment.cmp(&b.segment))
        });
        for s in segs.into_iter().take(limit) {
            if !keep.contains(&s.segment) {
                keep.push(s.segment.clone());
            }
        }
    }
    keep
}

pub(crate) fn number(v: Option<f64>, counting: bool) -> Value {
    match v {
        Some(f) if counting || (f.fract() == 0.0 && f.abs() < 9e15) => {
            if f.fract() == 0.0 {
                Value::from(f as i64)
            } else {
                Value::from(f)
            }
        }
        Some(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        None if counting => Value::from(0),
        None => Value::Null,
    }
}

/// One series per (event, segment) in request order, then by total descending.
pub(crate) fn shape(events: &[StepDef], rows: Rows, buckets: usize, counting: bool) -> Vec<Series> {
    // (selector, segment) → (value per bucket, whole-range value)
    type Cells = (Vec<Option<f64>>, Option<f64>);
    let mut grouped: BTreeMap<(usize, Option<String>), Cells> = BTreeMap::new();
    for (e, r) in rows {
        let entry = grouped
            .entry((e, r.segment))
            .or_insert_with(|| (vec![None; buckets], None));
        match r.bucket {
            Some(b) => {
                if let Some(slot) = entry.0.get_mut(b as usize) {
                    *slot = r.value;
                }
            }
            None => entry.1 = r.value,
        }
    }
    let mut series: Vec<(usize, Option<f64>, Series)> = grouped
        .into_iter()
        .map(|((e, segment), (values, total))| {
            (
                e,
                total,
                Series {
                    event: events[e].event.clone(),
                    measure: None,
                    segment,
                    values: values.into_iter().map(|v| number(v, counting)).collect(),
                    total: number(total, counting),
                },
            )
        })
        .collect();
    series.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| b.1.unwrap_or(f64::MIN).total_cmp(&a.1.unwrap_or(f64::MIN)))
            .then_with(|| a.2.segment.cmp(&b.2.segment))
    });
    series.into_iter().map(|(_, _, s)| s).collect()
}
