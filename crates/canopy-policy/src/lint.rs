//! The privacy lint report (issue #4 item 9): a counter per (property, rule, action, tier),
//! with first and last time seen — never a value. Property names that themselves contain
//! personal data are reported by their detector kind.

use crate::detect::detect;
use hashbrown::{Equivalent, HashMap};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct LintKey {
    pub property: String,
    pub rule: String,
    pub action: String,
    pub tier: String,
}

/// A [`LintKey`] by reference: counting an action already seen allocates nothing. Field order
/// and types hash exactly as `LintKey`'s (`String` hashes as `str`).
#[derive(Hash)]
struct KeyRef<'a> {
    property: &'a str,
    rule: &'a str,
    action: &'a str,
    tier: &'a str,
}

impl Equivalent<LintKey> for KeyRef<'_> {
    fn equivalent(&self, k: &LintKey) -> bool {
        self.property == k.property
            && self.rule == k.rule
            && self.action == k.action
            && self.tier == k.tier
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LintCount {
    pub count: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lint {
    entries: HashMap<LintKey, LintCount>,
}

const MAX_NAME_CHARS: usize = 255;

impl LintCount {
    fn add(&mut self, v: LintCount) {
        self.count += v.count;
        self.first_seen_ms = self.first_seen_ms.min(v.first_seen_ms);
        self.last_seen_ms = self.last_seen_ms.max(v.last_seen_ms);
    }
}

impl Lint {
    pub fn record(
        &mut self,
        property: &str,
        rule: &str,
        action: &'static str,
        tier: &'static str,
        now_ms: i64,
    ) {
        let one = LintCount {
            count: 1,
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
        };
        let redacted;
        let property = match detect(property).iter().next() {
            Some(kind) => {
                redacted = format!("[{}]", kind.label());
                redacted.as_str()
            }
            None => match property.char_indices().nth(MAX_NAME_CHARS) {
                Some((end, _)) => &property[..end],
                None => property,
            },
        };
        let key = KeyRef {
            property,
            rule,
            action,
            tier,
        };
        if let Some(c) = self.entries.get_mut(&key) {
            c.add(one);
            return;
        }
        let key = LintKey {
            property: property.to_string(),
            rule: rule.to_string(),
            action: action.to_string(),
            tier: tier.to_string(),
        };
        self.entries.insert(key, one);
    }

    /// Adds `v` to the counter of `k` (a persisted row, or another report's entry).
    pub fn add(&mut self, k: LintKey, v: LintCount) {
        match self.entries.get_mut(&k) {
            Some(c) => c.add(v),
            None => {
                self.entries.insert(k, v);
            }
        }
    }

    pub fn merge(&mut self, other: Lint) {
        for (k, v) in other.entries {
            self.add(k, v);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The counters, in no particular order (metrics, persistence).
    pub fn entries(&self) -> impl Iterator<Item = (&LintKey, &LintCount)> {
        self.entries.iter()
    }

    /// The counters ordered by key (for people to read).
    pub fn sorted_entries(&self) -> Vec<(&LintKey, &LintCount)> {
        let mut all: Vec<_> = self.entries.iter().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all
    }

    pub fn count(&self, rule: &str) -> u64 {
        self.entries
            .iter()
            .filter(|(k, _)| k.rule == rule)
            .map(|(_, v)| v.count)
            .sum()
    }
}
