//! Canopy's native request body and Mixpanel's GDPR API v3 body.

use crate::{Kind, WireError, WireRequest, invalid, object, strings, submitted_time};
use serde_json::Value;

/// `POST /api/v1/dsr/erasures` and `/access`:
/// `{"distinct_ids": [..], "regulation"?, "suppress"? (erasure only), "submitted_time"?,
/// "request_id"?}`; no other field.
pub fn native(body: &[u8], kind: Kind) -> Result<WireRequest, WireError> {
    let map = object(body)?;
    let mut out = WireRequest::default();
    let mut ids = None;
    for (field, value) in &map {
        match field.as_str() {
            "distinct_ids" => {
                ids = Some(strings(
                    value,
                    "invalid_distinct_ids",
                    "distinct_ids must be a list of strings",
                )?);
            }
            "regulation" => {
                out.regulation = optional_text(value, "regulation must be a string")?;
            }
            "request_id" => {
                out.request_id = optional_text(value, "request_id must be a string")?;
            }
            "submitted_time" => {
                out.submitted_ms = optional_text(value, "submitted_time must be a string")?
                    .map(|t| submitted_time(&t))
                    .transpose()?;
            }
            "suppress" => {
                if kind != Kind::Erasure {
                    return Err(invalid(
                        "invalid_request",
                        "suppress applies to erasure requests only",
                    ));
                }
                out.suppress = match value {
                    Value::Null => None,
                    Value::Bool(b) => Some(*b),
                    _ => return Err(invalid("invalid_request", "suppress must be true or false")),
                };
            }
            _ => {
                return Err(invalid(
                    "invalid_request",
                    "unknown field; the fields are distinct_ids, regulation, suppress, \
                     submitted_time, request_id",
                ));
            }
        }
    }
    out.raw_ids = ids.ok_or_else(|| invalid("invalid_distinct_ids", "distinct_ids is required"))?;
    Ok(out)
}

/// `POST /api/app/data-deletions/v3.0/` and `data-retrievals` (and the body of a cancel by
/// ids): `{"distinct_ids": [..], "compliance_type"?: "GDPR" | "CCPA"}`; other fields are
/// ignored, as Mixpanel does.
pub fn mixpanel_gdpr(body: &[u8]) -> Result<WireRequest, WireError> {
    let map = object(body)?;
    let raw_ids = strings(
        map.get("distinct_ids").unwrap_or(&Value::Null),
        "invalid_distinct_ids",
        "distinct_ids must be a list of strings",
    )?;
    let regulation = match map.get("compliance_type") {
        None | Some(Value::Null) => "gdpr",
        Some(Value::String(s)) if s.eq_ignore_ascii_case("gdpr") => "gdpr",
        Some(Value::String(s)) if s.eq_ignore_ascii_case("ccpa") => "ccpa",
        _ => {
            return Err(invalid(
                "invalid_regulation",
                "compliance_type must be GDPR or CCPA",
            ));
        }
    };
    Ok(WireRequest {
        regulation: Some(regulation.into()),
        raw_ids,
        ..Default::default()
    })
}

fn optional_text(value: &Value, message: &'static str) -> Result<Option<String>, WireError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(invalid("invalid_request", message)),
    }
}
