//! Validating one `/engage` or `/groups` record (reference §10).

use crate::{Limits, Reason, Rejection};
use canopy_types::{PersonKey, ProfileTarget, ProfileUpdate, ProjectId};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileKind {
    User,
    Group,
}

const USER_OPS: [&str; 9] = [
    "$set",
    "$set_once",
    "$add",
    "$append",
    "$union",
    "$remove",
    "$unset",
    "$delete",
    "$merge",
];
const GROUP_OPS: [&str; 7] = [
    "$set",
    "$set_once",
    "$union",
    "$remove",
    "$unset",
    "$delete",
    "$add",
];
/// Modifiers kept with the update.
const MODIFIERS: [&str; 4] = ["$ignore_time", "$ignore_alias", "$latitude", "$longitude"];

/// Normalizes one record into a token and an update (project and person filled in by the caller).
pub fn normalize_profile(
    item: Value,
    kind: ProfileKind,
    now_ms: i64,
    limits: &Limits,
) -> Result<(Option<String>, ProfileUpdate), Rejection> {
    let Value::Object(mut obj) = item else {
        return Err(Rejection::new(
            Reason::NotAnObject,
            "record",
            "each record must be a JSON object",
        ));
    };
    let token = match obj.remove("$token") {
        Some(Value::String(t)) => Some(t),
        _ => None,
    };
    let target = match kind {
        ProfileKind::User => match obj.remove("$distinct_id") {
            Some(Value::String(s)) if !s.is_empty() => ProfileTarget::User { distinct_id: s },
            Some(Value::Number(n)) => ProfileTarget::User {
                distinct_id: n.to_string(),
            },
            _ => {
                return Err(Rejection::new(
                    Reason::MissingDistinctId,
                    "$distinct_id",
                    "Engage API error: $distinct_id, missing or empty",
                ));
            }
        },
        ProfileKind::Group => {
            let key = match obj.remove("$group_key") {
                Some(Value::String(s)) if !s.is_empty() => s,
                _ => {
                    return Err(Rejection::new(
                        Reason::MissingGroup,
                        "$group_key",
                        "$group_key missing or empty",
                    ));
                }
            };
            let id = match obj.remove("$group_id") {
                Some(Value::String(s)) if !s.is_empty() => s,
                Some(Value::Number(n)) => n.to_string(),
                _ => {
                    return Err(Rejection::new(
                        Reason::MissingGroup,
                        "$group_id",
                        "$group_id missing or empty",
                    ));
                }
            };
            ProfileTarget::Group {
                group_key: key,
                group_id: id,
            }
        }
    };
    let ops: &[&str] = match kind {
        ProfileKind::User => &USER_OPS,
        ProfileKind::Group => &GROUP_OPS,
    };
    let present: Vec<&str> = ops
        .iter()
        .copied()
        .filter(|op| obj.contains_key(*op))
        .collect();
    let [op] = present.as_slice() else {
        return Err(Rejection::new(
            Reason::InvalidOperation,
            "operation",
            format!(
                "each record needs exactly one operation of {}",
                ops.join(", ")
            ),
        ));
    };
    let op = (*op).to_string();
    let value = obj.remove(&op).unwrap_or(Value::Null);
    check_operand(&op, &value, limits)?;
    let time_ms = match obj.remove("$time") {
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|t| t.is_finite() && *t >= 0.0 && *t < 1e16)
            .map(|t| {
                if t > 1e11 {
                    t as i64
                } else {
                    (t * 1000.0) as i64
                }
            })
            .unwrap_or(now_ms)
            .min(now_ms),
        _ => now_ms,
    };
    let mut modifiers = Map::new();
    for m in MODIFIERS {
        if let Some(v) = obj.remove(m) {
            modifiers.insert(m.to_string(), v);
        }
    }
    // `$ip`, `$device_id`, `$user_id`, `$had_persisted_distinct_id`, `$mp_metadata` and any
    // other key are accepted and not stored: the IP never is, the rest is identity's input.
    let update = ProfileUpdate {
        project: ProjectId(0),
        target,
        person: PersonKey::NONE,
        operation: op,
        value,
        time_ms,
        received_ms: now_ms,
        modifiers,
    };
    Ok((token, update))
}

fn check_operand(op: &str, v: &Value, limits: &Limits) -> Result<(), Rejection> {
    let bad = |msg: &str| {
        Err(Rejection::new(
            Reason::InvalidOperation,
            "operation",
            format!("{op}: {msg}"),
        ))
    };
    match op {
        "$delete" => Ok(()),
        "$unset" => match v {
            Value::Array(a) if a.iter().all(Value::is_string) => Ok(()),
            _ => bad("expects a list of property names"),
        },
        _ => {
            let Value::Object(m) = v else {
                return bad("expects an object of properties");
            };
            if m.len() > limits.max_properties {
                return Err(Rejection::new(
                    Reason::TooManyProperties,
                    "operation",
                    format!("{op}: too many properties"),
                ));
            }
            if op == "$add" && !m.values().all(Value::is_number) {
                return bad("values must be numbers");
            }
            if op == "$union" && !m.values().all(Value::is_array) {
                return bad("values must be lists");
            }
            let size = serde_json::to_string(m)
                .map(|s| s.len())
                .unwrap_or(usize::MAX);
            if size > limits.max_event_bytes {
                return Err(Rejection::new(
                    Reason::EventTooLarge,
                    "operation",
                    "update exceeds 1 MB",
                ));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn norm(v: Value, k: ProfileKind) -> Result<(Option<String>, ProfileUpdate), Reason> {
        normalize_profile(v, k, 1_000_000_000_000, &Limits::default()).map_err(|r| r.reason)
    }

    #[test]
    fn user_and_group_updates_normalize() {
        let (tok, u) = norm(json!({"$token":"t","$distinct_id":"u1","$set":{"plan":"pro"},"$ip":"1.1.1.1","$ignore_time":true}), ProfileKind::User).unwrap();
        assert_eq!(tok.as_deref(), Some("t"));
        assert_eq!(u.operation, "$set");
        assert_eq!(
            u.modifiers,
            json!({"$ignore_time":true}).as_object().cloned().unwrap()
        );
        let (_, g) = norm(
            json!({"$token":"t","$group_key":"company","$group_id":7,"$set_once":{"n":1}}),
            ProfileKind::Group,
        )
        .unwrap();
        assert_eq!(
            g.target,
            ProfileTarget::Group {
                group_key: "company".into(),
                group_id: "7".into()
            }
        );
        // Android sends $delete as null, Swift as {}.
        assert!(
            norm(
                json!({"$distinct_id":"u","$delete":null}),
                ProfileKind::User
            )
            .is_ok()
        );
    }

    #[test]
    fn invalid_updates_are_refused_with_a_reason() {
        assert_eq!(
            norm(json!({"$set":{}}), ProfileKind::User).unwrap_err(),
            Reason::MissingDistinctId
        );
        assert_eq!(
            norm(
                json!({"$distinct_id":"u","$set":{},"$unset":[]}),
                ProfileKind::User
            )
            .unwrap_err(),
            Reason::InvalidOperation
        );
        assert_eq!(
            norm(
                json!({"$distinct_id":"u","$add":{"n":"x"}}),
                ProfileKind::User
            )
            .unwrap_err(),
            Reason::InvalidOperation
        );
        assert_eq!(
            norm(
                json!({"$distinct_id":"u","$append":{"n":1}}),
                ProfileKind::Group
            )
            .unwrap_err(),
            Reason::MissingGroup
        );
        assert_eq!(
            norm(
                json!({"$group_key":"c","$group_id":"1","$append":{"n":1}}),
                ProfileKind::Group
            )
            .unwrap_err(),
            Reason::InvalidOperation
        );
    }
}
