//! Filtering one record's properties under its tier: the blocklist, classified and unknown
//! properties, over-precise geolocation, and detector hits in every string — values, nested
//! values, list items, property names — each acted on and counted.

use super::{Policy, STAMPS, Verdict};
use crate::classify::{builtin_class, is_default_property};
use crate::detect::{Pii, detect, redact};
use crate::lint::Lint;
use crate::settings::{DetectorAction, GeoLevel, PropertyClass, UnknownProperties};
use crate::tier::AgeTier;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

impl Policy {
    pub(super) fn class_of(&self, name: &str) -> Option<PropertyClass> {
        self.settings
            .schema
            .get(name)
            .copied()
            .or_else(|| builtin_class(name))
    }

    fn hash(&self, s: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.hash_salt);
        h.update(s.as_bytes());
        format!("sha256:{}", hex::encode(&h.finalize()[..12]))
    }

    /// Applies the detector action to every string inside `v`. Returns `Err(kind)` when the
    /// action is to reject the event, `Ok(true)` when the property is to be dropped.
    fn scrub(&self, v: &mut Value, action: DetectorAction, hits: &mut Vec<Pii>) -> bool {
        match v {
            Value::String(s) => {
                let found = detect(s);
                if found.is_empty() {
                    return false;
                }
                hits.extend(found.iter());
                match action {
                    DetectorAction::Keep | DetectorAction::RejectEvent => false,
                    DetectorAction::DropProperty => true,
                    DetectorAction::Redact => {
                        if let Some(r) = redact(s) {
                            *s = r;
                        }
                        false
                    }
                    DetectorAction::Hash => {
                        *s = self.hash(s);
                        false
                    }
                }
            }
            Value::Array(items) => {
                let mut drop = false;
                for i in items.iter_mut() {
                    drop |= self.scrub(i, action, hits);
                }
                drop
            }
            Value::Object(obj) => {
                let mut drop = false;
                let keys: Vec<String> = obj.keys().cloned().collect();
                for k in keys {
                    if !detect(&k).is_empty() {
                        hits.extend(detect(&k).iter());
                        if action != DetectorAction::Keep && action != DetectorAction::RejectEvent {
                            obj.remove(&k);
                        }
                        continue;
                    }
                    if let Some(inner) = obj.get_mut(&k) {
                        drop |= self.scrub(inner, action, hits);
                    }
                }
                drop
            }
            _ => false,
        }
    }

    /// Filters `props` under `policy`; `skip` names properties that are not the app's (raw
    /// identifiers, which identity consumes and the store drops).
    pub(super) fn filter(
        &self,
        props: &mut Map<String, Value>,
        tier: AgeTier,
        lint: &mut Lint,
        now_ms: i64,
        skip: &dyn Fn(&str) -> bool,
        observe: bool,
    ) -> Verdict {
        let policy = self.settings.policy(tier);
        let t = tier.as_str();
        // Detectors whose hits are kept only feed the lint report: they run on a sample.
        let scan = policy.detectors != DetectorAction::Keep || observe;
        // Decide per property while iterating; remove afterwards (no copy of every key).
        let mut remove: Vec<String> = Vec::new();
        for (k, v) in props.iter_mut() {
            let k = k.as_str();
            if STAMPS.contains(&k) || skip(k) {
                continue;
            }
            let mut drop = |rule: &str| {
                lint.record(k, rule, "drop_property", t, now_ms);
                remove.push(k.to_string());
            };
            if self
                .settings
                .default_property_blocklist
                .iter()
                .any(|b| b == k)
            {
                drop("blocklist");
                continue;
            }
            let class = self.class_of(k);
            if let Some(c) = class
                && policy.blocked_classes.contains(&c)
            {
                drop(&format!("class:{}", c.label()));
                continue;
            }
            let geo_needed = match k {
                "$city" => Some(GeoLevel::City),
                "$region" => Some(GeoLevel::Region),
                "mp_country_code" | "$country_code" => Some(GeoLevel::Country),
                _ => None,
            };
            if let Some(level) = geo_needed
                && policy.geo < level
            {
                drop("geo_level");
                continue;
            }
            if class.is_none()
                && geo_needed.is_none()
                && !is_default_property(k)
                && policy.unknown_properties == UnknownProperties::Drop
            {
                drop("unknown_property");
                continue;
            }
            if !scan {
                continue;
            }
            let mut hits = Vec::new();
            let name_hits = detect(k);
            let dropped = !name_hits.is_empty() || self.scrub(v, policy.detectors, &mut hits);
            hits.extend(name_hits.iter());
            if hits.is_empty() {
                continue;
            }
            hits.sort();
            hits.dedup();
            let action = match policy.detectors {
                DetectorAction::RejectEvent => {
                    for h in &hits {
                        lint.record(k, &format!("pii:{}", h.label()), "reject_event", t, now_ms);
                    }
                    return Verdict::Reject("pii_in_event");
                }
                DetectorAction::Keep => "kept",
                DetectorAction::Redact => "redact",
                DetectorAction::Hash => "hash",
                DetectorAction::DropProperty => "drop_property",
            };
            // A property whose name is personal data cannot be redacted: it goes.
            let action = if dropped && policy.detectors != DetectorAction::Keep {
                "drop_property"
            } else {
                action
            };
            if action == "drop_property" {
                remove.push(k.to_string());
            }
            for h in &hits {
                lint.record(k, &format!("pii:{}", h.label()), action, t, now_ms);
            }
        }
        // Many properties go for a child: one pass beats a tree search per removal.
        if remove.len() > 2 {
            props.retain(|k, _| !remove.contains(k));
        } else {
            for k in remove {
                props.remove(&k);
            }
        }
        Verdict::Keep
    }
}
