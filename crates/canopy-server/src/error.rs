//! The one place where errors become HTTP responses. Messages are client-safe: they never echo
//! submitted values.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Invalid credentials")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    /// The resource exists but is in a state that forbids the change (409).
    #[error("{0}")]
    Conflict(String),
    /// Mixpanel's answer to a change its API no longer allows (405).
    #[error("{0}")]
    NotAllowed(String),
    /// An OpenDSR client error, answered in the spec's error shape.
    #[error("{message}")]
    OpenDsr {
        code: u16,
        reason: &'static str,
        message: String,
    },
    #[error("the server is busy; retry later")]
    Overloaded,
    #[error("internal error")]
    Internal(String),
}

impl From<canopy_store::StoreError> for ApiError {
    fn from(e: canopy_store::StoreError) -> Self {
        if e.is_overload() {
            ApiError::Overloaded
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<canopy_query::QueryError> for ApiError {
    fn from(e: canopy_query::QueryError) -> Self {
        match e {
            canopy_query::QueryError::Where(_)
            | canopy_query::QueryError::Invalid(_)
            | canopy_query::QueryError::TooLarge => ApiError::BadRequest(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<canopy_analytics::AnalyticsError> for ApiError {
    fn from(e: canopy_analytics::AnalyticsError) -> Self {
        match e {
            canopy_analytics::AnalyticsError::Invalid(m) => ApiError::BadRequest(m),
            canopy_analytics::AnalyticsError::Definition(w) => w.into(),
            canopy_analytics::AnalyticsError::Query(q) => q.into(),
        }
    }
}

/// A report or cohort definition the client sent that cannot be run: always the client's.
impl From<canopy_report_wire::WireError> for ApiError {
    fn from(e: canopy_report_wire::WireError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<canopy_dsr::DsrError> for ApiError {
    fn from(e: canopy_dsr::DsrError) -> Self {
        use canopy_dsr::DsrError as D;
        match e {
            D::BadRequest(m) => ApiError::BadRequest(m),
            D::NotFound => ApiError::NotFound,
            D::Conflict(m) => ApiError::Conflict(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// A malformed data-subject request (its message names fields, never values). OpenDSR's
/// routes answer these in the OpenDSR error shape instead (`opendsr.rs`).
impl From<canopy_dsr_wire::WireError> for ApiError {
    fn from(e: canopy_dsr_wire::WireError) -> Self {
        ApiError::BadRequest(e.message.to_string())
    }
}

impl From<canopy_identity::IdentityError> for ApiError {
    fn from(e: canopy_identity::IdentityError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<canopy_control::ControlError> for ApiError {
    fn from(e: canopy_control::ControlError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::OpenDsr {
            code,
            reason,
            message,
        } = &self
        {
            // OpenDSR §7.5: `{"error": {"code", "message", "errors": [{domain, reason, message}]}}`,
            // never echoing identities.
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::BAD_REQUEST);
            let body = json!({"error": {"code": code, "message": message,
                "errors": [{"domain": "opendsr", "reason": reason, "message": message}]}});
            return (status, axum::Json(body)).into_response();
        }
        let (status, code_text) = match &self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad Request"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "Not Found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            ApiError::NotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
            // Answered above in the OpenDSR shape.
            ApiError::OpenDsr { .. } => (StatusCode::BAD_REQUEST, "Bad Request"),
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
            ApiError::Internal(detail) => {
                // The detail goes to the log (it names files, never personal data), not the client.
                tracing::error!(error = %detail, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        };
        let body = json!({"code": status.as_u16(), "error": self.to_string(), "status": code_text});
        let mut resp = (status, axum::Json(body)).into_response();
        if matches!(self, ApiError::Overloaded) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        resp
    }
}
