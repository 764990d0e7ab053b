//! Age tier and jurisdiction of an event (regulation-controls.md A1, A3, §B). The thresholds
//! ship as data ([`threshold`]) and can be overridden per project. Age arrives as a band
//! (`$age_band`) or is turned into one (`$birth_year`, `$age`): only the band is kept.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AgeTier {
    ChildUsU13,
    MinorInU18,
    /// Under the GDPR Art 8 age of the member state (13–16).
    ChildEu(u8),
    ChildGbU13,
    TeenCa13To15,
    Adult,
    Unknown,
}

impl AgeTier {
    pub fn as_str(self) -> &'static str {
        match self {
            AgeTier::ChildUsU13 => "child_us_u13",
            AgeTier::MinorInU18 => "minor_in_u18",
            AgeTier::ChildEu(13) => "child_eu_u13",
            AgeTier::ChildEu(14) => "child_eu_u14",
            AgeTier::ChildEu(15) => "child_eu_u15",
            AgeTier::ChildEu(_) => "child_eu_u16",
            AgeTier::ChildGbU13 => "child_gb_u13",
            AgeTier::TeenCa13To15 => "teen_ca_13_15",
            AgeTier::Adult => "adult",
            AgeTier::Unknown => "unknown",
        }
    }

    pub fn is_child(self) -> bool {
        matches!(
            self,
            AgeTier::ChildUsU13 | AgeTier::MinorInU18 | AgeTier::ChildEu(_) | AgeTier::ChildGbU13
        )
    }
}

impl std::str::FromStr for AgeTier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "child_us_u13" => AgeTier::ChildUsU13,
            "minor_in_u18" => AgeTier::MinorInU18,
            "child_eu_u13" => AgeTier::ChildEu(13),
            "child_eu_u14" => AgeTier::ChildEu(14),
            "child_eu_u15" => AgeTier::ChildEu(15),
            "child_eu_u16" => AgeTier::ChildEu(16),
            "child_gb_u13" => AgeTier::ChildGbU13,
            "teen_ca_13_15" => AgeTier::TeenCa13To15,
            "adult" => AgeTier::Adult,
            "unknown" => AgeTier::Unknown,
            other => return Err(format!("unknown age tier {other:?}")),
        })
    }
}

const EU_13: [&str; 8] = ["BE", "DK", "EE", "FI", "LV", "MT", "PT", "SE"];
const EU_14: [&str; 6] = ["AT", "BG", "CY", "IT", "LT", "ES"];
const EU_15: [&str; 4] = ["CZ", "FR", "GR", "SI"];
const EU_16: [&str; 9] = ["HR", "DE", "HU", "IE", "LU", "NL", "PL", "RO", "SK"];

/// The shipped "child if under" age of a jurisdiction (regulation-controls.md §B), with the
/// tier it gives.
pub fn threshold(jurisdiction: &str, overrides: &BTreeMap<String, u8>) -> (u8, AgeTier) {
    let country = jurisdiction.split('-').next().unwrap_or(jurisdiction);
    let shipped = if country == "IN" {
        (18, AgeTier::MinorInU18)
    } else if country == "GB" {
        (13, AgeTier::ChildGbU13)
    } else if EU_13.contains(&country) {
        (13, AgeTier::ChildEu(13))
    } else if EU_14.contains(&country) {
        (14, AgeTier::ChildEu(14))
    } else if EU_15.contains(&country) {
        (15, AgeTier::ChildEu(15))
    } else if EU_16.contains(&country) {
        (16, AgeTier::ChildEu(16))
    } else {
        (13, AgeTier::ChildUsU13)
    };
    let under = overrides
        .get(jurisdiction)
        .or_else(|| overrides.get(country))
        .copied()
        .unwrap_or(shipped.0);
    let tier = match shipped.1 {
        AgeTier::ChildEu(_) => AgeTier::ChildEu(under.clamp(13, 16)),
        t => t,
    };
    (under, tier)
}

pub(crate) fn plausible_jurisdiction(j: &str) -> bool {
    let mut parts = j.split('-');
    let country = parts.next().unwrap_or("");
    country.len() == 2
        && country.chars().all(|c| c.is_ascii_uppercase())
        && parts
            .all(|p| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Standard bands; only these are stored.
const BANDS: [(u8, u8, &str); 6] = [
    (0, 5, "0-5"),
    (6, 8, "6-8"),
    (9, 12, "9-12"),
    (13, 15, "13-15"),
    (16, 17, "16-17"),
    (18, 200, "18+"),
];

/// Reads an age range from `$age_band` ("6-8", "13-15", "18+", "under_13", …).
fn parse_band(s: &str) -> Option<(u8, u8)> {
    let s = s.trim().to_ascii_lowercase();
    if let Some(rest) = s
        .strip_prefix("under_")
        .or_else(|| s.strip_prefix("under "))
        .or_else(|| s.strip_prefix('<'))
        .or_else(|| s.strip_prefix('u'))
    {
        let n: u8 = rest.trim().parse().ok()?;
        return Some((0, n.saturating_sub(1)));
    }
    if let Some(n) = s.strip_suffix('+') {
        return Some((n.trim().parse().ok()?, 200));
    }
    let (a, b) = s.split_once(['-', '–'])?;
    let (a, b): (u8, u8) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

fn band_of(age: u8) -> &'static str {
    BANDS
        .iter()
        .find(|(lo, hi, _)| (*lo..=*hi).contains(&age))
        .map_or("18+", |b| b.2)
}

/// Takes the age signals out of `props`, leaving only `$age_band`. Returns the age range
/// (exact when an age or birth year was given).
pub fn take_age(props: &mut Map<String, Value>, event_year: i32) -> Option<(u8, u8)> {
    let exact = match (props.remove("$birth_year"), props.remove("$age")) {
        (Some(by), _) => by
            .as_i64()
            .or_else(|| by.as_str()?.trim().parse().ok())
            .map(|y| i64::from(event_year) - y)
            .filter(|a| (0..=120).contains(a)),
        (None, Some(a)) => a
            .as_i64()
            .or_else(|| a.as_str()?.trim().parse().ok())
            .filter(|a| (0..=120).contains(a)),
        _ => None,
    };
    props.remove("$birthdate");
    if let Some(age) = exact {
        // The exact age decides the tier (thresholds of 14, 15, 16 fall inside bands); only
        // the band is kept.
        let age = age as u8;
        props.insert("$age_band".into(), Value::String(band_of(age).into()));
        return Some((age, age));
    }
    match props.get("$age_band") {
        Some(Value::String(s)) => parse_band(s),
        _ => None,
    }
}

/// The event's jurisdiction: `$jurisdiction`, else the country (`mp_country_code`,
/// `$country_code`) with California recognized from `$region`, else the project default.
pub fn jurisdiction(props: &Map<String, Value>, default: Option<&str>) -> String {
    let text = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_string);
    if let Some(j) = text("$jurisdiction").filter(|j| plausible_jurisdiction(j)) {
        return j;
    }
    if let Some(c) = text("mp_country_code").or_else(|| text("$country_code")) {
        let c = c.to_ascii_uppercase();
        if c == "US" && text("$region").as_deref() == Some("California") {
            return "US-CA".into();
        }
        if plausible_jurisdiction(&c) {
            return c;
        }
    }
    default.unwrap_or("US").to_string()
}

/// The tier of a person of age range `age` in `jurisdiction`. Unknown age is `Unknown`; a
/// range straddling the threshold counts as the child side.
pub fn tier_for(
    age: Option<(u8, u8)>,
    jurisdiction: &str,
    overrides: &BTreeMap<String, u8>,
) -> AgeTier {
    let Some((_, hi)) = age else {
        return AgeTier::Unknown;
    };
    let (under, child) = threshold(jurisdiction, overrides);
    if hi < under {
        return child;
    }
    if jurisdiction == "US-CA" && hi < 16 {
        return AgeTier::TeenCa13To15;
    }
    AgeTier::Adult
}

/// What unknown age means: the strictest tier of the jurisdiction where children may be
/// present, an adult otherwise.
pub fn unknown_as(
    children_possible: bool,
    jurisdiction: &str,
    overrides: &BTreeMap<String, u8>,
) -> AgeTier {
    if children_possible {
        threshold(jurisdiction, overrides).1
    } else {
        AgeTier::Adult
    }
}
