//! Reading a request into `canopy_ingest::RequestParts` without trusting its size.

use axum::body::Body;
use axum::http::{HeaderMap, Request, header};
use canopy_ingest::{Reason, Rejection};

pub(crate) struct RawRequest {
    pub query: String,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub authorization: Option<String>,
    /// `Sec-GPC: 1` / `DNT: 1` on the request.
    pub signals: canopy_policy::RequestSignals,
    pub body: Result<bytes::Bytes, Rejection>,
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn flag(h: &HeaderMap, name: &str) -> bool {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "1")
}

pub(crate) async fn read(req: Request<Body>, max_body: usize) -> RawRequest {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, max_body).await.map_err(|_| {
        Rejection::new(
            Reason::BodyTooLarge,
            "body",
            format!("request body exceeds {max_body} bytes"),
        )
    });
    RawRequest {
        query: parts.uri.query().unwrap_or("").to_string(),
        content_type: header_str(&parts.headers, header::CONTENT_TYPE),
        content_encoding: header_str(&parts.headers, header::CONTENT_ENCODING),
        authorization: header_str(&parts.headers, header::AUTHORIZATION),
        signals: canopy_policy::RequestSignals {
            gpc: flag(&parts.headers, "sec-gpc"),
            dnt: flag(&parts.headers, "dnt"),
        },
        body,
    }
}

impl RawRequest {
    pub(crate) fn parts<'a>(&'a self, body: &'a [u8]) -> canopy_ingest::RequestParts<'a> {
        canopy_ingest::RequestParts {
            query: &self.query,
            content_type: self.content_type.as_deref(),
            content_encoding: self.content_encoding.as_deref(),
            body,
        }
    }
}
