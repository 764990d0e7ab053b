//! The wire formats of data-subject requests — Canopy's native API, Mixpanel's GDPR API v3
//! (mixpanel-api.md §12.4) and OpenDSR 2.0 — parsed and checked for shape, touching no state,
//! so each parser can be fuzzed and property-tested on its own. What the request means (which
//! law, whose cluster) is decided later by `canopy-dsr`.
//!
//! Error messages name fields, never values: a request body is made of the identifiers of the
//! person it is about.

mod native;
mod opendsr;

pub use native::{mixpanel_gdpr, native};
pub use opendsr::opendsr;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Erasure,
    Access,
}

/// A request as it came in, checked for shape.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WireRequest {
    /// Set by OpenDSR's `subject_request_type`; the route decides for the other APIs.
    pub kind: Option<Kind>,
    /// The law named, as given (`canopy-dsr` knows which it accepts).
    pub regulation: Option<String>,
    /// Identifiers as sent.
    pub raw_ids: Vec<String>,
    /// OpenDSR identities sent as SHA-256 digests (lower-case hex), to match against the ids
    /// the project holds.
    pub sha256_ids: Vec<String>,
    /// The client's request id (OpenDSR: a lower-case UUID; native: any string).
    pub request_id: Option<String>,
    /// When the person made the request, ms since the epoch.
    pub submitted_ms: Option<i64>,
    /// Erasure only: add the person to the suppression list (native; default yes).
    pub suppress: Option<bool>,
    /// OpenDSR status callback URLs.
    pub callbacks: Vec<String>,
}

/// A malformed request: `reason` is a stable code (OpenDSR's error `reason`), `message` says
/// what to fix. Both are fixed texts, so no part of the body can ever be repeated in one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WireError {
    pub reason: &'static str,
    pub message: &'static str,
}

pub(crate) fn invalid(reason: &'static str, message: &'static str) -> WireError {
    WireError { reason, message }
}

/// The body as a JSON object.
pub(crate) fn object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, WireError> {
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid("invalid_json", "the body must be a JSON object")),
        Err(_) => Err(invalid("invalid_json", "the body is not valid JSON")),
    }
}

/// An RFC 3339 time, as ms since the epoch.
/// `submitted_time` (RFC 3339), as ms since the epoch.
pub(crate) fn submitted_time(value: &str) -> Result<i64, WireError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            invalid(
                "invalid_submitted_time",
                "submitted_time must be an RFC 3339 time",
            )
        })
}

/// A list of strings, or `message`.
pub(crate) fn strings(
    value: &serde_json::Value,
    reason: &'static str,
    message: &'static str,
) -> Result<Vec<String>, WireError> {
    value
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| invalid(reason, message))
}

#[cfg(test)]
mod proptests;
