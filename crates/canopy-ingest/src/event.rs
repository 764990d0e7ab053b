//! Validating and normalizing one event item (reference §5, §6, §9).

use crate::{Limits, Reason, Rejection};
use canopy_types::{Event, PersonKey, ProjectId};
use serde_json::{Map, Value};

/// Which endpoint received the event: the acceptance rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/track`: recent events only, token in the properties.
    Track,
    /// `/import`: historical events, authenticated; `strict` adds Mixpanel's validation.
    Import { strict: bool },
}

#[derive(Debug, Clone)]
pub struct EventContext<'a> {
    pub endpoint: Endpoint,
    pub now_ms: i64,
    /// `/track` accepts events at most this old.
    pub track_max_age_ms: i64,
    pub limits: &'a Limits,
}

/// 1971-01-01T00:00:00Z, the earliest time `/import` accepts.
const MIN_IMPORT_MS: i64 = 31_536_000_000;
/// Numeric times above this are milliseconds, below it seconds (reference §17.1).
const MS_THRESHOLD: f64 = 1e11;
const HOUR_MS: i64 = 3_600_000;

/// Values Mixpanel refuses as a distinct_id under strict validation.
const INVALID_DISTINCT_IDS: [&str; 17] = [
    "00000000-0000-0000-0000-000000000000",
    "anon",
    "anonymous",
    "nil",
    "none",
    "null",
    "n/a",
    "na",
    "undefined",
    "unknown",
    "<nil>",
    "0",
    "-1",
    "true",
    "false",
    "[]",
    "{}",
];

/// Normalizes `item`. `Ok(None)` means the event asked to be ignored (`$ignore`). The project
/// and person are filled in by the caller, which knows the token and identity.
pub fn normalize_event(
    item: Value,
    ctx: &EventContext<'_>,
) -> Result<Option<(Option<String>, Event)>, Rejection> {
    let Value::Object(mut obj) = item else {
        return Err(Rejection::new(
            Reason::NotAnObject,
            "event",
            "each event must be a JSON object",
        ));
    };
    let name = match obj.remove("event") {
        Some(Value::String(s)) if !s.trim().is_empty() => truncate(s, ctx.limits.max_string_chars),
        _ => {
            return Err(Rejection::new(
                Reason::MissingEventName,
                "event",
                "event name missing or empty",
            ));
        }
    };
    let mut props = match obj.remove("properties") {
        Some(Value::Object(p)) => p,
        None | Some(Value::Null) => Map::new(),
        Some(_) => {
            return Err(Rejection::new(
                Reason::NotAnObject,
                "properties",
                "properties must be a JSON object",
            ));
        }
    };
    if props.contains_key("$ignore") {
        return Ok(None);
    }
    let strict = matches!(ctx.endpoint, Endpoint::Import { strict: true });
    let token = match props.remove("token") {
        Some(Value::String(t)) => Some(t),
        _ => None,
    };
    let distinct_id = take_distinct_id(&mut props);
    if strict {
        match &distinct_id {
            None => {
                return Err(Rejection::new(
                    Reason::MissingDistinctId,
                    "properties.distinct_id",
                    "distinct_id is required",
                ));
            }
            Some(d)
                if INVALID_DISTINCT_IDS
                    .iter()
                    .any(|bad| d.eq_ignore_ascii_case(bad)) =>
            {
                return Err(Rejection::new(
                    Reason::InvalidDistinctId,
                    "properties.distinct_id",
                    "distinct_id is a placeholder value Mixpanel refuses",
                ));
            }
            _ => {}
        }
    }
    let time_ms = event_time(&mut props, ctx, strict)?;
    let mut insert_id = match props.remove("$insert_id") {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    if strict {
        if insert_id.is_empty() {
            return Err(Rejection::new(
                Reason::MissingInsertId,
                "properties.$insert_id",
                "$insert_id is required",
            ));
        }
        if insert_id.len() > 36
            || !insert_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(Rejection::new(
                Reason::InvalidInsertId,
                "properties.$insert_id",
                "$insert_id must be at most 36 characters of [A-Za-z0-9-]",
            ));
        }
    }
    if insert_id.is_empty() {
        // Mobile SDKs send no $insert_id; their per-event id is the dedup hint.
        if let Some(Value::Object(meta)) = obj.get("$mp_metadata")
            && let Some(Value::String(id)) = meta.get("$mp_event_id")
        {
            insert_id = id.clone();
        }
    }
    insert_id = truncate(insert_id, 255);
    // The IP is never a property: the policy looks it up and decides what, if anything, of it
    // is kept (Mixpanel's `ip`, PostHog's `$ip`, Segment's `context.ip` all arrive here).
    let explicit_ip = [props.remove("ip"), props.remove("$ip")]
        .into_iter()
        .flatten()
        .find_map(|v| v.as_str().and_then(|s| s.trim().parse().ok()));
    // Server-derived on export; a re-imported export must not carry a stale copy.
    props.remove("mp_processing_time_ms");
    if matches!(ctx.endpoint, Endpoint::Import { .. }) {
        props.insert("$import".into(), Value::Bool(true));
    }
    check_properties(&mut props, ctx.limits)?;
    let event = Event {
        project: ProjectId(0),
        name,
        time_ms,
        distinct_id: distinct_id.unwrap_or_default(),
        person: PersonKey::NONE,
        insert_id,
        received_ms: ctx.now_ms,
        properties: props,
        ip: explicit_ip,
    };
    Ok(Some((token, event)))
}

fn take_distinct_id(props: &mut Map<String, Value>) -> Option<String> {
    let v = props.remove("distinct_id");
    let alt = props.remove("$distinct_id");
    match v.or(alt)? {
        Value::String(s) => Some(truncate(s, 255)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn event_time(
    props: &mut Map<String, Value>,
    ctx: &EventContext<'_>,
    strict: bool,
) -> Result<i64, Rejection> {
    let raw = props.remove("time").or_else(|| props.remove("$time"));
    let t = match raw {
        None | Some(Value::Null) if strict => {
            return Err(Rejection::new(
                Reason::InvalidTime,
                "properties.time",
                "time is required",
            ));
        }
        None | Some(Value::Null) => return Ok(ctx.now_ms),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    let Some(t) = t.filter(|t| t.is_finite() && *t >= 0.0 && *t < 1e16) else {
        return Err(Rejection::new(
            Reason::InvalidTime,
            "properties.time",
            "time must be seconds or milliseconds since the epoch",
        ));
    };
    let ms = if t > MS_THRESHOLD {
        t as i64
    } else {
        (t * 1000.0).round() as i64
    };
    // A future time is replaced with now (Mixpanel); one beyond an hour is refused by strict import.
    if ms > ctx.now_ms + HOUR_MS && strict {
        return Err(Rejection::new(
            Reason::TimeOutOfRange,
            "properties.time",
            "time is more than one hour in the future",
        ));
    }
    let ms = ms.min(ctx.now_ms);
    match ctx.endpoint {
        Endpoint::Track if ms < ctx.now_ms - ctx.track_max_age_ms => Err(Rejection::new(
            Reason::TimeTooOld,
            "properties.time",
            "event is older than /track accepts; send historical events to /import",
        )),
        Endpoint::Import { .. } if ms < MIN_IMPORT_MS => Err(Rejection::new(
            Reason::TimeOutOfRange,
            "properties.time",
            "time is before 1971-01-01",
        )),
        _ => Ok(ms),
    }
}

fn truncate(mut s: String, max_chars: usize) -> String {
    if let Some((i, _)) = s.char_indices().nth(max_chars) {
        s.truncate(i);
    }
    s
}

/// Enforces the property limits; truncates long strings (as Mixpanel does).
fn check_properties(props: &mut Map<String, Value>, limits: &Limits) -> Result<(), Rejection> {
    if props.len() > limits.max_properties {
        return Err(Rejection::new(
            Reason::TooManyProperties,
            "properties",
            format!(
                "{} properties; the limit is {}",
                props.len(),
                limits.max_properties
            ),
        ));
    }
    if props
        .keys()
        .any(|k| k.chars().count() > limits.max_string_chars)
    {
        let long: Vec<String> = props
            .keys()
            .filter(|k| k.chars().count() > limits.max_string_chars)
            .cloned()
            .collect();
        for k in long {
            if let Some(v) = props.remove(&k) {
                props.insert(truncate(k, limits.max_string_chars), v);
            }
        }
    }
    let mut size = 0usize;
    for v in props.values_mut() {
        check_value(v, limits, 0, &mut size)?;
    }
    if size > limits.max_event_bytes {
        return Err(Rejection::new(
            Reason::EventTooLarge,
            "properties",
            format!("event exceeds {} bytes", limits.max_event_bytes),
        ));
    }
    Ok(())
}

fn check_value(
    v: &mut Value,
    limits: &Limits,
    depth: usize,
    size: &mut usize,
) -> Result<(), Rejection> {
    match v {
        Value::String(s) => {
            if s.len() > limits.max_string_chars {
                let t = truncate(std::mem::take(s), limits.max_string_chars);
                *s = t;
            }
            *size += s.len();
        }
        Value::Array(items) => {
            if depth >= limits.max_depth {
                return Err(too_deep(limits));
            }
            if items.len() > limits.max_list_len {
                return Err(Rejection::new(
                    Reason::ListTooLong,
                    "properties",
                    format!(
                        "a list has {} elements; the limit is {}",
                        items.len(),
                        limits.max_list_len
                    ),
                ));
            }
            for i in items {
                check_value(i, limits, depth + 1, size)?;
            }
        }
        Value::Object(m) => {
            if depth >= limits.max_depth {
                return Err(too_deep(limits));
            }
            if m.len() > limits.max_properties {
                return Err(Rejection::new(
                    Reason::TooManyProperties,
                    "properties",
                    "a nested object has too many keys",
                ));
            }
            for (k, i) in m.iter_mut() {
                *size += k.len();
                check_value(i, limits, depth + 1, size)?;
            }
        }
        _ => *size += 8,
    }
    Ok(())
}

fn too_deep(limits: &Limits) -> Rejection {
    Rejection::new(
        Reason::TooDeep,
        "properties",
        format!(
            "a property value nests deeper than {} levels",
            limits.max_depth
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_763_800_000_000;

    fn ctx(endpoint: Endpoint, limits: &Limits) -> EventContext<'_> {
        EventContext {
            endpoint,
            now_ms: NOW,
            track_max_age_ms: 5 * 86_400_000,
            limits,
        }
    }

    fn norm(v: Value, e: Endpoint) -> Result<Option<(Option<String>, Event)>, Reason> {
        let l = Limits::default();
        normalize_event(v, &ctx(e, &l)).map_err(|r| r.reason)
    }

    #[test]
    fn reserved_fields_are_lifted_and_times_understood() {
        let (tok, e) = norm(
            json!({"event":"Play","properties":{"token":"t","distinct_id":"u1",
            "time": (NOW / 1000) as f64 - 10.5,"$insert_id":"abc","level":3,"ip":"1.2.3.4"}}),
            Endpoint::Track,
        )
        .unwrap()
        .unwrap();
        assert_eq!(tok.as_deref(), Some("t"));
        assert_eq!(
            (
                e.name.as_str(),
                e.distinct_id.as_str(),
                e.insert_id.as_str()
            ),
            ("Play", "u1", "abc")
        );
        assert_eq!(e.time_ms, NOW - 10_500);
        assert_eq!(
            e.properties,
            json!({"level":3}).as_object().cloned().unwrap()
        );
        // Milliseconds, as Android and iOS send them.
        let (_, e) = norm(
            json!({"event":"x","properties":{"time": NOW - 5}}),
            Endpoint::Track,
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.time_ms, NOW - 5);
        // Future → now.
        let (_, e) = norm(
            json!({"event":"x","properties":{"time": NOW + 999_999}}),
            Endpoint::Track,
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.time_ms, NOW);
    }

    #[test]
    fn mobile_event_ids_are_the_dedup_hint() {
        let (_, e) = norm(
            json!({"event":"x","properties":{},"$mp_metadata":{"$mp_event_id":"m1"}}),
            Endpoint::Track,
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.insert_id, "m1");
    }

    #[test]
    fn rejections_name_their_reason() {
        assert_eq!(norm(json!([1]), Endpoint::Track), Err(Reason::NotAnObject));
        assert_eq!(
            norm(json!({"properties":{}}), Endpoint::Track),
            Err(Reason::MissingEventName)
        );
        assert_eq!(
            norm(
                json!({"event":"x","properties":{"time":"soon"}}),
                Endpoint::Track
            ),
            Err(Reason::InvalidTime)
        );
        assert_eq!(
            norm(
                json!({"event":"x","properties":{"time": (NOW/1000) - 6*86400}}),
                Endpoint::Track
            ),
            Err(Reason::TimeTooOld)
        );
        assert!(
            norm(
                json!({"event":"x","properties":{"time": (NOW/1000) - 6*86400}}),
                Endpoint::Import { strict: false }
            )
            .is_ok()
        );
        assert_eq!(
            norm(
                json!({"event":"x","properties":{"time": 1}}),
                Endpoint::Import { strict: false }
            ),
            Err(Reason::TimeOutOfRange)
        );
        assert_eq!(
            norm(
                json!({"event":"x","properties":{"a":{"b":{"c":{"d":{"e":1}}}}}}),
                Endpoint::Track
            ),
            Err(Reason::TooDeep)
        );
        let many: Map<String, Value> = (0..300).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(
            norm(json!({"event":"x","properties":many}), Endpoint::Track),
            Err(Reason::TooManyProperties)
        );
        assert_eq!(
            norm(
                json!({"event":"x","properties":{"l": vec![0; 300]}}),
                Endpoint::Track
            ),
            Err(Reason::ListTooLong)
        );
    }

    #[test]
    fn strict_import_applies_mixpanel_validation() {
        let s = Endpoint::Import { strict: true };
        let t = NOW / 1000 - 100;
        assert_eq!(
            norm(
                json!({"event":"x","properties":{"time":t,"$insert_id":"a"}}),
                s
            ),
            Err(Reason::MissingDistinctId)
        );
        assert_eq!(
            norm(
                json!({"event":"x","properties":{"time":t,"distinct_id":"null","$insert_id":"a"}}),
                s
            ),
            Err(Reason::InvalidDistinctId)
        );
        assert_eq!(
            norm(
                json!({"event":"x","properties":{"time":t,"distinct_id":"u"}}),
                s
            ),
            Err(Reason::MissingInsertId)
        );
        assert_eq!(
            norm(
                json!({"event":"x","properties":{"time":t,"distinct_id":"u","$insert_id":"a b"}}),
                s
            ),
            Err(Reason::InvalidInsertId)
        );
        assert!(
            norm(
                json!({"event":"x","properties":{"time":t,"distinct_id":"u","$insert_id":"a-b"}}),
                s
            )
            .unwrap()
            .is_some()
        );
    }

    #[test]
    fn ignore_and_truncation() {
        assert_eq!(
            norm(
                json!({"event":"x","properties":{"$ignore":true}}),
                Endpoint::Track
            ),
            Ok(None)
        );
        let (_, e) = norm(
            json!({"event":"x","properties":{"s":"é".repeat(300)}}),
            Endpoint::Track,
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.properties["s"].as_str().unwrap().chars().count(), 255);
    }
}
