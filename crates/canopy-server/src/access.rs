//! Access / portability requests over the native API and their download links:
//! `POST /api/v1/dsr/access` `{"distinct_ids": [...], "regulation"}` → 202; once completed
//! (at once, unless a cancellation window is set) the request shows `download_url`, which works
//! without credentials until it expires (`[dsr]` default 7 days):
//! `GET /dsr/downloads/{id}/{token}` streams the zip (`access_bundle.rs`).

use crate::access_bundle::{ChannelWriter, gather, write_zip};
use crate::dsr::dsr_of;
use crate::export::ProjectParam;
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use canopy_control::DsrRow;
use canopy_dsr::{Dsr, RequestKind};
use serde_json::Value;

/// The download path of a completed access request and when it expires.
pub(crate) fn download_link(dsr: &Dsr, row: &DsrRow) -> Option<(String, i64)> {
    if row.kind != "access" || row.status != "completed" || row.subject_sealed.is_none() {
        return None;
    }
    let expires = Dsr::download_expires_ms(row)?;
    let token = dsr.download_token(row).ok()?;
    Some((format!("/dsr/downloads/{}/{token}", row.id), expires))
}

/// `path` as an absolute URL for the client that asked (its Host header; `https` when a proxy
/// says so in `X-Forwarded-Proto`).
pub(crate) fn absolute_url(headers: &HeaderMap, path: &str) -> String {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = get("host").unwrap_or("localhost");
    let scheme = match get("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}{path}")
}

/// `POST /api/v1/dsr/access`.
pub(crate) async fn create_access(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<ProjectParam>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    crate::dsr::create_native(&state, &headers, &p, body, RequestKind::Access).await
}

/// `GET /dsr/downloads/{id}/{token}`: the bundle, streamed.
pub(crate) async fn download(
    State(state): State<AppState>,
    Path((id, token)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let dsr = dsr_of(&state)?.clone();
    let (row, ids) = {
        let (id, token) = (id.clone(), token.clone());
        tokio::task::spawn_blocking(move || dsr.open_download(&id, &token))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??
    };
    let persons = gather(&state, row.project, &ids).await?;
    let now = state.clock.now_ms();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let name = format!("canopy-data-{}.zip", row.id);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter::new(tx.clone());
        let written = write_zip(&row, &persons, now, &mut out).and_then(|()| {
            use std::io::Write;
            out.flush()
        });
        if let Err(e) = written {
            tracing::error!(error = %e, "writing an access bundle failed");
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    metrics::counter!("canopy_dsr_downloads_total").increment(1);
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
