//! Retention (issue #6 item 6, control A19): how long each tier's raw events are kept, the
//! cut-off that follows at a given moment, and the written retention policy for the app's
//! privacy notice (COPPA §312.10). Pure; the server's job applies it (`canopy-server`
//! `retention.rs`).

use crate::settings::PrivacySettings;
use crate::tier::AgeTier;

const DAY_MS: i64 = 86_400_000;

/// Every tier an event can be stamped with (`$age_tier`).
pub const TIERS: [AgeTier; 10] = [
    AgeTier::ChildUsU13,
    AgeTier::MinorInU18,
    AgeTier::ChildEu(13),
    AgeTier::ChildEu(14),
    AgeTier::ChildEu(15),
    AgeTier::ChildEu(16),
    AgeTier::ChildGbU13,
    AgeTier::TeenCa13To15,
    AgeTier::Adult,
    AgeTier::Unknown,
];

/// One tier's rule at a moment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RetentionRule {
    pub tier: &'static str,
    /// `None`: kept until deleted (never for a child tier; settings refuse it).
    pub days: Option<u32>,
    /// Events of this tier older than this (ms since the epoch) are due for deletion.
    pub cutoff_ms: Option<i64>,
}

/// The rules of every tier at `now_ms`.
pub fn retention_plan(settings: &PrivacySettings, now_ms: i64) -> Vec<RetentionRule> {
    TIERS
        .iter()
        .map(|t| {
            let days = settings.policy(*t).retention_days;
            RetentionRule {
                tier: t.as_str(),
                days,
                cutoff_ms: days.map(|d| now_ms - i64::from(d) * DAY_MS),
            }
        })
        .collect()
}

/// The cut-off for an event stamped with `tier` (events without a stamp, or with one this
/// build does not know, follow the `unknown` tier).
pub fn cutoff_for(plan: &[RetentionRule], tier: Option<&str>) -> Option<i64> {
    let name = tier
        .filter(|t| plan.iter().any(|r| r.tier == *t))
        .unwrap_or("unknown");
    plan.iter()
        .find(|r| r.tier == name)
        .and_then(|r| r.cutoff_ms)
}

fn describe(tier: AgeTier) -> &'static str {
    match tier {
        AgeTier::ChildUsU13 => "Children under 13 in the United States (COPPA)",
        AgeTier::MinorInU18 => "People under 18 in India (DPDP Act)",
        AgeTier::ChildEu(_) => "Children under the digital age of consent in the EU (GDPR Art. 8)",
        AgeTier::ChildGbU13 => "Children under 13 in the United Kingdom",
        AgeTier::TeenCa13To15 => "Teenagers aged 13 to 15 in California (CCPA)",
        AgeTier::Adult => "Adults",
        AgeTier::Unknown => "People whose age is not known",
    }
}

/// The written retention policy (purpose → need → period), as plain text for the privacy
/// notice.
pub fn retention_policy_text(settings: &PrivacySettings) -> String {
    let mut out = String::from(
        "Data retention policy (analytics)\n\n\
         Purpose: to understand how the app is used — which features are used, where people\n\
         get stuck, whether changes help — so it can be improved. Need: usage events (what\n\
         was done in the app and when) are needed for a limited time to see trends and compare\n\
         periods; they are not needed once that period has passed.\n\n\
         How long usage events are kept, then deleted automatically:\n",
    );
    let mut seen = std::collections::BTreeSet::new();
    for tier in TIERS {
        let label = describe(tier);
        if !seen.insert(label) {
            continue;
        }
        let period = match settings.policy(tier).retention_days {
            Some(d) => format!("{d} days"),
            None => "until deleted on request".to_string(),
        };
        out.push_str(&format!("- {label}: {period}\n"));
    }
    out.push_str(
        "\nA parent or user can ask at any time for all data about a person to be deleted; it\n\
         is deleted within days (at the latest 30) and a signed receipt confirms it. Counts\n\
         without any identifier may be kept longer.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tier_has_a_rule_and_children_are_never_kept_forever() {
        let settings = PrivacySettings::default();
        let plan = retention_plan(&settings, 1_000 * DAY_MS);
        assert_eq!(plan.len(), TIERS.len());
        for r in &plan {
            let tier: AgeTier = r.tier.parse().unwrap();
            if tier.is_child() {
                assert!(r.days.is_some(), "{}", r.tier);
            }
        }
        let child = plan.iter().find(|r| r.tier == "child_us_u13").unwrap();
        assert_eq!(child.cutoff_ms, Some((1_000 - 90) * DAY_MS));
        assert_eq!(cutoff_for(&plan, Some("child_us_u13")), child.cutoff_ms);
        let unknown = cutoff_for(&plan, Some("no-such-tier"));
        assert_eq!(unknown, cutoff_for(&plan, None));
        let text = retention_policy_text(&settings);
        assert!(text.contains("Children under 13 in the United States (COPPA): 90 days"));
        assert!(text.contains("Purpose"));
    }
}
