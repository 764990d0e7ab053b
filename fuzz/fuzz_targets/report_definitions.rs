//! Report and cohort definitions (insights, funnels, retention, flows, saved cohorts and their
//! stored form): no input panics, every refusal has a reason, and nothing derived from an
//! accepted definition fails later (`canopy_report_wire::conformance`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    canopy_report_wire::conformance::assert_consistent(data);
});
