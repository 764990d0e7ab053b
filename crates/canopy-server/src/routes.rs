//! Router assembly and the serve loop.

use crate::observability::{log_requests, normalize_path};
use crate::{
    AppState, access, activity, aux, cleanup, cohorts, consent, dsr, engage, export, ingest_import,
    ingest_posthog, ingest_profiles, ingest_segment, ingest_track, mixpanel_gdpr, mixpanel_lookup,
    mixpanel_query, opendsr, persons, privacy, rectify, reports, retention, tiers,
};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, header};
use axum::routing::{any, get, post};
use std::future::Future;
use std::sync::atomic::Ordering;
use tower::Layer as _;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

pub fn router(state: AppState) -> Router {
    // Browsers send credentials with tracking XHRs, so CORS must echo the origin (not `*`).
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_credentials(true)
        // Every method a route answers: admin pages call DELETE (cancel a request, delete a
        // cohort) and PUT (settings, tier corrections) too.
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([header::RETRY_AFTER])
        .max_age(std::time::Duration::from_secs(86_400));
    Router::new()
        .route("/track", any(ingest_track::track))
        .route("/engage", any(ingest_profiles::engage))
        .route("/groups", any(ingest_profiles::groups))
        .route("/import", any(ingest_import::import))
        .route("/capture", any(ingest_posthog::capture))
        .route("/batch", any(ingest_posthog::capture))
        .route("/e", any(ingest_posthog::capture))
        .route("/i/v0/e", any(ingest_posthog::capture))
        .route("/decide", any(aux::decide))
        .route("/flags", any(aux::flags))
        .route("/flags/definitions", get(aux::flag_definitions))
        .route("/flags/{id}/first-time-events", any(aux::record))
        .route("/settings", get(aux::settings))
        .route("/record", any(aux::record))
        .route("/v1/projects/{key}/settings", get(ingest_segment::settings))
        .route("/v1/{call}", post(ingest_segment::call))
        .route("/api/2.0/export", get(export::export))
        .route("/api/query/export", get(export::export))
        .route("/api/v1/profile-updates", get(export::profile_updates))
        .route("/api/v1/persons", get(persons::person))
        .route("/api/v1/persons/activity", get(activity::person_activity))
        .route("/api/query/stream/query", get(activity::stream_query))
        .route("/api/2.0/stream/query", get(activity::stream_query))
        .route("/api/v1/groups", get(persons::group))
        .route("/api/v1/persons/tier", axum::routing::put(tiers::correct))
        .route("/api/v1/consent", get(consent::get).post(consent::post))
        .route("/api/v1/privacy/lint", get(privacy::lint))
        .route("/api/v1/query/funnel", post(reports::funnel))
        .route("/api/v1/query/retention", post(reports::retention))
        .route("/api/v1/query/flows", post(reports::flows))
        .route("/api/v1/query/insights", post(reports::insights))
        .route("/api/query/retention", get(mixpanel_query::retention))
        .route("/api/2.0/retention", get(mixpanel_query::retention))
        .route("/api/query/segmentation", get(mixpanel_query::segmentation))
        .route("/api/2.0/segmentation", get(mixpanel_query::segmentation))
        .route("/api/query/events", get(mixpanel_query::events))
        .route("/api/2.0/events", get(mixpanel_query::events))
        .route(
            "/api/query/engage",
            get(engage::engage).post(engage::engage),
        )
        .route("/api/2.0/engage", get(engage::engage).post(engage::engage))
        .route("/api/query/events/names", get(mixpanel_lookup::event_names))
        .route("/api/2.0/events/names", get(mixpanel_lookup::event_names))
        .route(
            "/api/query/events/properties/values",
            get(mixpanel_lookup::property_values),
        )
        .route(
            "/api/2.0/events/properties/values",
            get(mixpanel_lookup::property_values),
        )
        .route("/api/v1/cohorts", get(cohorts::list).post(cohorts::create))
        .route(
            "/api/v1/cohorts/{id}",
            get(cohorts::get_one).delete(cohorts::delete),
        )
        .route(
            "/api/query/cohorts/list",
            get(cohorts::mixpanel_list).post(cohorts::mixpanel_list),
        )
        .route(
            "/api/2.0/cohorts/list",
            get(cohorts::mixpanel_list).post(cohorts::mixpanel_list),
        )
        .route(
            "/api/v1/suppressions",
            get(privacy::suppressions)
                .post(privacy::suppress)
                .delete(privacy::unsuppress),
        )
        .route(
            "/api/v1/settings",
            get(privacy::get_settings).put(privacy::put_settings),
        )
        .route("/api/v1/dsr/erasures", post(dsr::create_erasure))
        .route("/api/v1/dsr/access", post(access::create_access))
        .route("/api/v1/data/deletions", post(cleanup::delete_events))
        .route("/api/v1/persons/rectify", post(rectify::rectify))
        .route("/api/v1/retention", get(retention::status))
        .route("/api/v1/retention/run", post(retention::run))
        .route("/api/v1/retention/policy", get(retention::policy))
        .route("/dsr/downloads/{id}/{token}", get(access::download))
        .route(
            "/api/app/data-deletions/v3.0",
            post(mixpanel_gdpr::create_deletion).delete(mixpanel_gdpr::cancel_deletion_by_ids),
        )
        .route(
            "/api/app/data-deletions/v3.0/{tracking_id}",
            get(mixpanel_gdpr::task_status).delete(mixpanel_gdpr::cancel_deletion),
        )
        .route(
            "/api/app/data-retrievals/v3.0",
            post(mixpanel_gdpr::create_retrieval),
        )
        .route(
            "/api/app/data-retrievals/v3.0/{tracking_id}",
            get(mixpanel_gdpr::task_status),
        )
        .route("/api/v1/dsr/requests", get(dsr::list))
        .route("/opendsr/v1/discovery", get(opendsr::discovery))
        .route("/opendsr/v1/certificate.pem", get(opendsr::certificate))
        .route("/opendsr/v1/requests", post(opendsr::create))
        .route("/opendsr/v1/opengdpr_requests", post(opendsr::create))
        .route(
            "/opendsr/v1/requests/{id}",
            get(opendsr::status).delete(opendsr::cancel),
        )
        .route(
            "/opendsr/v1/opengdpr_requests/{id}",
            get(opendsr::status).delete(opendsr::cancel),
        )
        .route(
            "/api/v1/dsr/requests/{id}",
            get(dsr::get_one).delete(dsr::cancel),
        )
        .route("/api/v1/dsr/requests/{id}/receipt", get(dsr::receipt))
        .route(
            "/.well-known/canopy-receipt-keys.json",
            get(dsr::receipt_keys),
        )
        .route("/healthz", get(aux::healthz))
        .route("/readyz", get(aux::readyz))
        .route("/metrics", get(aux::metrics))
        // Bodies are bounded by each handler (and answered the way SDKs expect), not by axum.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(log_requests))
        .layer(cors)
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` resolves, then drains requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let flag = state.shutting_down.clone();
    let upkeep = tokio::spawn(crate::maintenance::run(state.clone()));
    let dsr_worker = tokio::spawn(crate::dsr::worker(state.clone()));
    let retention_worker = tokio::spawn(crate::retention::worker(state.clone()));
    let last = state.clone();
    let app = router(state);
    let service = tower::util::MapRequestLayer::new(normalize_path::<axum::body::Body>).layer(app);
    // The peer address reaches handlers for geolocation (never logged, never stored raw).
    let make = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
        std::net::SocketAddr,
    >(service);
    let served = axum::serve(listener, make)
        .with_graceful_shutdown(async move {
            shutdown.await;
            flag.store(true, Ordering::SeqCst);
        })
        .await;
    upkeep.abort();
    dsr_worker.abort();
    retention_worker.abort();
    let _ = tokio::task::spawn_blocking(move || crate::maintenance::once(&last)).await;
    served
}

#[cfg(test)]
mod tests {
    /// Every native route is in the OpenAPI document (so the document stays true).
    #[test]
    fn every_native_route_is_in_the_openapi_document() {
        let doc = include_str!("../../../docs/openapi.yaml");
        let source = include_str!("routes.rs");
        let routes = source.split("#[cfg(test)]").next().unwrap_or(source);
        let mut n = 0;
        for piece in routes.split('"').filter(|p| p.starts_with("/api/v1/")) {
            n += 1;
            assert!(
                doc.contains(&format!("\n  {piece}:\n")),
                "{piece} is not documented in docs/openapi.yaml"
            );
        }
        assert!(n >= 12);
    }
}
