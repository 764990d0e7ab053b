//! Decoding what SDKs put on the wire into normalized records — pure functions, no HTTP types,
//! no IO, so every decoder can be fuzzed and property-tested.
//!
//! `payload.rs` undoes every encoding the Mixpanel SDKs use (gzip, form `data=` holding base64
//! or JSON, `GET ?data=`, raw JSON arrays, NDJSON, the Node SDK's un-escaped `+`) and yields the
//! JSON items; `event.rs` and `profile.rs` validate and normalize one item each, so one bad item
//! never costs the others in its batch.

mod event;
mod limits;
mod params;
mod payload;
mod posthog;
mod posthog_event;
mod profile;
mod segment;
mod timestamps;

pub use canopy_types::IdMergeMode;
pub use event::{Endpoint, EventContext, normalize_event};
pub use limits::Limits;
pub use params::{Params, parse_form, query_value};
pub use payload::{DecodedPayload, RequestParts, decode_payload};
pub use posthog::{PosthogParts, PosthogRequest, decode_posthog, looks_like_posthog};
pub use posthog_event::{check_token, event_token, normalize_posthog};
pub use profile::{ProfileKind, normalize_profile};
pub use segment::{
    MAX_BATCH_BYTES as SEGMENT_MAX_BATCH_BYTES, SegmentRequest, decode_segment, normalize_segment,
    type_of_path,
};
pub use timestamps::parse_timestamp;

/// Why a request or an item was refused. The label is a metrics label; the message is safe to
/// show a client and never contains a submitted value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    BodyTooLarge,
    DecompressedTooLarge,
    BadGzip,
    BadBase64,
    BadUtf8,
    BadJson,
    NoData,
    TooManyItems,
    NotAnObject,
    MissingEventName,
    MissingToken,
    UnknownToken,
    MissingDistinctId,
    InvalidDistinctId,
    InvalidTime,
    TimeTooOld,
    TimeOutOfRange,
    InvalidInsertId,
    MissingInsertId,
    TooManyProperties,
    TooDeep,
    ListTooLong,
    EventTooLarge,
    InvalidOperation,
    MissingGroup,
    UnsupportedType,
    InvalidToken,
}

impl Reason {
    pub fn label(self) -> &'static str {
        use Reason::*;
        match self {
            BodyTooLarge => "body_too_large",
            DecompressedTooLarge => "decompressed_too_large",
            BadGzip => "bad_gzip",
            BadBase64 => "bad_base64",
            BadUtf8 => "bad_utf8",
            BadJson => "bad_json",
            NoData => "no_data",
            TooManyItems => "too_many_items",
            NotAnObject => "not_an_object",
            MissingEventName => "missing_event_name",
            MissingToken => "missing_token",
            UnknownToken => "unknown_token",
            MissingDistinctId => "missing_distinct_id",
            InvalidDistinctId => "invalid_distinct_id",
            InvalidTime => "invalid_time",
            TimeTooOld => "time_too_old",
            TimeOutOfRange => "time_out_of_range",
            InvalidInsertId => "invalid_insert_id",
            MissingInsertId => "missing_insert_id",
            TooManyProperties => "too_many_properties",
            TooDeep => "too_deep",
            ListTooLong => "list_too_long",
            EventTooLarge => "event_too_large",
            InvalidOperation => "invalid_operation",
            MissingGroup => "missing_group",
            UnsupportedType => "unsupported_type",
            InvalidToken => "invalid_token",
        }
    }
}

/// A refusal with a client-safe message and, for `/import?strict=1`, the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub reason: Reason,
    pub field: &'static str,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: Reason, field: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            field,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod proptests;
