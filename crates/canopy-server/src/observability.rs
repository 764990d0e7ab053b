//! Metrics and request logs. Logs carry method, path, status and latency — never the query
//! string (it holds payloads), bodies, tokens or identifiers.

use axum::body::Body;
use axum::http::Request;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::time::Instant;

pub type MetricsHandle = PrometheusHandle;

/// Installs the process-wide Prometheus recorder. Call once.
pub fn install_metrics() -> Result<MetricsHandle, String> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &[
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ],
        )
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())
}

/// Route label for metrics: the matched path template, so labels stay bounded.
pub(crate) async fn log_requests(req: Request<Body>, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    metrics::histogram!("canopy_http_request_seconds", "route" => path.clone())
        .record(elapsed.as_secs_f64());
    tracing::debug!(%method, route = %path, status, latency_ms = elapsed.as_secs_f64() * 1000.0, "request");
    resp
}

/// Collapses `//` and drops a trailing `/`, so `/track/`, `//track` and `/track` route alike
/// (the JS SDK produces `//track/` from an `api_host` ending in `/`).
pub(crate) fn normalize_path<B>(mut req: Request<B>) -> Request<B> {
    let path = req.uri().path();
    if !(path.contains("//") || (path.len() > 1 && path.ends_with('/'))) {
        return req;
    }
    let mut clean = String::with_capacity(path.len());
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        clean.push('/');
        clean.push_str(seg);
    }
    if clean.is_empty() {
        clean.push('/');
    }
    if let Some(q) = req.uri().query() {
        clean.push('?');
        clean.push_str(q);
    }
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = clean.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}
