//! Profile and group updates ↔ Arrow columns (a fixed schema: the operand stays JSON until
//! the identity layer materializes profiles).

use crate::Result;
use crate::columns::{downcast, timestamp_type};
use arrow::array::{ArrayRef, StringArray, StringBuilder, TimestampMillisecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use canopy_types::{PersonKey, ProfileTarget, ProfileUpdate, ProjectId};
use std::sync::Arc;

pub fn profiles_to_batch(updates: &[&ProfileUpdate]) -> Result<RecordBatch> {
    let n = updates.len();
    let mut time = Vec::with_capacity(n);
    let mut received = Vec::with_capacity(n);
    let mut person = Vec::with_capacity(n);
    let mut kind = StringBuilder::new();
    let mut key = StringBuilder::new();
    let mut group_id = StringBuilder::new();
    let mut op = StringBuilder::new();
    let mut value = StringBuilder::new();
    let mut modifiers = StringBuilder::new();
    for u in updates {
        time.push(u.time_ms);
        received.push(u.received_ms);
        person.push(u.person.0);
        match &u.target {
            ProfileTarget::User { distinct_id } => {
                kind.append_value("user");
                key.append_value(distinct_id);
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
        Field::new("distinct_id", DataType::Utf8, false),
        Field::new("group_id", DataType::Utf8, true),
        Field::new("operation", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
        Field::new("modifiers", DataType::Utf8, false),
        Field::new("received", timestamp_type(), false),
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
    ];
    Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
}

pub fn batch_to_profiles(batch: &RecordBatch, project: ProjectId) -> Result<Vec<ProfileUpdate>> {
    let c = |i: usize| batch.column(i);
    let time = downcast::<TimestampMillisecondArray>(c(0))?;
    let person = downcast::<UInt64Array>(c(1))?;
    let kind = downcast::<StringArray>(c(2))?;
    let key = downcast::<StringArray>(c(3))?;
    let gid = downcast::<StringArray>(c(4))?;
    let op = downcast::<StringArray>(c(5))?;
    let value = downcast::<StringArray>(c(6))?;
    let modifiers = downcast::<StringArray>(c(7))?;
    let received = downcast::<TimestampMillisecondArray>(c(8))?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let target = if kind.value(r) == "group" {
            ProfileTarget::Group {
                group_key: key.value(r).into(),
                group_id: gid.value(r).into(),
            }
        } else {
            ProfileTarget::User {
                distinct_id: key.value(r).into(),
            }
        };
        out.push(ProfileUpdate {
            project,
            target,
            person: PersonKey(person.value(r)),
            operation: op.value(r).into(),
            value: serde_json::from_str(value.value(r)).unwrap_or_default(),
            time_ms: time.value(r),
            received_ms: received.value(r),
            modifiers: serde_json::from_str(modifiers.value(r)).unwrap_or_default(),
        });
    }
    Ok(out)
}
