//! The privacy lint report (issue #4 item 9): a counter per (property, rule, action, tier),
//! with first and last time seen — never a value. Property names that themselves contain
//! personal data are reported by their detector kind.

use crate::detect::detect;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct LintKey {
    pub property: String,
    pub rule: String,
    pub action: String,
    pub tier: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LintCount {
    pub count: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lint {
    entries: BTreeMap<LintKey, LintCount>,
}

/// A property name fit for the report.
pub fn safe_name(name: &str) -> String {
    match detect(name).iter().next() {
        Some(kind) => format!("[{}]", kind.label()),
        None => name.chars().take(255).collect(),
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
        let key = LintKey {
            property: safe_name(property),
            rule: rule.to_string(),
            action: action.to_string(),
            tier: tier.to_string(),
        };
        self.add(
            key,
            LintCount {
                count: 1,
                first_seen_ms: now_ms,
                last_seen_ms: now_ms,
            },
        );
    }

    /// Adds `v` to the counter of `k` (a persisted row, or another report's entry).
    pub fn add(&mut self, k: LintKey, v: LintCount) {
        let e = self.entries.entry(k).or_insert(LintCount {
            count: 0,
            first_seen_ms: v.first_seen_ms,
            last_seen_ms: v.last_seen_ms,
        });
        e.count += v.count;
        e.first_seen_ms = e.first_seen_ms.min(v.first_seen_ms);
        e.last_seen_ms = e.last_seen_ms.max(v.last_seen_ms);
    }

    pub fn merge(&mut self, other: Lint) {
        for (k, v) in other.entries {
            self.add(k, v);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> impl Iterator<Item = (&LintKey, &LintCount)> {
        self.entries.iter()
    }

    pub fn count(&self, rule: &str) -> u64 {
        self.entries
            .iter()
            .filter(|(k, _)| k.rule == rule)
            .map(|(_, v)| v.count)
            .sum()
    }
}
