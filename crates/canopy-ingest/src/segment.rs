//! The Segment HTTP Tracking API (ingestion-and-dsr-standards.md §1): `/v1/{track, identify,
//! alias, group, page, screen, batch}` and analytics.js' short forms. Each message becomes
//! Mixpanel-shaped items — events through [`normalize_event`], traits through
//! [`normalize_profile`] — so every limit and rule of the Mixpanel path applies unchanged.
//! Identity follows the project's ID-merge mode: `anonymousId` is the device id and `userId`
//! the user id (simplified), or `identify`/`alias` become `$identify`/`$create_alias`
//! (original), as Mixpanel's own Segment destination does.

use crate::event::{Endpoint, EventContext, normalize_event};
use crate::payload::gunzip;
use crate::profile::{ProfileKind, normalize_profile};
use crate::timestamps::parse_timestamp;
use crate::{Limits, Reason, Rejection};
use canopy_types::{IdMergeMode, Record};
use serde_json::{Map, Value, json};

/// Segment's documented caps.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
pub const MAX_BATCH_MESSAGES: usize = 2500;
/// The group key Segment `group` calls and `context.groupId` map to.
pub const GROUP_KEY: &str = "group_id";

#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRequest {
    /// `writeKey` from the body (the server also reads headers and the query).
    pub write_key: Option<String>,
    /// Messages, each with its `type` set and the batch's `context` merged in.
    pub messages: Vec<Value>,
    /// The batch's `sentAt`, ms since the epoch.
    pub sent_at_ms: Option<i64>,
}

/// The call type of a path's last segment (`track`, `t`, …); `None` for batches.
pub fn type_of_path(last: &str) -> Option<&'static str> {
    Some(match last {
        "track" | "t" => "track",
        "identify" | "i" => "identify",
        "alias" | "a" => "alias",
        "group" | "g" => "group",
        "page" | "p" => "page",
        "screen" | "s" => "screen",
        _ => return None,
    })
}

/// Decodes a request body. `call` is the type the path names, `None` for `/v1/batch` and `/b`.
pub fn decode_segment(
    body: &[u8],
    call: Option<&str>,
    limits: &Limits,
) -> Result<SegmentRequest, Rejection> {
    let cap = if call.is_some() {
        MAX_MESSAGE_BYTES
    } else {
        MAX_BATCH_BYTES
    };
    let raw = if body.starts_with(&[0x1f, 0x8b]) {
        gunzip(body, limits.max_decompressed_bytes.min(cap))?
    } else {
        body.to_vec()
    };
    if raw.len() > cap {
        return Err(Rejection::new(
            Reason::BodyTooLarge,
            "body",
            format!("payload exceeds Segment's {cap}-byte limit"),
        ));
    }
    let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(&raw) else {
        return Err(Rejection::new(
            Reason::BadJson,
            "body",
            "body is not a JSON object",
        ));
    };
    let write_key = match obj.remove("writeKey") {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    };
    let sent_at_ms = obj.get("sentAt").and_then(parse_timestamp);
    let messages = match call {
        Some(t) => {
            obj.insert("type".into(), json!(t));
            vec![Value::Object(obj)]
        }
        None => {
            let Some(Value::Array(batch)) = obj.remove("batch") else {
                return Err(Rejection::new(
                    Reason::NoData,
                    "batch",
                    "batch must be an array",
                ));
            };
            if batch.len() > MAX_BATCH_MESSAGES {
                return Err(Rejection::new(
                    Reason::TooManyItems,
                    "batch",
                    format!("a batch holds at most {MAX_BATCH_MESSAGES} messages"),
                ));
            }
            let context = obj.get("context").and_then(Value::as_object).cloned();
            batch
                .into_iter()
                .map(|mut m| {
                    if let (Some(ctx), Some(m)) = (&context, m.as_object_mut()) {
                        let own = m.entry("context").or_insert_with(|| json!({}));
                        if let Some(own) = own.as_object_mut() {
                            for (k, v) in ctx {
                                own.entry(k.clone()).or_insert_with(|| v.clone());
                            }
                        }
                    }
                    m
                })
                .collect()
        }
    };
    Ok(SegmentRequest {
        write_key,
        messages,
        sent_at_ms,
    })
}

fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Mixpanel default properties from the Segment `context` (never the IP, the user agent or
/// advertising ids: the privacy policy decides about those).
fn context_properties(ctx: &Map<String, Value>, props: &mut Map<String, Value>) {
    let get = |path: &[&str]| -> Option<Value> {
        let mut v = ctx.get(path[0])?;
        for p in &path[1..] {
            v = v.get(p)?;
        }
        (!v.is_null()).then(|| v.clone())
    };
    let map: [(&[&str], &str); 16] = [
        (&["library", "name"], "mp_lib"),
        (&["library", "version"], "$lib_version"),
        (&["os", "name"], "$os"),
        (&["os", "version"], "$os_version"),
        (&["app", "version"], "$app_version_string"),
        (&["app", "build"], "$app_build_number"),
        (&["device", "manufacturer"], "$manufacturer"),
        (&["device", "model"], "$model"),
        (&["screen", "width"], "$screen_width"),
        (&["screen", "height"], "$screen_height"),
        (&["page", "url"], "$current_url"),
        (&["page", "referrer"], "$referrer"),
        (&["campaign", "source"], "utm_source"),
        (&["campaign", "medium"], "utm_medium"),
        (&["campaign", "name"], "utm_campaign"),
        (&["groupId"], GROUP_KEY),
    ];
    for (path, name) in map {
        if let Some(v) = get(path) {
            props.entry(name.to_string()).or_insert(v);
        }
    }
}

/// Segment's special traits, renamed to Mixpanel's reserved profile properties.
fn profile_traits(traits: Map<String, Value>) -> Map<String, Value> {
    traits
        .into_iter()
        .map(|(k, v)| {
            let name = match k.as_str() {
                "email" => "$email",
                "firstName" | "first_name" => "$first_name",
                "lastName" | "last_name" => "$last_name",
                "name" => "$name",
                "phone" => "$phone",
                "avatar" => "$avatar",
                "createdAt" | "created_at" => "$created",
                _ => return (k, v),
            };
            (name.to_string(), v)
        })
        .collect()
}

/// Turns one message into records (an event, profile updates, or both).
pub fn normalize_segment(
    msg: Value,
    mode: IdMergeMode,
    batch_sent_at_ms: Option<i64>,
    now_ms: i64,
    limits: &Limits,
) -> Result<Vec<Record>, Rejection> {
    let Value::Object(mut m) = msg else {
        return Err(Rejection::new(
            Reason::NotAnObject,
            "message",
            "message must be an object",
        ));
    };
    let call = m
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let user = id_of(m.get("userId"));
    let anon = id_of(m.get("anonymousId"));
    if user.is_none() && anon.is_none() && call != "alias" {
        return Err(Rejection::new(
            Reason::MissingDistinctId,
            "userId",
            "no_user_anon_id: a userId or an anonymousId is required",
        ));
    }
    // Skew correction: timestamp = received − (sentAt − originalTimestamp).
    let sent_at = m
        .get("sentAt")
        .and_then(parse_timestamp)
        .or(batch_sent_at_ms);
    let original = m.get("originalTimestamp").and_then(parse_timestamp);
    let stamp = m.get("timestamp").and_then(parse_timestamp);
    let time_ms = match (original.or(stamp), sent_at) {
        (Some(t), Some(sent)) => now_ms - (sent - t),
        (Some(t), None) => t,
        _ => now_ms,
    };
    let insert_id = id_of(m.get("messageId"));
    if insert_id.as_ref().is_some_and(|i| i.chars().count() > 100) {
        return Err(Rejection::new(
            Reason::InvalidInsertId,
            "messageId",
            "messageId is longer than 100 characters",
        ));
    }
    // Where anonymous activity lives, per mode.
    let anon_id = |a: &str| match mode {
        IdMergeMode::Simplified => format!("$device:{a}"),
        IdMergeMode::Original => a.to_string(),
    };
    let profile_id = user.clone().or_else(|| anon.as_deref().map(anon_id));
    let mut props = match m.remove("properties") {
        Some(Value::Object(p)) => p,
        _ => Map::new(),
    };
    if let Some(Value::Object(ctx)) = m.get("context") {
        context_properties(ctx, &mut props);
        // For geolocation under the policy only; never stored as sent.
        if let Some(ip) = ctx.get("ip").filter(|v| v.is_string()) {
            props.insert("ip".into(), ip.clone());
        }
    }
    let identity = |props: &mut Map<String, Value>| {
        props.insert(
            "distinct_id".into(),
            json!(profile_id.clone().unwrap_or_default()),
        );
        if mode == IdMergeMode::Simplified {
            if let Some(u) = &user {
                props.insert("$user_id".into(), json!(u));
            }
            if let Some(a) = &anon {
                props.insert("$device_id".into(), json!(a));
            }
        }
    };
    let ctx = EventContext {
        endpoint: Endpoint::Import { strict: false },
        now_ms,
        track_max_age_ms: i64::MAX,
        limits,
    };
    let event =
        |name: String, mut props: Map<String, Value>| -> Result<Option<Record>, Rejection> {
            props.insert("time".into(), json!(time_ms));
            if let Some(i) = &insert_id {
                props.insert("$insert_id".into(), json!(i));
            }
            Ok(
                normalize_event(json!({"event": name, "properties": props}), &ctx)?
                    .map(|(_, e)| Record::Event(e)),
            )
        };
    let profile = |kind: ProfileKind, mut item: Map<String, Value>| -> Result<Record, Rejection> {
        item.insert("$time".into(), json!(time_ms));
        Ok(Record::Profile(
            normalize_profile(Value::Object(item), kind, now_ms, limits)?.1,
        ))
    };
    let traits = |m: &mut Map<String, Value>| match m.remove("traits") {
        Some(Value::Object(t)) => t,
        _ => Map::new(),
    };
    let mut out = Vec::new();
    match call.as_str() {
        "track" => {
            let Some(name) = id_of(m.get("event")) else {
                return Err(Rejection::new(
                    Reason::MissingEventName,
                    "event",
                    "a track call needs an event name",
                ));
            };
            identity(&mut props);
            out.extend(event(name, props)?);
        }
        "page" | "screen" => {
            let name = id_of(m.get("name"));
            let kind = if call == "page" { "Page" } else { "Screen" };
            let title = match &name {
                Some(n) => format!("Viewed {n} {kind}"),
                None => format!("Loaded a {kind}"),
            };
            for f in ["name", "category"] {
                if let Some(v) = m.get(f) {
                    props.entry(f.to_string()).or_insert(v.clone());
                }
            }
            identity(&mut props);
            out.extend(event(title, props)?);
        }
        "identify" => {
            if let (Some(_), Some(a)) = (&user, &anon) {
                let mut p = props.clone();
                identity(&mut p);
                if mode == IdMergeMode::Original {
                    p.insert("$anon_distinct_id".into(), json!(a));
                }
                out.extend(event("$identify".into(), p)?);
            }
            let t = profile_traits(traits(&mut m));
            if !t.is_empty() {
                let mut item = Map::new();
                item.insert("$distinct_id".into(), json!(profile_id));
                item.insert("$set".into(), Value::Object(t));
                out.push(profile(ProfileKind::User, item)?);
            }
        }
        "alias" => {
            let (Some(previous), Some(u)) = (id_of(m.get("previousId")), user.clone()) else {
                return Err(Rejection::new(
                    Reason::MissingDistinctId,
                    "previousId",
                    "an alias call needs previousId and userId",
                ));
            };
            let mut p = props.clone();
            match mode {
                IdMergeMode::Simplified => {
                    p.insert("distinct_id".into(), json!(u));
                    p.insert("$user_id".into(), json!(u));
                    p.insert("$device_id".into(), json!(previous));
                    p.insert("$anon_distinct_id".into(), json!(previous));
                    out.extend(event("$identify".into(), p)?);
                }
                IdMergeMode::Original => {
                    p.insert("distinct_id".into(), json!(previous));
                    p.insert("alias".into(), json!(u));
                    out.extend(event("$create_alias".into(), p)?);
                }
            }
        }
        "group" => {
            let Some(group) = id_of(m.get("groupId")) else {
                return Err(Rejection::new(
                    Reason::MissingGroup,
                    "groupId",
                    "a group call needs a groupId",
                ));
            };
            let t = traits(&mut m);
            let mut item = Map::new();
            item.insert("$group_key".into(), json!(GROUP_KEY));
            item.insert("$group_id".into(), json!(group));
            item.insert("$set".into(), Value::Object(t));
            out.push(profile(ProfileKind::Group, item)?);
            let mut item = Map::new();
            item.insert("$distinct_id".into(), json!(profile_id));
            item.insert("$union".into(), json!({ GROUP_KEY: [group] }));
            item.insert("$ignore_time".into(), json!(true));
            out.push(profile(ProfileKind::User, item)?);
        }
        _ => {
            return Err(Rejection::new(
                Reason::UnsupportedType,
                "type",
                "type must be one of track, identify, alias, group, page, screen",
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
