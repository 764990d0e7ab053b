//! A project's privacy settings (regulation-controls.md A1–A11, A19, A29): who the audience
//! is, and per age tier what happens to the IP, geolocation, unknown properties, detector hits
//! and classified properties, and how long data is kept. Serialized inside the project's
//! versioned settings; [`PrivacySettings::validate`] gives clear errors.

use crate::tier::AgeTier;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Not directed to children: unknown age is treated as adult.
    #[default]
    General,
    /// Children may be present: unknown age gets the strictest tier of the jurisdiction.
    Mixed,
    ChildDirected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpMode {
    Drop,
    Truncate,
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeoLevel {
    None,
    Country,
    Region,
    City,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownProperties {
    Allow,
    Drop,
}

/// What a PII detector hit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorAction {
    Keep,
    DropProperty,
    Redact,
    Hash,
    RejectEvent,
}

/// The data dictionary's classes (A4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyClass {
    Contact,
    Name,
    GovId,
    Biometric,
    Media,
    FreeText,
    PreciseGeo,
    DeviceHwId,
    AdId,
    Technical,
    Behavioral,
}

impl PropertyClass {
    pub fn label(self) -> &'static str {
        match self {
            PropertyClass::Contact => "contact",
            PropertyClass::Name => "name",
            PropertyClass::GovId => "gov_id",
            PropertyClass::Biometric => "biometric",
            PropertyClass::Media => "media",
            PropertyClass::FreeText => "free_text",
            PropertyClass::PreciseGeo => "precise_geo",
            PropertyClass::DeviceHwId => "device_hw_id",
            PropertyClass::AdId => "ad_id",
            PropertyClass::Technical => "technical",
            PropertyClass::Behavioral => "behavioral",
        }
    }
}

/// What one tier may keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierPolicy {
    pub ip: IpMode,
    pub geo: GeoLevel,
    pub unknown_properties: UnknownProperties,
    pub detectors: DetectorAction,
    /// Properties of these classes are dropped.
    pub blocked_classes: Vec<PropertyClass>,
    /// Only `technical` profile properties are kept (A8).
    pub technical_profile_only: bool,
    /// `identify` to an email or a phone number is refused (A4).
    pub refuse_contact_ids: bool,
    /// Days raw data is kept; `None` is "forever", refused for child tiers (A19).
    pub retention_days: Option<u32>,
    /// Counted, never tracked: events keep only a daily pseudonym, profile updates and
    /// identity events are refused (DPDP s.9(3) for `minor_in_u18`, where it cannot be off).
    #[serde(default)]
    pub aggregate_only: bool,
}

const CHILD_BLOCKED: [PropertyClass; 9] = [
    PropertyClass::Contact,
    PropertyClass::Name,
    PropertyClass::GovId,
    PropertyClass::Biometric,
    PropertyClass::Media,
    PropertyClass::FreeText,
    PropertyClass::PreciseGeo,
    PropertyClass::DeviceHwId,
    PropertyClass::AdId,
];

impl TierPolicy {
    /// The defaults of A4–A11 and A29 for `tier`.
    pub fn default_for(tier: AgeTier) -> Self {
        if tier.is_child() {
            return Self {
                ip: IpMode::Drop,
                geo: GeoLevel::Country,
                unknown_properties: UnknownProperties::Drop,
                detectors: DetectorAction::DropProperty,
                blocked_classes: CHILD_BLOCKED.to_vec(),
                technical_profile_only: true,
                refuse_contact_ids: true,
                retention_days: Some(90),
                aggregate_only: tier == AgeTier::MinorInU18,
            };
        }
        match tier {
            AgeTier::TeenCa13To15 => Self {
                ip: IpMode::Drop,
                geo: GeoLevel::Region,
                unknown_properties: UnknownProperties::Allow,
                detectors: DetectorAction::Redact,
                blocked_classes: vec![
                    PropertyClass::Biometric,
                    PropertyClass::Media,
                    PropertyClass::PreciseGeo,
                    PropertyClass::DeviceHwId,
                    PropertyClass::AdId,
                ],
                technical_profile_only: false,
                refuse_contact_ids: false,
                retention_days: Some(365),
                aggregate_only: false,
            },
            _ => Self {
                ip: IpMode::Drop,
                geo: GeoLevel::City,
                unknown_properties: UnknownProperties::Allow,
                detectors: DetectorAction::Keep,
                blocked_classes: vec![PropertyClass::Biometric, PropertyClass::Media],
                technical_profile_only: false,
                refuse_contact_ids: false,
                retention_days: Some(760),
                aggregate_only: false,
            },
        }
    }
}

/// What a browser privacy signal (`Sec-GPC: 1`, `DNT: 1`) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalHandling {
    Ignore,
    /// Opt the person out of sale and sharing (CCPA): events are marked `$opt_out_sale`, which
    /// destinations must honour.
    OptOutOfSale,
    /// Drop the request's events and profile updates before any write.
    StopAnalytics,
}

fn default_gpc() -> SignalHandling {
    SignalHandling::OptOutOfSale
}

fn default_dnt() -> SignalHandling {
    SignalHandling::Ignore
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacySettings {
    pub audience: Audience,
    /// `Sec-GPC: 1` (default: opt-out of sale/sharing).
    #[serde(default = "default_gpc")]
    pub gpc: SignalHandling,
    /// `DNT: 1` (default: ignored, as most analytics do).
    #[serde(default = "default_dnt")]
    pub dnt: SignalHandling,
    /// Where users are when an event says nothing (ISO 3166 code, `US-CA` for a state).
    pub default_jurisdiction: Option<String>,
    /// Per-tier overrides of [`TierPolicy::default_for`], keyed by tier name.
    pub tiers: BTreeMap<String, TierPolicy>,
    /// Mixpanel's "blacklist default properties", enforced by the server.
    pub default_property_blocklist: Vec<String>,
    /// The data dictionary: property name → class. Unlisted properties are "unknown".
    pub schema: BTreeMap<String, PropertyClass>,
    /// Overrides of the shipped age thresholds (jurisdiction code → "child if under").
    pub thresholds: BTreeMap<String, u8>,
    /// Consent scopes a person must have granted before their events are kept, by
    /// jurisdiction (`"US-CA"`), country (`"DE"`) or `"*"` — opt-in regimes. A withdrawal of
    /// `analytics` is honoured everywhere.
    pub consent_required: BTreeMap<String, Vec<String>>,
}

impl Default for PrivacySettings {
    fn default() -> Self {
        Self {
            audience: Audience::default(),
            gpc: default_gpc(),
            dnt: default_dnt(),
            default_jurisdiction: None,
            tiers: BTreeMap::new(),
            default_property_blocklist: Vec::new(),
            schema: BTreeMap::new(),
            thresholds: BTreeMap::new(),
            consent_required: BTreeMap::new(),
        }
    }
}

impl PrivacySettings {
    /// The scopes `jurisdiction` requires: its own entry, else its country's, else `"*"`.
    pub fn required_scopes(&self, jurisdiction: &str) -> &[String] {
        let country = jurisdiction.split('-').next().unwrap_or(jurisdiction);
        self.consent_required
            .get(jurisdiction)
            .or_else(|| self.consent_required.get(country))
            .or_else(|| self.consent_required.get("*"))
            .map_or(&[], Vec::as_slice)
    }

    /// The policy in force for `tier`: the project's override, else the shipped default.
    pub fn policy(&self, tier: AgeTier) -> &TierPolicy {
        if let Some(p) = self.tiers.get(tier.as_str()) {
            return p;
        }
        static CHILD: LazyLock<TierPolicy> =
            LazyLock::new(|| TierPolicy::default_for(AgeTier::ChildUsU13));
        static MINOR_IN: LazyLock<TierPolicy> =
            LazyLock::new(|| TierPolicy::default_for(AgeTier::MinorInU18));
        static TEEN: LazyLock<TierPolicy> =
            LazyLock::new(|| TierPolicy::default_for(AgeTier::TeenCa13To15));
        static ADULT: LazyLock<TierPolicy> =
            LazyLock::new(|| TierPolicy::default_for(AgeTier::Adult));
        if tier == AgeTier::MinorInU18 {
            &MINOR_IN
        } else if tier.is_child() {
            &CHILD
        } else if tier == AgeTier::TeenCa13To15 {
            &TEEN
        } else {
            &ADULT
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in &self.tiers {
            let tier: AgeTier = name.parse().map_err(|e| format!("privacy.tiers: {e}"))?;
            if tier.is_child() && p.retention_days.is_none() {
                return Err(format!(
                    "privacy.tiers.{name}.retention_days: a child tier must have a finite retention (COPPA 312.10)"
                ));
            }
            if tier == AgeTier::MinorInU18 && !p.aggregate_only {
                return Err(format!(
                    "privacy.tiers.{name}.aggregate_only must be true: DPDP s.9(3) forbids tracking or behavioural monitoring of children in India"
                ));
            }
            if p.retention_days == Some(0) {
                return Err(format!(
                    "privacy.tiers.{name}.retention_days must be at least 1"
                ));
            }
        }
        for (code, under) in &self.thresholds {
            if !(1..=21).contains(under) {
                return Err(format!(
                    "privacy.thresholds.{code}: {under} is not an age threshold"
                ));
            }
        }
        if let Some(j) = &self.default_jurisdiction
            && !crate::tier::plausible_jurisdiction(j)
        {
            return Err(format!(
                "privacy.default_jurisdiction {j:?} is not an ISO 3166 code such as \"US\", \"IN\" or \"US-CA\""
            ));
        }
        Ok(())
    }
}
