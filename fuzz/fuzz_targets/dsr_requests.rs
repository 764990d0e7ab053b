//! Data-subject request bodies of the three APIs (native, Mixpanel GDPR v3, OpenDSR 2.0): no
//! input panics, an accepted request is well formed, and every refusal says what to fix.
#![no_main]
use canopy_dsr_wire::{Kind, WireError, WireRequest, mixpanel_gdpr, native, opendsr};
use libfuzzer_sys::fuzz_target;

/// Messages are fixed texts (`&'static str`), so none can repeat the body; they are short
/// and say which field to fix.
fn no_echo(result: &Result<WireRequest, WireError>) {
    if let Err(e) = result {
        assert!(!e.message.is_empty() && e.message.len() < 120 && !e.reason.is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    for kind in [Kind::Erasure, Kind::Access] {
        let r = native(data, kind);
        if let Ok(req) = &r {
            assert!(req.kind.is_none() && req.sha256_ids.is_empty() && req.callbacks.is_empty());
            assert!(kind == Kind::Erasure || req.suppress.is_none());
        }
        no_echo(&r);
    }
    let r = mixpanel_gdpr(data);
    if let Ok(req) = &r {
        assert!(matches!(req.regulation.as_deref(), Some("gdpr" | "ccpa")));
    }
    no_echo(&r);
    let r = opendsr(data);
    if let Ok(req) = &r {
        assert!(req.kind.is_some() && req.request_id.is_some() && req.submitted_ms.is_some());
        assert!(!req.raw_ids.is_empty() || !req.sha256_ids.is_empty());
        assert!(req.sha256_ids.iter().all(|h| !h.chars().any(|c| c.is_ascii_uppercase())));
    }
    no_echo(&r);
});
