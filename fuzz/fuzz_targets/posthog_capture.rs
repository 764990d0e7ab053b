//! PostHog capture payloads: query `data=`, form bodies, gzip, base64, lz64, the four shapes.
#![no_main]
use canopy_ingest::{Limits, PosthogParts, decode_posthog, normalize_posthog};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    // The first byte picks the request's framing; the rest is the body.
    let Some((sel, body)) = data.split_first() else { return };
    let query = match sel % 4 {
        0 => "",
        1 => "compression=lz64",
        2 => "compression=gzip-js&ver=1.0",
        _ => "compression=base64",
    };
    let content_type = (sel & 4 != 0).then_some("application/x-www-form-urlencoded");
    let parts = PosthogParts { query, content_type, content_encoding: None, body, engage: sel & 8 != 0 };
    if let Ok(req) = decode_posthog(parts, &limits) {
        for e in req.events {
            let _ = normalize_posthog(e, req.sent_at_ms, 1_763_800_000_000, &limits);
        }
    }
});
