//! The privacy policy engine (issue #4): pure functions over normalized records, compiled from
//! versioned project settings. This first part holds the PII detectors (`detect.rs`).

mod detect;

pub use detect::{Pii, PiiSet, detect, redact};
