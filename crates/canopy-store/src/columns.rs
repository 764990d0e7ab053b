//! Events ↔ Arrow columns.
//!
//! Fixed columns carry the reserved fields. Properties are schemaless, so each segment gets a
//! typed column (`p.<name>`: Utf8, Float64 or Boolean) for every frequent scalar property, and
//! whatever does not fit (rare keys, lists, objects, values of a minority type, integers that
//! a float cannot hold exactly) goes to the `props_other` JSON column. Filtering or breaking
//! down by one property then reads one typed column instead of parsing every event's JSON.

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Float64Array, Float64Builder, StringArray,
    StringBuilder, TimestampMillisecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use canopy_types::{Event, PersonKey, ProjectId, is_identifier_property};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use std::sync::Arc;

use crate::Result;

/// Prefix of typed property columns. The full name is `p.<t>.<property>` where `<t>` is `s`
/// (Utf8), `n` (Float64) or `b` (Boolean): a property sent as a number in one segment and as
/// text in another gets two columns, so no segment's values are ever cast.
pub const PROPERTY_COLUMN_PREFIX: &str = "p.";

/// The property name of a typed column, if `column` is one.
pub fn property_of_column(column: &str) -> Option<&str> {
    let rest = column.strip_prefix(PROPERTY_COLUMN_PREFIX)?;
    let (t, name) = rest.split_at_checked(2)?;
    matches!(t, "s." | "n." | "b.").then_some(name)
}

fn typed_column_name(kind: Kind, property: &str) -> String {
    let t = match kind {
        Kind::Str => 's',
        Kind::Num => 'n',
        Kind::Bool => 'b',
    };
    format!("{PROPERTY_COLUMN_PREFIX}{t}.{property}")
}
/// The fixed columns of the events table, in order.
/// There is no `distinct_id`: events carry the person key, raw ids live in the identity store.
pub const EVENT_FIXED_COLUMNS: [&str; 6] = [
    "time",
    "person",
    "event",
    "insert_id",
    "received",
    "props_other",
];
/// At most this many typed property columns per segment.
const MAX_TYPED_COLUMNS: usize = 192;
/// Largest integer a Float64 holds exactly.
const EXACT_F64: f64 = 9_007_199_254_740_992.0;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Str,
    Num,
    Bool,
}

fn kind_of(v: &Value) -> Option<Kind> {
    match v {
        Value::String(_) => Some(Kind::Str),
        Value::Bool(_) => Some(Kind::Bool),
        Value::Number(n) => exact_f64(n).map(|_| Kind::Num),
        _ => None,
    }
}

fn exact_f64(n: &Number) -> Option<f64> {
    if let Some(i) = n.as_i64() {
        return ((i as f64).abs() <= EXACT_F64).then_some(i as f64);
    }
    if let Some(u) = n.as_u64() {
        return ((u as f64) <= EXACT_F64).then_some(u as f64);
    }
    n.as_f64()
}

/// Turns a float read back from a column into the JSON number the client most likely sent.
pub(crate) fn json_number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() <= EXACT_F64 {
        Value::from(f as i64)
    } else {
        Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

pub(crate) fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// Chooses the typed columns for a set of events: the most frequent scalar keys, each with the
/// kind most of its values have.
fn choose_typed(events: &[&Event]) -> Vec<(String, Kind)> {
    let mut counts: HashMap<&str, [usize; 3]> = HashMap::new();
    for e in events {
        for (k, v) in &e.properties {
            if is_identifier_property(&e.name, k) {
                continue;
            }
            if let Some(kind) = kind_of(v) {
                counts.entry(k.as_str()).or_default()[kind as usize] += 1;
            }
        }
    }
    let min_rows = (events.len() / 1000).max(1);
    let mut chosen: Vec<(String, Kind, usize)> = counts
        .into_iter()
        .filter_map(|(k, c)| {
            let (i, n) = c.iter().enumerate().max_by_key(|(_, n)| **n)?;
            let kind = [Kind::Str, Kind::Num, Kind::Bool][i];
            (*n >= min_rows).then(|| (k.to_string(), kind, *n))
        })
        .collect();
    chosen.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    chosen.truncate(MAX_TYPED_COLUMNS);
    chosen.sort_by(|a, b| a.0.cmp(&b.0));
    chosen.into_iter().map(|(k, kind, _)| (k, kind)).collect()
}

enum TypedBuilder {
    Str(StringBuilder),
    Num(Float64Builder),
    Bool(BooleanBuilder),
}

/// Builds one record batch from events, in the order given (the caller sorts).
pub fn events_to_batch(events: &[&Event]) -> Result<RecordBatch> {
    let typed = choose_typed(events);
    let index: HashMap<&str, usize> = typed
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.as_str(), i))
        .collect();
    let n = events.len();
    let mut builders: Vec<TypedBuilder> = typed
        .iter()
        .map(|(_, kind)| match kind {
            Kind::Str => TypedBuilder::Str(StringBuilder::with_capacity(n, n * 8)),
            Kind::Num => TypedBuilder::Num(Float64Builder::with_capacity(n)),
            Kind::Bool => TypedBuilder::Bool(BooleanBuilder::with_capacity(n)),
        })
        .collect();
    let mut time = Vec::with_capacity(n);
    let mut person = Vec::with_capacity(n);
    let mut name = StringBuilder::with_capacity(n, n * 12);
    let mut insert = StringBuilder::with_capacity(n, n * 16);
    let mut received = Vec::with_capacity(n);
    let mut other = StringBuilder::with_capacity(n, n * 8);
    let mut filled = vec![false; typed.len()];
    let mut rest = Map::new();
    for e in events {
        time.push(e.time_ms);
        person.push(e.person.0);
        name.append_value(&e.name);
        insert.append_value(&e.insert_id);
        received.push(e.received_ms);
        filled.iter_mut().for_each(|f| *f = false);
        rest.clear();
        for (k, v) in &e.properties {
            if is_identifier_property(&e.name, k) {
                continue;
            }
            let slot = index.get(k.as_str()).copied();
            let placed = match (slot, v) {
                (Some(i), v) => match (&mut builders[i], v) {
                    (TypedBuilder::Str(b), Value::String(s)) => {
                        b.append_value(s);
                        true
                    }
                    (TypedBuilder::Bool(b), Value::Bool(x)) => {
                        b.append_value(*x);
                        true
                    }
                    (TypedBuilder::Num(b), Value::Number(x)) => match exact_f64(x) {
                        Some(f) => {
                            b.append_value(f);
                            true
                        }
                        None => false,
                    },
                    _ => false,
                },
                (None, _) => false,
            };
            match (placed, slot) {
                (true, Some(i)) => filled[i] = true,
                _ => {
                    rest.insert(k.clone(), v.clone());
                }
            }
        }
        for (i, f) in filled.iter().enumerate() {
            if !f {
                match &mut builders[i] {
                    TypedBuilder::Str(b) => b.append_null(),
                    TypedBuilder::Num(b) => b.append_null(),
                    TypedBuilder::Bool(b) => b.append_null(),
                }
            }
        }
        if rest.is_empty() {
            other.append_null();
        } else {
            other.append_value(serde_json::to_string(&rest).unwrap_or_else(|_| "{}".into()));
        }
    }
    let mut fields = vec![
        Field::new("time", timestamp_type(), false),
        Field::new("person", DataType::UInt64, false),
        Field::new("event", DataType::Utf8, false),
        Field::new("insert_id", DataType::Utf8, false),
        Field::new("received", timestamp_type(), false),
        Field::new("props_other", DataType::Utf8, true),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from(time).with_timezone("UTC")),
        Arc::new(UInt64Array::from(person)),
        Arc::new(name.finish()),
        Arc::new(insert.finish()),
        Arc::new(TimestampMillisecondArray::from(received).with_timezone("UTC")),
        Arc::new(other.finish()),
    ];
    for ((key, kind), b) in typed.iter().zip(builders) {
        let (dt, arr): (DataType, ArrayRef) = match b {
            TypedBuilder::Str(mut b) => (DataType::Utf8, Arc::new(b.finish())),
            TypedBuilder::Num(mut b) => (DataType::Float64, Arc::new(b.finish())),
            TypedBuilder::Bool(mut b) => (DataType::Boolean, Arc::new(b.finish())),
        };
        fields.push(Field::new(typed_column_name(*kind, key), dt, true));
        columns.push(arr);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Reads events back out of a batch written by [`events_to_batch`] (or a table-wide schema
/// that extends it).
pub fn batch_to_events(batch: &RecordBatch, project: ProjectId) -> Result<Vec<Event>> {
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| crate::StoreError::Manifest(format!("segment lacks the column {name}")))
    };
    let time = downcast::<TimestampMillisecondArray>(col("time")?)?;
    let person = downcast::<UInt64Array>(col("person")?)?;
    let name = downcast::<StringArray>(col("event")?)?;
    let insert = downcast::<StringArray>(col("insert_id")?)?;
    let received = downcast::<TimestampMillisecondArray>(col("received")?)?;
    let other = downcast::<StringArray>(col("props_other")?)?;
    let typed: Vec<(&str, &ArrayRef)> = batch
        .schema_ref()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter_map(|(f, c)| property_of_column(f.name()).map(|k| (k, c)))
        .collect();
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut properties = if other.is_null(row) {
            Map::new()
        } else {
            serde_json::from_str(other.value(row)).unwrap_or_default()
        };
        for (k, c) in &typed {
            if let Some(v) = typed_value(c, row) {
                properties.insert((*k).to_string(), v);
            }
        }
        out.push(Event {
            project,
            name: name.value(row).to_string(),
            time_ms: time.value(row),
            // Not stored: the identity store shows a person's canonical id.
            distinct_id: String::new(),
            person: PersonKey(person.value(row)),
            insert_id: insert.value(row).to_string(),
            received_ms: received.value(row),
            properties,
            ip: None,
        });
    }
    Ok(out)
}

/// The JSON value of a typed property column at `row`, or `None` when null.
pub(crate) fn typed_value(c: &ArrayRef, row: usize) -> Option<Value> {
    if c.is_null(row) {
        return None;
    }
    if let Some(a) = c.as_any().downcast_ref::<StringArray>() {
        return Some(Value::String(a.value(row).to_string()));
    }
    if let Some(a) = c.as_any().downcast_ref::<Float64Array>() {
        return Some(json_number(a.value(row)));
    }
    if let Some(a) = c.as_any().downcast_ref::<BooleanArray>() {
        return Some(Value::Bool(a.value(row)));
    }
    None
}

pub(crate) fn downcast<T: 'static>(c: &ArrayRef) -> Result<&T> {
    c.as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| crate::StoreError::Manifest("segment column has an unexpected type".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(i: u64, props: Value) -> Event {
        Event {
            project: ProjectId(1),
            name: format!("e{}", i % 3),
            time_ms: 1_700_000_000_000 + i as i64,
            distinct_id: format!("d{i}"),
            person: PersonKey(i),
            insert_id: format!("id{i}"),
            received_ms: 5,
            properties: props.as_object().cloned().unwrap_or_default(),
            ip: None,
        }
    }

    #[test]
    fn properties_round_trip_through_typed_and_fallback_columns() {
        let events = vec![
            ev(
                1,
                json!({"plan": "pro", "n": 3, "ok": true, "tags": ["a"], "big": 18446744073709551615u64}),
            ),
            ev(2, json!({"plan": 7, "n": 2.5, "nested": {"x": 1}})),
            ev(3, json!({})),
        ];
        let refs: Vec<&Event> = events.iter().collect();
        let batch = events_to_batch(&refs).unwrap();
        assert!(
            batch
                .schema()
                .fields()
                .iter()
                .any(|f| property_of_column(f.name()) == Some("plan"))
        );
        assert_eq!(
            batch.schema().field_with_name("p.n.n").unwrap().data_type(),
            &DataType::Float64
        );
        assert_eq!(property_of_column("p.s.a.b"), Some("a.b"));
        assert_eq!(property_of_column("p.x"), None);
        let back = batch_to_events(&batch, ProjectId(1)).unwrap();
        // Raw ids are not stored: the identity store shows them.
        let expected: Vec<Event> = events
            .into_iter()
            .map(|e| Event {
                distinct_id: String::new(),
                ..e
            })
            .collect();
        assert_eq!(back, expected);
    }

    #[test]
    fn identifier_properties_never_reach_a_column() {
        let mut e = ev(
            1,
            json!({"$device_id": "d", "$user_id": "u", "alias": "a", "ok": 1}),
        );
        e.name = "$create_alias".into();
        let mut plain = ev(2, json!({"alias": "kept", "$anon_distinct_id": "x"}));
        plain.name = "Play".into();
        let batch = events_to_batch(&[&e, &plain]).unwrap();
        let back = batch_to_events(&batch, ProjectId(1)).unwrap();
        assert_eq!(back[0].properties, *json!({"ok": 1}).as_object().unwrap());
        assert_eq!(
            back[1].properties,
            *json!({"alias": "kept"}).as_object().unwrap()
        );
    }
}
