//! PostHog's capture API, decoding (ingestion-and-dsr-standards.md §2.2–2.3): the payload from
//! `?data=` or the body; form `data=` with `compression=`; gzip (by hint or magic bytes),
//! base64 (also twice on legacy paths), lz64; then one of the four JSON shapes — an array of
//! events, a `{api_key, batch, sent_at}` envelope, a single event, or (on `/engage`) a bare
//! person update, which becomes `$identify`.

use crate::params::{parse_form, query_value};
use crate::payload::gunzip;
use crate::timestamps::parse_timestamp;
use crate::{Limits, Reason, Rejection};
use base64::Engine;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy)]
pub struct PosthogParts<'a> {
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub body: &'a [u8],
    /// `/engage`: an event without a name is a person update.
    pub engage: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PosthogRequest {
    /// The batch's `api_key` / `token`.
    pub token: Option<String>,
    pub events: Vec<Value>,
    pub sent_at_ms: Option<i64>,
    pub historical: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Lz64,
    Base64,
}

fn hint(v: &str) -> Compression {
    match v.trim() {
        "gzip" | "gzip-js" => Compression::Gzip,
        "lz64" | "lz-string" => Compression::Lz64,
        "base64" | "b64" => Compression::Base64,
        _ => Compression::None,
    }
}

fn bad(reason: Reason, msg: &str) -> Rejection {
    Rejection::new(reason, "body", msg.to_string())
}

fn looks_base64(b: &[u8]) -> bool {
    !b.is_empty()
        && b.iter().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, b'+' | b'/' | b'=' | b'-' | b'_' | b' ' | b'\n' | b'\r')
        })
}

fn base64_decode(b: &[u8]) -> Result<Vec<u8>, Rejection> {
    let cleaned: Vec<u8> = b
        .iter()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| match c {
            b'-' => b'+',
            b'_' => b'/',
            c => *c,
        })
        .collect();
    let trimmed: Vec<u8> = cleaned.iter().copied().filter(|c| *c != b'=').collect();
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&trimmed)
        .map_err(|_| bad(Reason::BadBase64, "payload is not valid base64"))
}

fn lz64(b: &[u8], max: usize) -> Result<Vec<u8>, Rejection> {
    let text =
        std::str::from_utf8(b).map_err(|_| bad(Reason::BadUtf8, "lz64 payload is not text"))?;
    let wide = lz_str::decompress_from_base64(text.trim())
        .ok_or_else(|| bad(Reason::BadBase64, "payload is not valid lz64"))?;
    if wide.len() > max {
        return Err(bad(
            Reason::DecompressedTooLarge,
            "decompressed payload is too large",
        ));
    }
    String::from_utf16(&wide)
        .map(String::into_bytes)
        .map_err(|_| bad(Reason::BadUtf8, "lz64 payload is not valid UTF-16"))
}

/// Undoes the encodings until JSON is left (at most a few rounds: base64 inside gzip, …).
fn unwrap_payload(
    mut data: Vec<u8>,
    mut compression: Compression,
    limits: &Limits,
) -> Result<Vec<u8>, Rejection> {
    for _ in 0..4 {
        let t = data
            .iter()
            .position(|c| !c.is_ascii_whitespace())
            .unwrap_or(0);
        if matches!(data.get(t), Some(b'{' | b'[')) {
            return Ok(data);
        }
        data = if data.starts_with(&[0x1f, 0x8b])
            || compression == Compression::Gzip && data.first() == Some(&0x1f)
        {
            gunzip(&data, limits.max_decompressed_bytes)?
        } else if compression == Compression::Lz64 {
            lz64(&data, limits.max_decompressed_bytes)?
        } else if looks_base64(&data) {
            base64_decode(&data)?
        } else if data.is_empty() {
            return Err(bad(Reason::NoData, "no payload"));
        } else {
            return Ok(data);
        };
        compression = Compression::None;
    }
    Ok(data)
}

pub fn decode_posthog(
    parts: PosthogParts<'_>,
    limits: &Limits,
) -> Result<PosthogRequest, Rejection> {
    let mut compression =
        query_value(parts.query, "compression").map_or(Compression::None, |c| hint(&c));
    let form = parts
        .content_type
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let data: Vec<u8> = if let Some(d) = query_value(parts.query, "data") {
        d.replace(' ', "+").into_bytes()
    } else if form {
        let fields = parse_form(parts.body);
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if compression == Compression::None {
            compression = get("compression").map_or(Compression::None, |c| hint(&c));
        }
        // A base64 value lost its '+' to URL decoding.
        get("data")
            .unwrap_or_default()
            .replace(' ', "+")
            .into_bytes()
    } else {
        parts.body.to_vec()
    };
    if compression == Compression::None {
        compression = parts.content_encoding.map_or(Compression::None, hint);
    }
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(bad(Reason::NoData, "EmptyPayload: no data in the request"));
    }
    let json = unwrap_payload(data, compression, limits)?;
    let value: Value = serde_json::from_slice(&json)
        .map_err(|_| bad(Reason::BadJson, "payload is not valid JSON"))?;
    let token_of = |v: &Value| {
        ["api_key", "token", "$token"]
            .iter()
            .find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_string))
    };
    let (token, events, sent_at_ms, historical) = match value {
        Value::Array(events) => (None, events, None, false),
        Value::Object(ref o) if o.get("batch").is_some_and(Value::is_array) => {
            let events = o
                .get("batch")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let sent = o.get("sent_at").and_then(parse_timestamp);
            let hist = o
                .get("historical_migration")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            (token_of(&value), events, sent, hist)
        }
        Value::Object(mut o) => {
            if parts.engage && !o.contains_key("event") {
                o.insert("event".into(), json!("$identify"));
            }
            (None, vec![Value::Object(o)], None, false)
        }
        _ => {
            return Err(bad(
                Reason::NotAnObject,
                "payload must be an event, a list or a batch",
            ));
        }
    };
    if events.is_empty() {
        return Err(bad(Reason::NoData, "EmptyBatch: the batch holds no events"));
    }
    if events.len() > limits.max_items.max(10_000) {
        return Err(bad(Reason::TooManyItems, "too many events in one request"));
    }
    Ok(PosthogRequest {
        token,
        events,
        sent_at_ms,
        historical,
    })
}

/// Is a request to `/track` or `/engage` PostHog's rather than Mixpanel's? PostHog SDKs add
/// `ver=`/`compression=`/`_=` to the query, or send an `api_key` envelope.
pub fn looks_like_posthog(query: &str, body: &[u8]) -> bool {
    if ["ver", "lib_version", "compression"]
        .iter()
        .any(|k| query_value(query, k).is_some())
    {
        return true;
    }
    let head = &body[..body.len().min(4096)];
    let text = String::from_utf8_lossy(head);
    text.trim_start().starts_with('{')
        && (text.contains("\"api_key\"") || text.contains("\"batch\""))
}

#[cfg(test)]
mod tests;
