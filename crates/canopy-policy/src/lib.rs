//! The privacy policy engine (issue #4): pure functions over normalized records, compiled from
//! versioned project settings, applied at ingest before identity and the WAL.
//!
//! `tier.rs` decides each record's age tier and jurisdiction (thresholds shipped as data),
//! `settings.rs` holds what each tier may keep, `classify.rs` knows well-known property names,
//! `detect.rs` finds personal data in strings, `apply.rs` applies all of it and counts every
//! action in the lint report (`lint.rs`) — never a value.

mod apply;
mod classify;
mod detect;
mod lint;
mod retention;
mod settings;
mod tier;

pub use apply::{
    Facts, Geo, PSEUDONYM_PREFIX, Policy, RequestSignals, SignalEffect, Verdict, pseudonym,
    truncate_ip,
};
pub use classify::builtin_class;
pub use detect::{Pii, PiiSet, detect, redact};
pub use lint::{Lint, LintCount, LintKey};
pub use retention::{RetentionRule, TIERS, cutoff_for, retention_plan, retention_policy_text};
pub use settings::{
    Audience, DetectorAction, GeoLevel, IpMode, PrivacySettings, PropertyClass, SignalHandling,
    TierPolicy, UnknownProperties,
};
pub use tier::{AgeTier, jurisdiction, threshold, tier_for};
