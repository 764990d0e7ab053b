//! Applying a project's privacy settings to one record, before identity and the WAL see it:
//! stamp the age tier and jurisdiction (A1), refuse contact details as identifiers (A4), drop
//! blocklisted, classified (A4, A7, A10, A11) and unknown properties, coarsen geolocation
//! (A6), and act on detector hits in every string — values, nested values, list items,
//! property names (A4). Every action is counted in the lint report; values never are.

use crate::classify::{builtin_class, is_default_property};
use crate::detect::is_contact;
use crate::lint::Lint;
use crate::settings::{PrivacySettings, PropertyClass};
use crate::tier::{AgeTier, jurisdiction, take_age, tier_for, unknown_as};
use canopy_types::{Event, ProfileTarget, ProfileUpdate, is_identifier_property};
use serde_json::{Map, Value};
use std::collections::HashSet;

mod aggregate;
mod filter;
mod geo;
mod identifiers;

pub use aggregate::{PSEUDONYM_PREFIX, pseudonym};
pub use geo::{Geo, truncate_ip};

/// Consent on record for a scope: granted, withdrawn, or never given.
pub type ConsentLookup<'a> = &'a dyn Fn(&str) -> Option<bool>;
/// The salt of the day of an event time.
pub type SaltLookup<'a> = &'a dyn Fn(i64) -> Option<[u8; 32]>;

/// What the server knows about a record beyond its properties, looked up before the policy
/// runs (the policy itself stays a pure function).
#[derive(Default)]
pub struct Facts<'a> {
    /// The tier last recorded for the person (sticky: a child stays a child).
    pub prior: Option<AgeTier>,
    /// Consent on record for a scope: granted, withdrawn, or never given.
    pub consent: Option<ConsentLookup<'a>>,
    /// The salt of the day of an event time, for aggregate-only pseudonyms; `None` when it
    /// cannot be had (the event is then refused rather than stored with an identifier).
    pub daily_salt: Option<SaltLookup<'a>>,
    /// Where the event's IP is, looked up before the IP is dropped.
    pub geo: Option<Geo>,
}

/// Browser privacy signals on the request that carried the records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestSignals {
    pub gpc: bool,
    pub dnt: bool,
}

/// What the request's signals mean for its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEffect {
    None,
    OptOutOfSale,
    StopAnalytics,
}

/// What becomes of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Refused before anything was written; the reason is a lint rule / metrics label.
    Reject(&'static str),
}

/// The settings of one project, the salt `hash` actions and suppression hashes use (derived
/// from its key), and its suppression list.
#[derive(Debug, Clone)]
pub struct Policy {
    pub settings: PrivacySettings,
    pub hash_salt: [u8; 32],
    /// Keyed hashes ([`Policy::suppression_hash`]) of suppressed identifiers.
    pub suppressed: HashSet<[u8; 32]>,
}

/// Properties the policy itself writes.
const STAMPS: [&str; 3] = ["$age_tier", "$jurisdiction", "$age_band"];

/// One record in [`LINT_SAMPLE`] is scanned when hits would only be observed (action `keep`).
pub const LINT_SAMPLE: i64 = 32;

fn sampled(time_ms: i64, received_ms: i64) -> bool {
    (time_ms ^ received_ms).rem_euclid(LINT_SAMPLE) == 0
}

fn year_of(ms: i64) -> i32 {
    (1970 + ms.div_euclid(31_556_952_000)) as i32
}

impl Policy {
    /// The record's tier, its jurisdiction, and whether an age was actually given (only then
    /// is a child tier remembered). The jurisdiction is `$jurisdiction` when given, else where
    /// the IP is, else what the client's geolocation properties say, else the project default.
    fn tier_known(
        &self,
        props: &mut Map<String, Value>,
        time_ms: i64,
        geo: Option<&Geo>,
    ) -> (AgeTier, String, bool) {
        let s = &self.settings;
        let age = take_age(props, year_of(time_ms));
        let known = age.is_some();
        let explicit = props
            .get("$jurisdiction")
            .and_then(Value::as_str)
            .filter(|j| crate::tier::plausible_jurisdiction(j))
            .map(str::to_string);
        let j = explicit
            .or_else(|| geo.and_then(Geo::jurisdiction))
            .filter(|j| crate::tier::plausible_jurisdiction(j))
            .unwrap_or_else(|| jurisdiction(props, s.default_jurisdiction.as_deref()));
        let mut tier = tier_for(age, &j, &s.thresholds);
        if tier == AgeTier::Unknown {
            let children = s.audience != crate::settings::Audience::General;
            tier = unknown_as(children, &j, &s.thresholds);
            if !children {
                tier = AgeTier::Adult;
            }
        }
        (tier, j, known)
    }

    pub fn apply_event(&self, e: &mut Event, lint: &mut Lint, now_ms: i64) -> Verdict {
        self.apply_event_with(e, lint, now_ms, &Facts::default()).0
    }

    /// [`Policy::apply_event`] with what the server knows (`facts`): the tier last recorded
    /// for the person — a child stays a child whatever later signals say (A3) —, consent,
    /// the day's salt and the IP's location. Returns the child tier to record when it is new.
    pub fn apply_event_with(
        &self,
        e: &mut Event,
        lint: &mut Lint,
        now_ms: i64,
        facts: &Facts<'_>,
    ) -> (Verdict, Option<AgeTier>) {
        // Whatever happens next, the IP goes no further than this function.
        let ip = e.ip.take();
        if self.is_suppressed_event(e) {
            lint.record("(event)", "suppressed", "reject_event", "any", now_ms);
            return (Verdict::Reject("suppressed"), None);
        }
        let prior = facts.prior;
        let consent = |scope: &str| facts.consent.and_then(|c| c(scope));
        let (computed, j, known) =
            self.tier_known(&mut e.properties, e.time_ms, facts.geo.as_ref());
        let remember =
            (known && computed.is_child() && prior != Some(computed)).then_some(computed);
        // A child on record stays that child, unless a new age signal says they are a child
        // still (another jurisdiction's child tier). Unknown age never overrides the record.
        let tier = match prior {
            Some(p) if p.is_child() && p != computed && !(known && computed.is_child()) => {
                lint.record(
                    "(event)",
                    "sticky_tier",
                    "kept_child_tier",
                    p.as_str(),
                    now_ms,
                );
                p
            }
            _ => computed,
        };
        // Consent (A16): a withdrawal of analytics stops everything; opt-in regimes need a grant.
        if consent("analytics") == Some(false) {
            lint.record(
                "(event)",
                "consent_withdrawn",
                "reject_event",
                tier.as_str(),
                now_ms,
            );
            return (Verdict::Reject("consent_withdrawn"), remember);
        }
        for scope in self.settings.required_scopes(&j) {
            if consent(scope) != Some(true) {
                lint.record(
                    "(event)",
                    &format!("consent_missing:{scope}"),
                    "reject_event",
                    tier.as_str(),
                    now_ms,
                );
                return (Verdict::Reject("consent_missing"), remember);
            }
        }
        let v = self.apply_tiered(e, lint, now_ms, tier, j, facts);
        if v == Verdict::Keep {
            let policy = self.settings.policy(tier);
            if let Some(g) = &facts.geo {
                g.stamp(&mut e.properties, policy.geo);
            }
            geo::keep_ip(&mut e.properties, ip, policy.ip);
        }
        (v, remember)
    }

    fn apply_tiered(
        &self,
        e: &mut Event,
        lint: &mut Lint,
        now_ms: i64,
        tier: AgeTier,
        j: String,
        facts: &Facts<'_>,
    ) -> Verdict {
        let policy = self.settings.policy(tier);
        let t = tier.as_str();
        if policy.aggregate_only {
            // DPDP s.9(3) and tiers configured alike: counted, never tracked.
            if aggregate::is_identity_event(e) {
                lint.record("(event)", "aggregate_only_tier", "reject_event", t, now_ms);
                return Verdict::Reject("aggregate_only_identity");
            }
            let Some(salt) = facts.daily_salt.and_then(|f| f(e.time_ms)) else {
                lint.record(
                    "(event)",
                    "aggregate_salt_unavailable",
                    "reject_event",
                    t,
                    now_ms,
                );
                return Verdict::Reject("aggregate_salt_unavailable");
            };
            aggregate::pseudonymize(e, &salt);
            lint.record(
                "distinct_id",
                "aggregate_only_tier",
                "pseudonymize",
                t,
                now_ms,
            );
        }
        // An aggregate-only event's ids are gone: what is left is Canopy's own pseudonym, whose
        // hex digits can look like a phone number (a random one in ten did, and the event was
        // refused).
        if policy.refuse_contact_ids && !policy.aggregate_only {
            let ids = [
                Some(e.distinct_id.as_str()),
                e.properties.get("$user_id").and_then(Value::as_str),
                (e.name == "$create_alias")
                    .then(|| e.properties.get("alias").and_then(Value::as_str))
                    .flatten(),
            ];
            for id in ids.into_iter().flatten() {
                if is_contact(id) {
                    lint.record(
                        "distinct_id",
                        "contact_identifier",
                        "reject_event",
                        t,
                        now_ms,
                    );
                    return Verdict::Reject("contact_identifier");
                }
            }
        }
        let name = e.name.clone();
        let observe = sampled(e.time_ms, e.received_ms);
        let v = self.filter(
            &mut e.properties,
            tier,
            lint,
            now_ms,
            &|k| is_identifier_property(&name, k),
            observe,
        );
        if v == Verdict::Keep {
            e.properties
                .insert("$age_tier".into(), Value::String(t.into()));
            e.properties
                .insert("$jurisdiction".into(), Value::String(j));
        }
        v
    }

    /// Applies the policy to a profile update; `prior` is the tier on record for the person,
    /// `geo` where the request comes from (when the protocol says it is the user's).
    pub fn apply_profile(
        &self,
        u: &mut ProfileUpdate,
        lint: &mut Lint,
        now_ms: i64,
        prior: Option<AgeTier>,
        geo: Option<&Geo>,
    ) -> Verdict {
        if let ProfileTarget::User { distinct_id } = &u.target
            && !self.suppressed.is_empty()
            && self
                .suppressed
                .contains(&self.suppression_hash(distinct_id))
        {
            lint.record("(profile)", "suppressed", "reject_event", "any", now_ms);
            return Verdict::Reject("suppressed");
        }
        let is_user = matches!(u.target, ProfileTarget::User { .. });
        // A profile update carries its own signals only when it sets them.
        let mut probe = u.value.as_object().cloned().unwrap_or_default();
        let (computed, _, known) = self.tier_known(&mut probe, u.time_ms, geo);
        if !is_user {
            return Verdict::Keep;
        }
        let tier = match prior {
            Some(p) if p.is_child() && !(known && computed.is_child()) => p,
            _ => computed,
        };
        let policy = self.settings.policy(tier);
        let t = tier.as_str();
        if policy.aggregate_only {
            lint.record(
                "(profile)",
                "aggregate_only_tier",
                "reject_event",
                t,
                now_ms,
            );
            return Verdict::Reject("aggregate_only_tier");
        }
        if policy.refuse_contact_ids
            && let ProfileTarget::User { distinct_id } = &u.target
            && is_contact(distinct_id)
        {
            lint.record(
                "$distinct_id",
                "contact_identifier",
                "reject_event",
                t,
                now_ms,
            );
            return Verdict::Reject("contact_identifier");
        }
        let Value::Object(props) = &mut u.value else {
            return Verdict::Keep;
        };
        // Keep only the age band among the age signals.
        let _ = take_age(props, crate::apply::year_of(u.time_ms));
        if policy.technical_profile_only {
            let keys: Vec<String> = props.keys().cloned().collect();
            for k in keys {
                let technical = self.settings.schema.get(&k) == Some(&PropertyClass::Technical)
                    || (is_default_property(&k) && builtin_class(&k).is_none());
                if !technical {
                    props.remove(&k);
                    lint.record(&k, "technical_profile_only", "drop_property", t, now_ms);
                }
            }
        }
        let observe = sampled(u.time_ms, u.received_ms);
        let v = self.filter(props, tier, lint, now_ms, &|_| false, observe);
        if v == Verdict::Keep
            && props.is_empty()
            && u.operation != "$unset"
            && u.operation != "$delete"
        {
            return Verdict::Reject("empty_after_policy");
        }
        v
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_facts;
