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
    /// The client's address (for geolocation under the policy; never stored as is).
    pub client_ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
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

pub(crate) async fn read(
    req: Request<Body>,
    max_body: usize,
    enrichment: &crate::enrich::Enrichment,
) -> RawRequest {
    let (parts, body) = req.into_parts();
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let client_ip = enrichment.client_ip(&parts.headers, peer);
    let body = read_bounded(body, max_body).await.ok_or_else(|| {
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
        client_ip,
        user_agent: header_str(&parts.headers, header::USER_AGENT),
        body,
    }
}

/// How much of an oversized body is read and discarded so the client, still sending, gets the
/// answer instead of a reset connection (SDKs retry on a reset; they drop on a clear 200 "0").
const DRAIN_BYTES: usize = 32 << 20;

/// The body, or `None` when it exceeds `max` (then up to [`DRAIN_BYTES`] more are discarded).
async fn read_bounded(body: Body, max: usize) -> Option<bytes::Bytes> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { return None };
        seen = seen.saturating_add(chunk.len());
        if seen > max {
            if seen > max.saturating_add(DRAIN_BYTES) {
                return None;
            }
            buf.clear();
            continue;
        }
        buf.extend_from_slice(&chunk);
    }
    (seen <= max).then(|| buf.freeze())
}

impl RawRequest {
    /// What the policy and enrichment need to know of the request. `use_client_ip`: the
    /// protocol says the request's address is the user's (Mixpanel `ip=1`, browsers).
    pub(crate) fn facts(&self, use_client_ip: bool) -> RequestFacts {
        RequestFacts {
            signals: self.signals,
            client_ip: self.client_ip.filter(|_| use_client_ip),
            user_agent: self.user_agent.clone(),
        }
    }

    pub(crate) fn parts<'a>(&'a self, body: &'a [u8]) -> canopy_ingest::RequestParts<'a> {
        canopy_ingest::RequestParts {
            query: &self.query,
            content_type: self.content_type.as_deref(),
            content_encoding: self.content_encoding.as_deref(),
            body,
        }
    }
}

/// What a batch's request says about its records beyond their bodies.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestFacts {
    pub signals: canopy_policy::RequestSignals,
    /// The address to attribute events without an explicit `ip` to.
    pub client_ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
}
