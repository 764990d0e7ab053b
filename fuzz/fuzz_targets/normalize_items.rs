//! Event and profile normalization on arbitrary JSON.
#![no_main]
use canopy_ingest::{Endpoint, EventContext, Limits, ProfileKind, normalize_event, normalize_profile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let limits = Limits::default();
    for endpoint in [Endpoint::Track, Endpoint::Import { strict: true }, Endpoint::Import { strict: false }] {
        let ctx = EventContext { endpoint, now_ms: 1_763_800_000_000, track_max_age_ms: 432_000_000, limits: &limits };
        let _ = normalize_event(value.clone(), &ctx);
    }
    let _ = normalize_profile(value.clone(), ProfileKind::User, 1_763_800_000_000, &limits);
    let _ = normalize_profile(value, ProfileKind::Group, 1_763_800_000_000, &limits);
});
