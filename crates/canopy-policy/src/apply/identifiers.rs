//! The identifiers a record carries, as the policy keys them: suppression hashes, sticky-tier
//! and consent keys (keyed hashes; raw ids are never stored by the policy), and the request's
//! browser privacy signals.

use super::{Policy, RequestSignals, SignalEffect};
use crate::lint::Lint;
use canopy_types::Event;
use serde_json::Value;
use sha2::{Digest, Sha256};

impl Policy {
    /// How the project treats the request's `Sec-GPC` / `DNT` signals; counted in `lint`.
    pub fn signals(&self, s: RequestSignals, lint: &mut Lint, now_ms: i64) -> SignalEffect {
        use crate::settings::SignalHandling as H;
        let mut effect = SignalEffect::None;
        for (on, handling, name) in [
            (s.gpc, self.settings.gpc, "gpc"),
            (s.dnt, self.settings.dnt, "dnt"),
        ] {
            if !on {
                continue;
            }
            match handling {
                H::Ignore => {}
                H::OptOutOfSale => {
                    lint.record("(request)", name, "opt_out_of_sale", "any", now_ms);
                    if effect == SignalEffect::None {
                        effect = SignalEffect::OptOutOfSale;
                    }
                }
                H::StopAnalytics => {
                    lint.record("(request)", name, "reject_event", "any", now_ms);
                    effect = SignalEffect::StopAnalytics;
                }
            }
        }
        effect
    }

    /// The keyed hash under which an identifier is suppressed (raw ids are never stored).
    pub fn suppression_hash(&self, raw: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"canopy-suppression-v1");
        h.update(self.hash_salt);
        h.update(raw.as_bytes());
        h.finalize().into()
    }

    /// Is any identifier of this event suppressed (also a device id given without the
    /// `$device:` prefix)?
    pub(super) fn is_suppressed_event(&self, e: &Event) -> bool {
        if self.suppressed.is_empty() {
            return false;
        }
        let raw_device = e.properties.get("$device_id").and_then(Value::as_str);
        Self::ids_of(e)
            .iter()
            .map(String::as_str)
            .chain(raw_device)
            .any(|id| self.suppressed.contains(&self.suppression_hash(id)))
    }

    /// The identifiers an event carries, for sticky tiers (before identity resolves them).
    pub fn ids_of(e: &Event) -> Vec<String> {
        let text = |k: &str| e.properties.get(k).and_then(Value::as_str);
        let mut ids = vec![e.distinct_id.clone()];
        ids.extend(text("$user_id").map(str::to_string));
        ids.extend(text("$device_id").map(|d| format!("$device:{d}")));
        // Ids an identity event links: a tier or consent learned for one covers the others.
        for k in ["$anon_distinct_id", "$anon_id", "$identified_id"] {
            ids.extend(text(k).map(str::to_string));
        }
        if e.name == "$create_alias" {
            ids.extend(text("alias").map(str::to_string));
        }
        ids.sort();
        ids.dedup();
        ids.retain(|i| !i.is_empty());
        ids
    }

    /// Does the event state an age (so that it may make a child tier to remember)?
    pub fn states_age(e: &Event) -> bool {
        ["$age_band", "$age", "$birth_year"]
            .iter()
            .any(|k| e.properties.contains_key(*k))
    }

    /// The keyed hash under which a person's sticky tier is kept.
    pub fn tier_key(&self, raw: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"canopy-tier-v1");
        h.update(self.hash_salt);
        h.update(raw.as_bytes());
        h.finalize().into()
    }
}
