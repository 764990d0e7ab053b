//! Writes event rows as Mixpanel export lines:
//! `{"event":"…","properties":{"time":…,"distinct_id":"…","$insert_id":"…","mp_processing_time_ms":…,…}}`
//! straight from the columns (no per-event maps), splicing the `props_other` JSON object in.

use crate::Result;
use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, StringArray, StringViewArray,
    TimestampMillisecondArray,
};
use arrow::record_batch::RecordBatch;
use canopy_store::property_of_column;
use serde_json::{Map, Value};
use std::io::Write;

const EXACT_F64: f64 = 9_007_199_254_740_992.0;

/// String columns come back as `Utf8` from segments and sometimes `Utf8View` from DataFusion.
pub(crate) enum Strings<'a> {
    Plain(&'a StringArray),
    View(&'a StringViewArray),
}

impl<'a> Strings<'a> {
    pub(crate) fn of(c: &'a ArrayRef) -> Option<Self> {
        if let Some(a) = c.as_any().downcast_ref::<StringArray>() {
            return Some(Strings::Plain(a));
        }
        c.as_any()
            .downcast_ref::<StringViewArray>()
            .map(Strings::View)
    }
    pub(crate) fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Strings::Plain(a) => (!a.is_null(i)).then(|| a.value(i)),
            Strings::View(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }
}

enum Typed<'a> {
    Str(Strings<'a>),
    Num(&'a Float64Array),
    Bool(&'a BooleanArray),
}

/// Column accessors for one batch.
pub(crate) struct EventColumns<'a> {
    time: &'a TimestampMillisecondArray,
    distinct: Strings<'a>,
    event: Strings<'a>,
    insert: Strings<'a>,
    received: &'a TimestampMillisecondArray,
    other: Strings<'a>,
    typed: Vec<(&'a str, Typed<'a>)>,
}

fn missing(name: &str) -> crate::QueryError {
    crate::QueryError::Invalid(format!("export needs the column {name}"))
}

impl<'a> EventColumns<'a> {
    pub(crate) fn new(batch: &'a RecordBatch) -> Result<Self> {
        let col = |n: &str| batch.column_by_name(n).ok_or_else(|| missing(n));
        let ts = |n: &str| -> Result<&'a TimestampMillisecondArray> {
            batch
                .column_by_name(n)
                .and_then(|c| c.as_any().downcast_ref())
                .ok_or_else(|| missing(n))
        };
        let strings = |n: &str| -> Result<Strings<'a>> {
            batch
                .column_by_name(n)
                .and_then(Strings::of)
                .ok_or_else(|| missing(n))
        };
        let _ = col("event")?;
        let schema = batch.schema_ref();
        let typed = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .filter_map(|(f, c)| {
                let name = property_of_column(f.name())?;
                let t = if let Some(a) = c.as_any().downcast_ref::<Float64Array>() {
                    Typed::Num(a)
                } else if let Some(a) = c.as_any().downcast_ref::<BooleanArray>() {
                    Typed::Bool(a)
                } else {
                    Typed::Str(Strings::of(c)?)
                };
                Some((name, t))
            })
            .collect();
        Ok(Self {
            time: ts("time")?,
            distinct: strings("distinct_id")?,
            event: strings("event")?,
            insert: strings("insert_id")?,
            received: ts("received")?,
            other: strings("props_other")?,
            typed,
        })
    }

    /// The properties of `row` as a map (for `where` evaluation), including `time` in seconds
    /// and `distinct_id`, as Mixpanel's expressions see them.
    pub(crate) fn properties(&self, row: usize) -> Map<String, Value> {
        let mut m: Map<String, Value> = self
            .other
            .get(row)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        for (k, t) in &self.typed {
            let v = match t {
                Typed::Str(a) => a.get(row).map(|s| Value::String(s.to_string())),
                Typed::Num(a) => (!a.is_null(row)).then(|| number_value(a.value(row))),
                Typed::Bool(a) => (!a.is_null(row)).then(|| Value::Bool(a.value(row))),
            };
            if let Some(v) = v {
                m.insert((*k).to_string(), v);
            }
        }
        m.insert("time".into(), Value::from(self.time.value(row) / 1000));
        m.insert(
            "distinct_id".into(),
            Value::String(self.distinct.get(row).unwrap_or("").into()),
        );
        m
    }

    pub(crate) fn write_row(&self, row: usize, time_in_ms: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"event\":");
        write_str(out, self.event.get(row).unwrap_or(""));
        out.extend_from_slice(b",\"properties\":{\"time\":");
        let t = self.time.value(row);
        let _ = write!(out, "{}", if time_in_ms { t } else { t.div_euclid(1000) });
        out.extend_from_slice(b",\"distinct_id\":");
        write_str(out, self.distinct.get(row).unwrap_or(""));
        if let Some(id) = self.insert.get(row).filter(|s| !s.is_empty()) {
            out.extend_from_slice(b",\"$insert_id\":");
            write_str(out, id);
        }
        let _ = write!(
            out,
            ",\"mp_processing_time_ms\":{}",
            self.received.value(row)
        );
        for (k, t) in &self.typed {
            match t {
                Typed::Str(a) => {
                    if let Some(s) = a.get(row) {
                        out.push(b',');
                        write_str(out, k);
                        out.push(b':');
                        write_str(out, s);
                    }
                }
                Typed::Num(a) => {
                    if !a.is_null(row) {
                        out.push(b',');
                        write_str(out, k);
                        out.push(b':');
                        write_number(out, a.value(row));
                    }
                }
                Typed::Bool(a) => {
                    if !a.is_null(row) {
                        out.push(b',');
                        write_str(out, k);
                        out.extend_from_slice(if a.value(row) { b":true" } else { b":false" });
                    }
                }
            }
        }
        if let Some(other) = self.other.get(row) {
            // A JSON object written by the store: splice its members in.
            let inner = other.trim();
            let inner = inner
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .unwrap_or("");
            if !inner.trim().is_empty() {
                out.push(b',');
                out.extend_from_slice(inner.as_bytes());
            }
        }
        out.extend_from_slice(b"}}\n");
    }
}

pub(crate) fn number_value(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() <= EXACT_F64 {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn write_number(out: &mut Vec<u8>, f: f64) {
    if f.fract() == 0.0 && f.abs() <= EXACT_F64 {
        let _ = write!(out, "{}", f as i64);
    } else if f.is_finite() {
        let _ = serde_json::to_writer(&mut *out, &f);
    } else {
        out.extend_from_slice(b"null");
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}
