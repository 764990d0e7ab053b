//! Profile and group updates ↔ Arrow columns (a fixed schema: the operand stays JSON; the
//! query layer folds the operations into profiles in `seq` order, which is arrival order).
//! A user update carries only the person key — raw ids live in the identity store.

use crate::Result;
use crate::columns::{downcast, timestamp_type};
use arrow::array::{ArrayRef, StringArray, StringBuilder, TimestampMillisecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use canopy_types::{PersonKey, ProfileTarget, ProfileUpdate, ProjectId};
use std::sync::Arc;

/// An update with its place in arrival order (unique and increasing across flushes; the tail
/// numbers its rows above every flushed one).
#[derive(Debug, Clone, Copy)]
pub struct SeqUpdate<'a> {
    pub seq: u64,
    pub update: &'a ProfileUpdate,
}

/// Sequence numbers given to the rows of the tail: above every flushed row's.
pub const TAIL_SEQ_BASE: u64 = 1 << 62;

pub fn profiles_to_batch(rows: &[&SeqUpdate<'_>]) -> Result<RecordBatch> {
    let n = rows.len();
    let mut time = Vec::with_capacity(n);
    let mut received = Vec::with_capacity(n);
    let mut person = Vec::with_capacity(n);
    let mut seq = Vec::with_capacity(n);
    let mut kind = StringBuilder::new();
    let mut key = StringBuilder::new();
    let mut group_id = StringBuilder::new();
    let mut op = StringBuilder::new();
    let mut value = StringBuilder::new();
    let mut modifiers = StringBuilder::new();
    for r in rows {
        let u = r.update;
        time.push(u.time_ms);
        received.push(u.received_ms);
        person.push(u.person.0);
        seq.push(r.seq);
        match &u.target {
            ProfileTarget::User { .. } => {
                kind.append_value("user");
                key.append_null();
                group_id.append_null();
            }
            ProfileTarget::Group {
                group_key,
                group_id: gid,
            } => {
                kind.append_value("group");
                key.append_value(group_key);
                group_id.append_value(gid);
            }
        }
        op.append_value(&u.operation);
        value.append_value(serde_json::to_string(&u.value).unwrap_or_else(|_| "null".into()));
        modifiers.append_value(serde_json::to_string(&u.modifiers).unwrap_or_else(|_| "{}".into()));
    }
    let schema = Schema::new(vec![
        Field::new("time", timestamp_type(), false),
        Field::new("person", DataType::UInt64, false),
        Field::new("target", DataType::Utf8, false),
        Field::new("group_key", DataType::Utf8, true),
        Field::new("group_id", DataType::Utf8, true),
        Field::new("operation", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
        Field::new("modifiers", DataType::Utf8, false),
        Field::new("received", timestamp_type(), false),
        Field::new("seq", DataType::UInt64, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from(time).with_timezone("UTC")),
        Arc::new(UInt64Array::from(person)),
        Arc::new(kind.finish()),
        Arc::new(key.finish()),
        Arc::new(group_id.finish()),
        Arc::new(op.finish()),
        Arc::new(value.finish()),
        Arc::new(modifiers.finish()),
        Arc::new(TimestampMillisecondArray::from(received).with_timezone("UTC")),
        Arc::new(UInt64Array::from(seq)),
    ];
    Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
}

/// Reads updates (with their sequence numbers) back out of a batch shaped by
/// [`profiles_to_batch`]. User targets come back with an empty distinct_id.
pub fn batch_to_profiles(
    batch: &RecordBatch,
    project: ProjectId,
) -> Result<Vec<(u64, ProfileUpdate)>> {
    let c = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| crate::StoreError::Manifest(format!("profile batch lacks {name}")))
    };
    let time = downcast::<TimestampMillisecondArray>(c("time")?)?;
    let person = downcast::<UInt64Array>(c("person")?)?;
    let kind = downcast::<StringArray>(c("target")?)?;
    let key = downcast::<StringArray>(c("group_key")?)?;
    let gid = downcast::<StringArray>(c("group_id")?)?;
    let op = downcast::<StringArray>(c("operation")?)?;
    let value = downcast::<StringArray>(c("value")?)?;
    let modifiers = downcast::<StringArray>(c("modifiers")?)?;
    let received = downcast::<TimestampMillisecondArray>(c("received")?)?;
    let seq = downcast::<UInt64Array>(c("seq")?)?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let target = if kind.value(r) == "group" {
            ProfileTarget::Group {
                group_key: key.value(r).into(),
                group_id: gid.value(r).into(),
            }
        } else {
            ProfileTarget::User {
                distinct_id: String::new(),
            }
        };
        out.push((
            seq.value(r),
            ProfileUpdate {
                project,
                target,
                person: PersonKey(person.value(r)),
                operation: op.value(r).into(),
                value: serde_json::from_str(value.value(r)).unwrap_or_default(),
                time_ms: time.value(r),
                received_ms: received.value(r),
                modifiers: serde_json::from_str(modifiers.value(r)).unwrap_or_default(),
            },
        ));
    }
    Ok(out)
}
