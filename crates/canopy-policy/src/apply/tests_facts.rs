//! The policy with what the server looked up: aggregate-only tiers, the IP and its location,
//! sticky tiers on profile updates.

use super::tests::{event, policy};
use super::*;
use crate::settings::{Audience, IpMode, TierPolicy};
use canopy_types::{PersonKey, ProjectId};
use serde_json::json;

const NOW: i64 = 1_795_000_000_000;
const DAY: i64 = 86_400_000;

/// A salt per UTC day, as the server's salt store gives them.
fn salt_of_day(t: i64) -> Option<[u8; 32]> {
    Some([(t.div_euclid(DAY) % 251) as u8; 32])
}

fn aggregate(p: &Policy, id: &str, props: Value, time_ms: i64) -> (Verdict, Event) {
    let mut e = event(id, props);
    e.time_ms = time_ms;
    let mut lint = Lint::default();
    let facts = Facts {
        daily_salt: Some(&salt_of_day),
        ..Default::default()
    };
    let (v, _) = p.apply_event_with(&mut e, &mut lint, NOW, &facts);
    (v, e)
}

#[test]
fn indian_minors_are_counted_under_a_daily_pseudonym_never_tracked() {
    let p = policy(Audience::Mixed);
    let minor = json!({"$age_band": "13-15", "mp_country_code": "IN", "$device_id": "dev-1",
                       "$user_id": "kid@example.com", "level": 3});
    let (v, a) = aggregate(&p, "kid-1", minor.clone(), NOW);
    assert_eq!(v, Verdict::Keep);
    assert!(a.distinct_id.starts_with(PSEUDONYM_PREFIX));
    assert_eq!(a.properties["$age_tier"], "minor_in_u18");
    for id in ["$device_id", "$user_id"] {
        assert!(!a.properties.contains_key(id), "{id} would link days");
    }
    let text = serde_json::to_string(&a.properties).unwrap();
    assert!(!text.contains("kid") && !text.contains("dev-1"));
    // Same person, same day: same pseudonym (daily uniques work); next day: another.
    let (_, b) = aggregate(&p, "kid-1", minor.clone(), NOW + 1000);
    let (_, c) = aggregate(&p, "kid-1", minor.clone(), NOW + DAY);
    assert_eq!(a.distinct_id, b.distinct_id);
    assert_ne!(a.distinct_id, c.distinct_id);
    // Unknown age in India, in a mixed project, is a minor too.
    let (v, d) = aggregate(&p, "someone", json!({"mp_country_code": "IN"}), NOW);
    assert_eq!(v, Verdict::Keep);
    assert!(d.distinct_id.starts_with(PSEUDONYM_PREFIX));
    // Adults in India are tracked as usual.
    let (_, adult) = aggregate(
        &p,
        "grown-up",
        json!({"$age_band": "18+", "mp_country_code": "IN"}),
        NOW,
    );
    assert_eq!(adult.distinct_id, "grown-up");
}

#[test]
fn regression_a_pseudonym_that_looks_like_a_phone_number_is_not_refused() {
    let p = policy(Audience::Mixed);
    // A day's salt under which the pseudonym of "kid-1" holds a long run of digits (about one
    // salt in ten): the contact-identifier check took it for a phone number.
    let salt = (0..=255u8)
        .map(|b| [b; 32])
        .find(|s| crate::detect::is_contact(&aggregate::pseudonym(s, "kid-1")))
        .expect("some salt gives a digit-heavy pseudonym");
    let salt_of_any_day = |_: i64| Some(salt);
    for props in [
        json!({"mp_country_code": "IN"}),
        json!({"$age_band": "13-15", "mp_country_code": "IN"}),
    ] {
        let mut e = event("kid-1", props);
        let facts = Facts {
            daily_salt: Some(&salt_of_any_day),
            ..Default::default()
        };
        let (v, _) = p.apply_event_with(&mut e, &mut Lint::default(), NOW, &facts);
        assert_eq!(v, Verdict::Keep);
        assert!(e.distinct_id.starts_with(PSEUDONYM_PREFIX));
    }
}

#[test]
fn aggregate_tiers_refuse_identity_events_and_events_without_a_salt() {
    let p = policy(Audience::Mixed);
    let props = json!({"mp_country_code": "IN", "$anon_distinct_id": "a"});
    let mut e = event("kid", props.clone());
    e.name = "$identify".into();
    let mut lint = Lint::default();
    let facts = Facts {
        daily_salt: Some(&salt_of_day),
        ..Default::default()
    };
    assert_eq!(
        p.apply_event_with(&mut e, &mut lint, NOW, &facts).0,
        Verdict::Reject("aggregate_only_identity")
    );
    // No salt (the store is unavailable): refused, never stored with its identifier.
    let mut e = event("kid", props);
    assert_eq!(
        p.apply_event_with(&mut e, &mut lint, NOW, &Facts::default())
            .0,
        Verdict::Reject("aggregate_salt_unavailable")
    );
}

#[test]
fn aggregate_only_can_be_configured_for_other_tiers_but_not_switched_off_for_indian_minors() {
    let mut p = policy(Audience::Mixed);
    let mut child = TierPolicy::default_for(AgeTier::ChildUsU13);
    child.aggregate_only = true;
    p.settings.tiers.insert("child_us_u13".into(), child);
    let (_, e) = aggregate(&p, "kid", json!({"$age_band": "6-8"}), NOW);
    assert!(e.distinct_id.starts_with(PSEUDONYM_PREFIX));
    assert!(p.settings.validate().is_ok());
    let mut off = TierPolicy::default_for(AgeTier::MinorInU18);
    off.aggregate_only = false;
    p.settings.tiers.insert("minor_in_u18".into(), off);
    assert!(p.settings.validate().unwrap_err().contains("DPDP"));
}

fn geo_event(p: &Policy, props: Value, geo: Option<Geo>) -> (Verdict, Event) {
    let mut e = event("u", props);
    e.ip = Some("203.0.113.77".parse().unwrap());
    let mut lint = Lint::default();
    let facts = Facts {
        geo,
        ..Default::default()
    };
    let (v, _) = p.apply_event_with(&mut e, &mut lint, NOW, &facts);
    (v, e)
}

fn california() -> Geo {
    Geo {
        country: Some("US".into()),
        region_code: Some("CA".into()),
        region: Some("California".into()),
        city: Some("San Francisco".into()),
    }
}

#[test]
fn the_ip_country_decides_the_jurisdiction_and_the_tier_caps_the_location() {
    let p = policy(Audience::Mixed);
    // A 14-year-old in California (from the IP): the CCPA teen tier, region at most.
    let (v, e) = geo_event(&p, json!({"$age_band": "13-15"}), Some(california()));
    assert_eq!(v, Verdict::Keep);
    assert_eq!(e.properties["$jurisdiction"], "US-CA");
    assert_eq!(e.properties["$age_tier"], "teen_ca_13_15");
    assert_eq!(e.properties["$region"], "California");
    assert!(!e.properties.contains_key("$city"));
    // A child: country only, whatever the client sent.
    let (_, e) = geo_event(
        &p,
        json!({"$age_band": "6-8", "$city": "Sent By Client"}),
        Some(california()),
    );
    assert_eq!(
        e.properties.get("mp_country_code"),
        Some(&json!("US")),
        "{e:?}"
    );
    assert!(!e.properties.contains_key("$region") && !e.properties.contains_key("$city"));
    // An explicit jurisdiction wins over the IP.
    let (v, _) = geo_event(
        &p,
        json!({"$age_band": "13-15", "$jurisdiction": "IN"}),
        Some(california()),
    );
    assert_eq!(
        v,
        Verdict::Reject("aggregate_salt_unavailable"),
        "an Indian minor"
    );
}

#[test]
fn the_ip_is_dropped_truncated_or_kept_as_the_tier_says_and_never_left_on_the_event() {
    let mut p = policy(Audience::General);
    let (_, e) = geo_event(&p, json!({}), None);
    assert!(!e.properties.contains_key("$ip"), "adult default is drop");
    assert_eq!(e.ip, None);
    let mut adult = TierPolicy::default_for(AgeTier::Adult);
    adult.ip = IpMode::Truncate;
    p.settings.tiers.insert("adult".into(), adult.clone());
    let (_, e) = geo_event(&p, json!({}), None);
    assert_eq!(e.properties["$ip"], "203.0.113.0");
    adult.ip = IpMode::Keep;
    p.settings.tiers.insert("adult".into(), adult);
    let (_, e) = geo_event(&p, json!({}), None);
    assert_eq!(e.properties["$ip"], "203.0.113.77");
    // A child in the same project: never, whatever the adult tier does.
    let mut m = policy(Audience::Mixed);
    m.settings.tiers = p.settings.tiers.clone();
    let (_, e) = geo_event(&m, json!({"$age_band": "6-8"}), None);
    assert!(!e.properties.contains_key("$ip"));
    assert_eq!(e.ip, None);
}

#[test]
fn profile_updates_follow_the_sticky_tier() {
    let p = policy(Audience::General);
    let update = || ProfileUpdate {
        project: ProjectId(1),
        target: ProfileTarget::User {
            distinct_id: "kid-1".into(),
        },
        person: PersonKey::NONE,
        operation: "$set".into(),
        value: json!({"favourite": "owls", "$os": "iOS"}),
        time_ms: NOW,
        received_ms: NOW,
        modifiers: Map::new(),
    };
    let mut lint = Lint::default();
    let mut u = update();
    assert_eq!(
        p.apply_profile(&mut u, &mut lint, NOW, None, None),
        Verdict::Keep
    );
    assert_eq!(u.value["favourite"], "owls", "an adult by default");
    let mut u = update();
    let prior = Some(AgeTier::ChildUsU13);
    assert_eq!(
        p.apply_profile(&mut u, &mut lint, NOW, prior, None),
        Verdict::Keep
    );
    assert_eq!(
        u.value,
        json!({"$os": "iOS"}),
        "a remembered child: technical only"
    );
    let mut u = update();
    assert_eq!(
        p.apply_profile(&mut u, &mut lint, NOW, Some(AgeTier::MinorInU18), None),
        Verdict::Reject("aggregate_only_tier")
    );
}

#[test]
fn regression_a_remembered_indian_minor_is_not_turned_into_another_child_tier_by_unknown_age() {
    // In a mixed project unknown age is itself a child tier (the default jurisdiction's);
    // that must not replace the stricter tier on record.
    let p = policy(Audience::Mixed);
    let mut lint = Lint::default();
    let mut e = event("kid-in", json!({"level": 1}));
    let facts = Facts {
        prior: Some(AgeTier::MinorInU18),
        daily_salt: Some(&salt_of_day),
        ..Default::default()
    };
    let _ = p.apply_event_with(&mut e, &mut lint, NOW, &facts);
    assert_eq!(e.properties["$age_tier"], "minor_in_u18");
    assert!(e.distinct_id.starts_with(PSEUDONYM_PREFIX));
    let mut u = ProfileUpdate {
        project: ProjectId(1),
        target: ProfileTarget::User {
            distinct_id: "kid-in".into(),
        },
        person: PersonKey::NONE,
        operation: "$set".into(),
        value: json!({"$os": "Android"}),
        time_ms: NOW,
        received_ms: NOW,
        modifiers: Map::new(),
    };
    assert_eq!(
        p.apply_profile(&mut u, &mut lint, NOW, Some(AgeTier::MinorInU18), None),
        Verdict::Reject("aggregate_only_tier")
    );
}
