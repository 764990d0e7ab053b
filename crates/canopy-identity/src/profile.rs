//! Materializing a profile from its `/engage` or `/groups` operations (mixpanel-api.md §10),
//! applied in arrival order. Pure.

use serde_json::{Map, Number, Value};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileState {
    pub properties: Map<String, Value>,
    /// The newest `$time` of an update that did not carry `$ignore_time`.
    pub last_seen_ms: Option<i64>,
    /// False until an operation creates the profile, and again after `$delete`.
    pub exists: bool,
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => s == "true" || s == "1",
        _ => false,
    }
}

impl ProfileState {
    /// Applies one operation. Operands were validated at ingest; anything still malformed is
    /// skipped per property, never fatal.
    pub fn apply(&mut self, op: &str, value: &Value, time_ms: i64, modifiers: &Map<String, Value>) {
        let props = &mut self.properties;
        let entries = || value.as_object().into_iter().flatten();
        match op {
            "$delete" => {
                *self = ProfileState::default();
                return;
            }
            "$set" => {
                for (k, v) in entries() {
                    props.insert(k.clone(), v.clone());
                }
            }
            "$set_once" => {
                for (k, v) in entries() {
                    props.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            "$add" => {
                for (k, v) in entries() {
                    let current = props.get(k).cloned().unwrap_or(Value::from(0));
                    if let Some(sum) = add(&current, v) {
                        props.insert(k.clone(), sum);
                    }
                }
            }
            "$append" => {
                for (k, v) in entries() {
                    if let Some(list) = as_list(props, k) {
                        list.push(v.clone());
                    }
                }
            }
            "$union" => {
                for (k, v) in entries() {
                    let Some(list) = as_list(props, k) else {
                        continue;
                    };
                    let items = v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
                    for item in items {
                        if !list.contains(&item) {
                            list.push(item);
                        }
                    }
                }
            }
            "$remove" => {
                for (k, v) in entries() {
                    if let Some(Value::Array(list)) = props.get_mut(k) {
                        list.retain(|x| x != v);
                    }
                }
            }
            "$unset" => {
                for name in value.as_array().into_iter().flatten() {
                    if let Some(n) = name.as_str() {
                        props.remove(n);
                    }
                }
            }
            "$merge" => {
                for (k, v) in entries() {
                    let Some(add) = v.as_object() else { continue };
                    let slot = props
                        .entry(k.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !slot.is_object() {
                        *slot = Value::Object(Map::new());
                    }
                    if let Value::Object(obj) = slot {
                        for (ik, iv) in add {
                            obj.insert(ik.clone(), iv.clone());
                        }
                    }
                }
            }
            _ => return,
        }
        self.exists = true;
        if !truthy(modifiers.get("$ignore_time")) {
            self.last_seen_ms = Some(self.last_seen_ms.map_or(time_ms, |t| t.max(time_ms)));
        }
    }
}

/// The list property `k`, created empty when missing; a scalar becomes a one-item list.
fn as_list<'a>(props: &'a mut Map<String, Value>, k: &str) -> Option<&'a mut Vec<Value>> {
    let slot = props
        .entry(k.to_string())
        .or_insert(Value::Array(Vec::new()));
    if !slot.is_array() {
        let old = std::mem::take(slot);
        *slot = Value::Array(vec![old]);
    }
    slot.as_array_mut()
}

/// Numeric increment: integers stay integers while they fit; a non-number is left alone.
fn add(current: &Value, delta: &Value) -> Option<Value> {
    let (Value::Number(a), Value::Number(b)) = (current, delta) else {
        return None;
    };
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64())
        && let Some(s) = x.checked_add(y)
    {
        return Some(Value::from(s));
    }
    Number::from_f64(a.as_f64()? + b.as_f64()?).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(ops: &[(&str, Value)]) -> ProfileState {
        let mut s = ProfileState::default();
        for (i, (op, v)) in ops.iter().enumerate() {
            s.apply(op, v, 1000 + i as i64, &Map::new());
        }
        s
    }

    #[test]
    fn the_eight_operations_follow_mixpanel() {
        let s = run(&[
            ("$set", json!({"plan": "free", "n": 1})),
            ("$set_once", json!({"plan": "pro", "first": "web"})),
            ("$add", json!({"n": 2, "m": -1.5})),
            ("$append", json!({"tags": "a"})),
            ("$append", json!({"tags": "a"})),
            ("$union", json!({"kids": ["x", "y"]})),
            ("$union", json!({"kids": ["y", "z"]})),
            ("$remove", json!({"tags": "a"})),
            ("$unset", json!(["first"])),
        ]);
        assert_eq!(
            Value::Object(s.properties.clone()),
            json!({"plan": "free", "n": 3, "m": -1.5, "tags": [], "kids": ["x", "y", "z"]})
        );
        assert!(s.exists);
        assert_eq!(s.last_seen_ms, Some(1008));
        let d = run(&[("$set", json!({"a": 1})), ("$delete", json!(""))]);
        assert_eq!(d, ProfileState::default());
    }

    #[test]
    fn ignore_time_leaves_last_seen() {
        let mut s = ProfileState::default();
        s.apply("$set", &json!({"a": 1}), 5, &Map::new());
        let m: Map<String, Value> = json!({"$ignore_time": true}).as_object().cloned().unwrap();
        s.apply("$set", &json!({"a": 2}), 9, &m);
        assert_eq!(s.last_seen_ms, Some(5));
        assert_eq!(s.properties["a"], json!(2));
    }

    #[test]
    fn add_keeps_integers_and_skips_non_numbers() {
        let s = run(&[
            ("$set", json!({"s": "text", "big": i64::MAX})),
            ("$add", json!({"s": 1, "big": 1})),
        ]);
        assert_eq!(s.properties["s"], json!("text"));
        assert!(s.properties["big"].is_f64());
    }
}
