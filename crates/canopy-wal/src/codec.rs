//! The persisted encoding of records inside a WAL entry (format version 1). It is a frozen
//! on-disk format, separate from the in-memory types: change it only by adding a version.

use crate::{Result, WalError};
use canopy_types::{Event, PersonKey, ProfileTarget, ProfileUpdate, ProjectId, Record};
use serde_json::{Map, Value};

const CODEC_V1: u8 = 1;
const KIND_EVENT: u8 = 1;
const KIND_PROFILE: u8 = 2;
const TARGET_USER: u8 = 1;
const TARGET_GROUP: u8 = 2;

pub fn encode_records(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * 256);
    out.push(CODEC_V1);
    put_u32(&mut out, records.len() as u32);
    for r in records {
        match r {
            Record::Event(e) => {
                out.push(KIND_EVENT);
                put_u64(&mut out, e.project.0);
                put_str(&mut out, &e.name);
                put_i64(&mut out, e.time_ms);
                put_str(&mut out, &e.distinct_id);
                put_u64(&mut out, e.person.0);
                put_str(&mut out, &e.insert_id);
                put_i64(&mut out, e.received_ms);
                put_json_map(&mut out, &e.properties);
            }
            Record::Profile(p) => {
                out.push(KIND_PROFILE);
                put_u64(&mut out, p.project.0);
                match &p.target {
                    ProfileTarget::User { distinct_id } => {
                        out.push(TARGET_USER);
                        put_str(&mut out, distinct_id);
                        put_str(&mut out, "");
                    }
                    ProfileTarget::Group {
                        group_key,
                        group_id,
                    } => {
                        out.push(TARGET_GROUP);
                        put_str(&mut out, group_key);
                        put_str(&mut out, group_id);
                    }
                }
                put_u64(&mut out, p.person.0);
                put_str(&mut out, &p.operation);
                let value = serde_json::to_string(&p.value).unwrap_or_else(|_| "null".into());
                put_str(&mut out, &value);
                put_i64(&mut out, p.time_ms);
                put_i64(&mut out, p.received_ms);
                put_json_map(&mut out, &p.modifiers);
            }
        }
    }
    out
}

pub fn decode_records(mut buf: &[u8]) -> Result<Vec<Record>> {
    let r = &mut buf;
    let version = take_u8(r)?;
    if version != CODEC_V1 {
        return Err(WalError::Format(format!(
            "unknown record codec version {version}"
        )));
    }
    let n = take_u32(r)? as usize;
    // The count is untrusted until the records are read: every record takes at least 30
    // bytes, so never reserve more than the input could hold.
    let mut out = Vec::with_capacity(n.min(r.len() / 30));
    for _ in 0..n {
        match take_u8(r)? {
            KIND_EVENT => out.push(Record::Event(Event {
                project: ProjectId(take_u64(r)?),
                name: take_str(r)?,
                time_ms: take_i64(r)?,
                distinct_id: take_str(r)?,
                person: PersonKey(take_u64(r)?),
                insert_id: take_str(r)?,
                received_ms: take_i64(r)?,
                properties: take_json_map(r)?,
                ip: None,
            })),
            KIND_PROFILE => {
                let project = ProjectId(take_u64(r)?);
                let kind = take_u8(r)?;
                let a = take_str(r)?;
                let b = take_str(r)?;
                let target = match kind {
                    TARGET_USER => ProfileTarget::User { distinct_id: a },
                    TARGET_GROUP => ProfileTarget::Group {
                        group_key: a,
                        group_id: b,
                    },
                    k => return Err(WalError::Format(format!("unknown profile target {k}"))),
                };
                let person = PersonKey(take_u64(r)?);
                let operation = take_str(r)?;
                let value: Value = serde_json::from_str(&take_str(r)?)
                    .map_err(|e| WalError::Format(format!("profile value: {e}")))?;
                out.push(Record::Profile(ProfileUpdate {
                    project,
                    target,
                    person,
                    operation,
                    value,
                    time_ms: take_i64(r)?,
                    received_ms: take_i64(r)?,
                    modifiers: take_json_map(r)?,
                }));
            }
            k => return Err(WalError::Format(format!("unknown record kind {k}"))),
        }
    }
    Ok(out)
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
}
fn put_json_map(out: &mut Vec<u8>, m: &Map<String, Value>) {
    let s = serde_json::to_string(m).unwrap_or_else(|_| "{}".into());
    put_str(out, &s);
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if r.len() < n {
        return Err(WalError::Format("record ends early".into()));
    }
    let (head, tail) = r.split_at(n);
    *r = tail;
    Ok(head)
}
fn take_u8(r: &mut &[u8]) -> Result<u8> {
    Ok(take(r, 1)?[0])
}
fn take_u32(r: &mut &[u8]) -> Result<u32> {
    let b = take(r, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
fn take_u64(r: &mut &[u8]) -> Result<u64> {
    let mut a = [0u8; 8];
    a.copy_from_slice(take(r, 8)?);
    Ok(u64::from_le_bytes(a))
}
fn take_i64(r: &mut &[u8]) -> Result<i64> {
    Ok(take_u64(r)? as i64)
}
fn take_str(r: &mut &[u8]) -> Result<String> {
    let n = take_u32(r)? as usize;
    String::from_utf8(take(r, n)?.to_vec()).map_err(|_| WalError::Format("invalid UTF-8".into()))
}
fn take_json_map(r: &mut &[u8]) -> Result<Map<String, Value>> {
    serde_json::from_str(&take_str(r)?).map_err(|e| WalError::Format(format!("properties: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_round_trip() {
        let mut props = Map::new();
        props.insert("plan".into(), json!("pro"));
        props.insert("n".into(), json!(3.5));
        let records = vec![
            Record::Event(Event {
                project: ProjectId(3),
                name: "Sign up".into(),
                time_ms: 1_700_000_000_123,
                distinct_id: "u1".into(),
                person: PersonKey(99),
                insert_id: "abc".into(),
                received_ms: 1_700_000_000_200,
                properties: props.clone(),
                ip: None,
            }),
            Record::Profile(ProfileUpdate {
                project: ProjectId(3),
                target: ProfileTarget::Group {
                    group_key: "company".into(),
                    group_id: "7".into(),
                },
                person: PersonKey(0),
                operation: "$set".into(),
                value: json!({"name": "Acme"}),
                time_ms: 5,
                received_ms: 6,
                modifiers: props,
            }),
        ];
        assert_eq!(decode_records(&encode_records(&records)).unwrap(), records);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let bytes = encode_records(&[]);
        for cut in 0..bytes.len() {
            let _ = decode_records(&bytes[..cut]);
        }
        assert!(decode_records(&[1, 5, 0, 0, 0]).is_err());
    }
}
