//! Segment request bodies (batch and single calls) and every message they hold.
#![no_main]
use canopy_ingest::{IdMergeMode, Limits, decode_segment, normalize_segment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    for call in [None, Some("track"), Some("identify"), Some("alias"), Some("group"), Some("page")] {
        let Ok(req) = decode_segment(data, call, &limits) else { continue };
        for m in req.messages {
            for mode in [IdMergeMode::Simplified, IdMergeMode::Original] {
                let _ = normalize_segment(m.clone(), mode, req.sent_at_ms, 1_763_800_000_000, &limits);
            }
        }
    }
});
