//! Aggregate-only tiers (issue #4 item 4; DPDP s.9(3) for Indian minors, configurable for
//! others): the event keeps no persistent identifier. Its distinct_id becomes a pseudonym
//! keyed by the salt of its day — the same person gives the same pseudonym all day, so daily
//! counts and uniques work, and another pseudonym tomorrow. Once the salt is destroyed (48 h),
//! nobody can recompute or link a pseudonym. Identity events and profile updates are refused:
//! they exist to link and to profile.

use canopy_types::{Event, is_identifier_property};
use sha2::{Digest, Sha256};

/// Prefix of every aggregate-only pseudonym (never a raw id).
pub const PSEUDONYM_PREFIX: &str = "$agg:";

/// The pseudonym of `raw` under a day's salt.
pub fn pseudonym(salt: &[u8; 32], raw: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"canopy-aggregate-v1");
    h.update(salt);
    h.update(raw.as_bytes());
    format!("{PSEUDONYM_PREFIX}{}", hex::encode(&h.finalize()[..12]))
}

/// Events whose only purpose is linking identifiers.
pub(crate) fn is_identity_event(e: &Event) -> bool {
    matches!(e.name.as_str(), "$identify" | "$create_alias" | "$merge")
}

/// Replaces the event's identifiers by the pseudonym of its most stable one and removes every
/// other identifier, so identity sees one unlinkable id and nothing to merge.
pub(crate) fn pseudonymize(e: &mut Event, salt: &[u8; 32]) {
    let text = |k: &str| {
        e.properties
            .get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let raw = text("$user_id")
        .or_else(|| (!e.distinct_id.is_empty()).then(|| e.distinct_id.clone()))
        .or_else(|| text("$device_id").map(|d| format!("$device:{d}")));
    e.distinct_id = raw.map(|r| pseudonym(salt, &r)).unwrap_or_default();
    let name = e.name.clone();
    e.properties
        .retain(|k, _| !is_identifier_property(&name, k));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pseudonym_depends_on_the_salt_and_never_shows_the_id() {
        let a = pseudonym(&[1; 32], "kid-42");
        assert_eq!(a, pseudonym(&[1; 32], "kid-42"));
        assert_ne!(a, pseudonym(&[2; 32], "kid-42"));
        assert_ne!(a, pseudonym(&[1; 32], "kid-43"));
        assert!(a.starts_with(PSEUDONYM_PREFIX) && !a.contains("kid"));
    }
}
