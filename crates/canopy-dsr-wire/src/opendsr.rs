//! OpenDSR 2.0 `POST /requests` (ingestion-and-dsr-standards.md §3).

use crate::{Kind, WireError, WireRequest, invalid, object, strings, submitted_time};
use serde_json::Value;

/// A subject request: `subject_request_id` (UUID), `subject_request_type` (erasure, access or
/// portability), `regulation` (gdpr or ccpa), `submitted_time` (RFC 3339),
/// `subject_identities` (`controller_customer_id`, `raw` or `sha256`) and optional
/// `status_callback_urls`.
pub fn opendsr(body: &[u8]) -> Result<WireRequest, WireError> {
    let map = object(body)?;
    let text = |name: &str| map.get(name).and_then(Value::as_str);
    let request_id = text("subject_request_id")
        .filter(|id| uuid::Uuid::parse_str(id).is_ok())
        .ok_or_else(|| {
            invalid(
                "invalid_subject_request_id",
                "subject_request_id must be a UUID",
            )
        })?
        .to_ascii_lowercase();
    let kind = match text("subject_request_type") {
        Some("erasure") => Kind::Erasure,
        Some("access" | "portability") => Kind::Access,
        _ => {
            return Err(invalid(
                "invalid_subject_request_type",
                "subject_request_type must be erasure, access or portability",
            ));
        }
    };
    let regulation = match text("regulation") {
        Some(r @ ("gdpr" | "ccpa")) => r.to_string(),
        _ => {
            return Err(invalid(
                "invalid_regulation",
                "regulation must be gdpr or ccpa",
            ));
        }
    };
    let submitted = text("submitted_time")
        .ok_or_else(|| invalid("missing_submitted_time", "submitted_time is required"))
        .and_then(submitted_time)?;
    let callbacks = match map.get("status_callback_urls") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => strings(
            v,
            "invalid_status_callback_urls",
            "status_callback_urls must be a list of URLs",
        )?,
    };
    let (raw_ids, sha256_ids) = identities(map.get("subject_identities"))?;
    Ok(WireRequest {
        kind: Some(kind),
        regulation: Some(regulation),
        raw_ids,
        sha256_ids,
        request_id: Some(request_id),
        submitted_ms: Some(submitted),
        suppress: Some(kind == Kind::Erasure),
        callbacks,
    })
}

/// Raw identities as given, SHA-256 ones as lower-case hex.
fn identities(list: Option<&Value>) -> Result<(Vec<String>, Vec<String>), WireError> {
    let list = list
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            invalid(
                "missing_subject_identities",
                "subject_identities must be a non-empty list",
            )
        })?;
    let mut raw = Vec::new();
    let mut hashed = Vec::new();
    for identity in list {
        let field = |name: &str| identity.get(name).and_then(Value::as_str);
        let (Some(kind), Some(value), Some(format)) = (
            field("identity_type"),
            field("identity_value"),
            field("identity_format"),
        ) else {
            return Err(invalid(
                "invalid_identity",
                "each identity needs identity_type, identity_value and identity_format",
            ));
        };
        if kind != "controller_customer_id" {
            return Err(invalid(
                "unsupported_identity_type",
                "only controller_customer_id identities are supported (see /discovery)",
            ));
        }
        match format {
            "raw" => raw.push(value.to_string()),
            "sha256" => hashed.push(value.to_ascii_lowercase()),
            _ => {
                return Err(invalid(
                    "unsupported_identity_format",
                    "identity_format must be raw or sha256",
                ));
            }
        }
    }
    Ok((raw, hashed))
}
