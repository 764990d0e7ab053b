//! One PostHog event → records (ingestion-and-dsr-standards.md §2.2, §2.4): the token and
//! distinct_id wherever the SDKs put them, `uuid` as the dedup key, PostHog's timestamp rules
//! (skew correction against `sent_at`, `offset`, the 23-hour future clamp), person updates from
//! `$set`/`$set_once`, group updates from `$groupidentify`, and `$groups` as group-key
//! properties. The result goes through the Mixpanel normalizers, so the same limits apply.

use crate::event::{Endpoint, EventContext, normalize_event};
use crate::profile::{ProfileKind, normalize_profile};
use crate::timestamps::parse_timestamp;
use crate::{Limits, Reason, Rejection};
use canopy_types::Record;
use serde_json::{Map, Value, json};

const MAX_DISTINCT_ID_CHARS: usize = 200;
const MAX_TOKEN_CHARS: usize = 64;
const FUTURE_CLAMP_MS: i64 = 23 * 3_600_000;

fn stringify(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Null => return None,
        other => other.to_string(),
    };
    let s: String = s
        .replace('\0', "\u{FFFD}")
        .chars()
        .take(MAX_DISTINCT_ID_CHARS)
        .collect();
    (!s.trim().is_empty()).then_some(s)
}

/// PostHog's shape check of a project key (it is looked up by the caller).
pub fn check_token(t: &str) -> Result<String, Rejection> {
    let t = t.trim();
    let bad = |m: &str| Rejection::new(Reason::InvalidToken, "api_key", m.to_string());
    if t.is_empty() {
        return Err(bad("the project API key is empty"));
    }
    if t.chars().count() > MAX_TOKEN_CHARS || !t.is_ascii() || t.contains('\0') {
        return Err(bad("the project API key is malformed"));
    }
    if t.starts_with("phx_") {
        return Err(bad("a personal API key cannot be used to send events"));
    }
    Ok(t.to_string())
}

/// The event's own token, if it carries one.
pub fn event_token(ev: &Value) -> Option<String> {
    ["token", "$token", "api_key"]
        .iter()
        .find_map(|k| ev.get(k).and_then(Value::as_str))
        .or_else(|| ev.get("properties")?.get("token")?.as_str())
        .map(str::to_string)
}

/// Normalizes one event. `Ok(vec![])` means PostHog drops it silently (`$performance_event`).
pub fn normalize_posthog(
    ev: Value,
    sent_at_ms: Option<i64>,
    now_ms: i64,
    limits: &Limits,
) -> Result<Vec<Record>, Rejection> {
    let Value::Object(mut ev) = ev else {
        return Err(Rejection::new(
            Reason::NotAnObject,
            "event",
            "each event must be an object",
        ));
    };
    let name = match ev.get("event") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(Rejection::new(
                Reason::MissingEventName,
                "event",
                "missing_event_name: event is required",
            ));
        }
    };
    if name == "$performance_event" {
        return Ok(Vec::new());
    }
    let mut props = match ev.remove("properties") {
        Some(Value::Object(p)) => p,
        _ => Map::new(),
    };
    let distinct_id = ev
        .get("distinct_id")
        .or_else(|| ev.get("$distinct_id"))
        .or_else(|| props.get("distinct_id"))
        .and_then(stringify)
        .ok_or_else(|| {
            Rejection::new(
                Reason::MissingDistinctId,
                "distinct_id",
                "missing_distinct_id: distinct_id is required",
            )
        })?;
    // Time: now + (timestamp − sent_at), or now − offset; clamped if far in the future.
    let ignore_sent_at = props.get("$ignore_sent_at").and_then(Value::as_bool) == Some(true);
    let stamp = ev.get("timestamp").and_then(parse_timestamp);
    let sent = ev.get("sent_at").and_then(parse_timestamp).or(sent_at_ms);
    let mut time_ms = match (ev.get("offset").and_then(Value::as_i64), stamp, sent) {
        (Some(off), _, _) => now_ms - off,
        (None, Some(t), Some(s)) if !ignore_sent_at => now_ms + (t - s),
        (None, Some(t), _) => t,
        _ => now_ms,
    };
    if time_ms > now_ms + FUTURE_CLAMP_MS {
        time_ms = now_ms;
    }
    // Identifiers PostHog sends that mean something else in Mixpanel's vocabulary, and what
    // is never stored (the token). `$ip` goes on to the policy, which never stores it raw.
    for k in [
        "token",
        "distinct_id",
        "$device_id",
        "$user_id",
        "$set",
        "$set_once",
    ] {
        if let Some(v) = props.remove(k)
            && (k == "$set" || k == "$set_once")
        {
            ev.entry(k.to_string()).or_insert(v);
        }
    }
    if let Some(Value::Object(groups)) = props.get("$groups").cloned() {
        for (kind, key) in groups {
            props.entry(kind).or_insert(key);
        }
    }
    let mut out = Vec::new();
    let profile = |kind: ProfileKind, mut item: Map<String, Value>| -> Result<Record, Rejection> {
        item.insert("$time".into(), json!(time_ms));
        Ok(Record::Profile(
            normalize_profile(Value::Object(item), kind, now_ms, limits)?.1,
        ))
    };
    if name == "$groupidentify" {
        let kind = props.get("$group_type").and_then(stringify);
        let key = props.get("$group_key").and_then(stringify);
        let (Some(kind), Some(key)) = (kind, key) else {
            return Err(Rejection::new(
                Reason::MissingGroup,
                "$group_type",
                "$groupidentify needs $group_type and $group_key",
            ));
        };
        let set = props
            .get("$group_set")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut item = Map::new();
        item.insert("$group_key".into(), json!(kind));
        item.insert("$group_id".into(), json!(key));
        item.insert("$set".into(), set);
        out.push(profile(ProfileKind::Group, item)?);
        return Ok(out);
    }
    props.insert("distinct_id".into(), json!(distinct_id));
    props.insert("time".into(), json!(time_ms));
    if let Some(uuid) = ev
        .get("uuid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    {
        props.insert("$insert_id".into(), json!(uuid));
    }
    let ctx = EventContext {
        endpoint: Endpoint::Import { strict: false },
        now_ms,
        track_max_age_ms: i64::MAX,
        limits,
    };
    if let Some((_, e)) = normalize_event(json!({"event": name, "properties": props}), &ctx)? {
        out.push(Record::Event(e));
    }
    for op in ["$set", "$set_once"] {
        if let Some(Value::Object(v)) = ev.get(op)
            && !v.is_empty()
        {
            let mut item = Map::new();
            item.insert("$distinct_id".into(), json!(distinct_id));
            item.insert(op.into(), Value::Object(v.clone()));
            out.push(profile(ProfileKind::User, item)?);
        }
    }
    Ok(out)
}
