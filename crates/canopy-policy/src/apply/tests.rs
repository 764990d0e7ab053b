use super::*;
use crate::detect::detect;
use crate::settings::{Audience, DetectorAction, TierPolicy};
use canopy_types::{PersonKey, ProjectId};
use serde_json::json;

const NOW: i64 = 1_795_000_000_000; // 2026-11

pub(super) fn policy(audience: Audience) -> Policy {
    Policy {
        settings: PrivacySettings {
            audience,
            ..Default::default()
        },
        hash_salt: [7; 32],
        suppressed: Default::default(),
    }
}

pub(super) fn event(distinct_id: &str, props: Value) -> Event {
    Event {
        project: ProjectId(1),
        name: "Play".into(),
        time_ms: NOW,
        distinct_id: distinct_id.into(),
        person: PersonKey::NONE,
        insert_id: String::new(),
        received_ms: NOW,
        properties: props.as_object().cloned().unwrap_or_default(),
        ip: None,
    }
}

fn run(p: &Policy, props: Value) -> (Verdict, Map<String, Value>, Lint) {
    let mut e = event("kid-1", props);
    let mut lint = Lint::default();
    let v = p.apply_event(&mut e, &mut lint, NOW);
    (v, e.properties, lint)
}

/// Every string anywhere in `v`, property names included.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => {
            for (k, x) in o {
                out.push(k.clone());
                strings(x, out);
            }
        }
        _ => {}
    }
}

#[test]
fn general_audience_adults_keep_their_data_and_get_stamped() {
    let (v, props, lint) = run(
        &policy(Audience::General),
        json!({"level": 3, "$email": "p@example.com", "mp_country_code": "US", "$city": "Austin"}),
    );
    assert_eq!(v, Verdict::Keep);
    assert_eq!(props["level"], 3);
    assert_eq!(props["$email"], "p@example.com");
    assert_eq!(props["$city"], "Austin");
    assert_eq!(
        (props["$age_tier"].as_str(), props["$jurisdiction"].as_str()),
        (Some("adult"), Some("US"))
    );
    // The adult default keeps detector hits: they are only observed, on a sample of records
    // (this one: time ^ received = 0).
    assert_eq!(lint.count("pii:email"), 1);
}

#[test]
fn unknown_age_in_a_mixed_project_gets_the_strictest_child_policy() {
    let (v, props, lint) = run(
        &policy(Audience::Mixed),
        json!({"level": 3, "$email": "p@example.com", "$idfa": "AEBE52E7-03EE-455A-B3C4-E57283966239",
               "mac_address": "00:1A:2B:3C:4D:5E", "$latitude": 30.26, "search_query": "my name is Ana",
               "mp_country_code": "US", "$city": "Austin", "$os": "iOS", "note": "call +1 415 555 2671"}),
    );
    assert_eq!(v, Verdict::Keep);
    assert_eq!(props["$age_tier"], "child_us_u13");
    for gone in [
        "level",
        "$email",
        "$idfa",
        "mac_address",
        "$latitude",
        "search_query",
        "$city",
        "note",
    ] {
        assert!(!props.contains_key(gone), "{gone} survived: {props:?}");
    }
    assert_eq!(
        (props["$os"].as_str(), props["mp_country_code"].as_str()),
        (Some("iOS"), Some("US"))
    );
    assert_eq!(lint.count("class:ad_id"), 1);
    assert_eq!(lint.count("class:device_hw_id"), 1);
    assert_eq!(lint.count("class:contact"), 1);
    assert_eq!(lint.count("class:precise_geo"), 1);
    assert_eq!(lint.count("class:free_text"), 2);
    assert_eq!(lint.count("geo_level"), 1);
    assert_eq!(lint.count("unknown_property"), 1);
}

#[test]
fn the_data_dictionary_allows_behavioral_properties_for_children_and_detectors_still_run() {
    let mut p = policy(Audience::ChildDirected);
    p.settings
        .schema
        .insert("level".into(), PropertyClass::Behavioral);
    p.settings
        .schema
        .insert("story".into(), PropertyClass::Behavioral);
    let (v, props, lint) = run(
        &p,
        json!({"level": 3, "story": ["owl", {"by": "mum@example.com"}]}),
    );
    assert_eq!(v, Verdict::Keep);
    assert_eq!(props["level"], 3);
    assert!(
        !props.contains_key("story"),
        "nested email drops the property: {props:?}"
    );
    assert_eq!(lint.count("pii:email"), 1);
}

#[test]
fn contact_details_as_identifiers_are_refused_for_children() {
    let p = policy(Audience::ChildDirected);
    let mut lint = Lint::default();
    let mut e = event("kid@example.com", json!({}));
    assert_eq!(
        p.apply_event(&mut e, &mut lint, NOW),
        Verdict::Reject("contact_identifier")
    );
    let mut e = event("$device:abc", json!({"$user_id": "+91 98765 43210"}));
    assert_eq!(
        p.apply_event(&mut e, &mut lint, NOW),
        Verdict::Reject("contact_identifier")
    );
    let mut e = event("kid-9", json!({}));
    e.name = "$create_alias".into();
    e.properties
        .insert("alias".into(), json!("kid9@example.com"));
    assert_eq!(
        p.apply_event(&mut e, &mut lint, NOW),
        Verdict::Reject("contact_identifier")
    );
    assert_eq!(lint.count("contact_identifier"), 3);
    // Adults may use their email as an id.
    let mut e = event("mum@example.com", json!({"$age_band": "18+"}));
    assert_eq!(p.apply_event(&mut e, &mut lint, NOW), Verdict::Keep);
}

#[test]
fn tiers_follow_the_shipped_thresholds_and_only_the_band_is_kept() {
    let p = policy(Audience::Mixed);
    let tier = |props: Value| {
        run(&p, props).1["$age_tier"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(
        tier(json!({"$age_band": "6-8", "mp_country_code": "US"})),
        "child_us_u13"
    );
    assert_eq!(
        tier(json!({"$age_band": "13-15", "mp_country_code": "US"})),
        "adult"
    );
    assert_eq!(
        tier(json!({"$age_band": "13-15", "mp_country_code": "US", "$region": "California"})),
        "teen_ca_13_15"
    );
    assert_eq!(
        tier(json!({"$age": 14, "mp_country_code": "FR"})),
        "child_eu_u15"
    );
    assert_eq!(
        tier(json!({"$age": 15, "mp_country_code": "DE"})),
        "child_eu_u16"
    );
    assert_eq!(tier(json!({"$age": 13, "mp_country_code": "DK"})), "adult");
    assert_eq!(
        tier(json!({"$age_band": "9-12", "$jurisdiction": "GB"})),
        "child_gb_u13"
    );
    let (_, props, _) = run(
        &p,
        json!({"$birth_year": 2018, "$birthdate": "2018-04-01", "mp_country_code": "US"}),
    );
    assert_eq!(props["$age_band"], "6-8");
    assert!(!props.contains_key("$birth_year") && !props.contains_key("$birthdate"));
    // A project can override a threshold.
    let mut q = policy(Audience::Mixed);
    q.settings.thresholds.insert("US".into(), 16);
    assert_eq!(
        run(&q, json!({"$age_band": "13-15", "mp_country_code": "US"})).1["$age_tier"],
        "child_us_u13"
    );
}

#[test]
fn detector_actions_per_tier() {
    let mut p = policy(Audience::General);
    let with = |p: &mut Policy, a: DetectorAction| {
        let mut t = TierPolicy::default_for(AgeTier::Adult);
        t.detectors = a;
        p.settings.tiers.insert("adult".into(), t);
    };
    with(&mut p, DetectorAction::Redact);
    let (_, props, _) = run(&p, json!({"msg": "from mum@example.com"}));
    assert_eq!(props["msg"], "from [redacted:email]");
    with(&mut p, DetectorAction::Hash);
    let (_, props, _) = run(&p, json!({"msg": "mum@example.com"}));
    assert!(props["msg"].as_str().unwrap().starts_with("sha256:"));
    with(&mut p, DetectorAction::DropProperty);
    let (_, props, _) = run(&p, json!({"msg": "mum@example.com", "ok": "fine"}));
    assert!(!props.contains_key("msg") && props.contains_key("ok"));
    with(&mut p, DetectorAction::RejectEvent);
    assert_eq!(
        run(&p, json!({"msg": "4111 1111 1111 1111"})).0,
        Verdict::Reject("pii_in_event")
    );
}

#[test]
fn child_profiles_keep_technical_properties_only() {
    let p = policy(Audience::Mixed);
    let mut u = ProfileUpdate {
        project: ProjectId(1),
        target: ProfileTarget::User {
            distinct_id: "kid-1".into(),
        },
        person: PersonKey::NONE,
        operation: "$set".into(),
        value: json!({"$email": "k@example.com", "$name": "Ana", "favourite": "owls", "$os": "iOS", "$birth_year": 2017}),
        time_ms: NOW,
        received_ms: NOW,
        modifiers: Map::new(),
    };
    let mut lint = Lint::default();
    assert_eq!(
        p.apply_profile(&mut u, &mut lint, NOW, None, None),
        Verdict::Keep
    );
    assert_eq!(u.value, json!({"$os": "iOS", "$age_band": "9-12"}));
    assert_eq!(lint.count("technical_profile_only"), 3);
    let adult = policy(Audience::General);
    let mut a = u.clone();
    a.value = json!({"$email": "mum@example.com"});
    assert_eq!(
        adult.apply_profile(&mut a, &mut lint, NOW, None, None),
        Verdict::Keep
    );
    assert_eq!(a.value["$email"], "mum@example.com");
}

#[test]
fn lint_never_holds_a_value() {
    let (_, _, lint) = run(
        &policy(Audience::Mixed),
        json!({"mum@example.com": 1, "secret_note": "+1 415 555 2671"}),
    );
    let text = format!("{:?}", lint.entries().collect::<Vec<_>>());
    assert!(
        !text.contains("mum@example.com") && !text.contains("555"),
        "{text}"
    );
    assert!(text.contains("[email]"), "{text}");
}

proptest::proptest! {
    /// Whatever nesting PII arrives in, nothing a detector matches survives a child-tier event.
    #[test]
    fn no_child_output_contains_detectable_pii(
        depth in 0usize..3, which in 0usize..6, key in "[a-z_]{1,8}", as_name in proptest::bool::ANY,
        allowed in proptest::bool::ANY,
    ) {
        let planted = ["kid@example.org", "+91 98765 43210", "4111 1111 1111 1111", "203.0.113.9",
                       "12.9716, 77.5946", "https://x.example/?token=abc"][which];
        let mut v = if as_name { json!({planted: 1}) } else { json!(planted) };
        for _ in 0..depth {
            v = json!([{"inner": v}]);
        }
        let mut p = policy(Audience::ChildDirected);
        if allowed {
            p.settings.schema.insert(key.clone(), PropertyClass::Behavioral);
        }
        let (verdict, props, _) = run(&p, json!({key.clone(): v}));
        let mut all = Vec::new();
        strings(&Value::Object(props), &mut all);
        for s in all {
            proptest::prop_assert!(detect(&s).is_empty(), "{} survived ({:?})", s, verdict);
        }
    }
}

#[test]
fn suppressed_people_are_dropped_by_any_of_their_ids() {
    let mut p = policy(Audience::General);
    p.suppressed.insert(p.suppression_hash("$device:tab-1"));
    p.suppressed.insert(p.suppression_hash("gone-user"));
    let mut lint = Lint::default();
    let mut e = event("", json!({"$device_id": "tab-1"}));
    assert_eq!(
        p.apply_event(&mut e, &mut lint, NOW),
        Verdict::Reject("suppressed")
    );
    let mut e = event("gone-user", json!({}));
    assert_eq!(
        p.apply_event(&mut e, &mut lint, NOW),
        Verdict::Reject("suppressed")
    );
    let mut e = event("someone-else", json!({}));
    assert_eq!(p.apply_event(&mut e, &mut lint, NOW), Verdict::Keep);
    let mut u = ProfileUpdate {
        project: ProjectId(1),
        target: ProfileTarget::User {
            distinct_id: "gone-user".into(),
        },
        person: PersonKey::NONE,
        operation: "$set".into(),
        value: json!({"a": 1}),
        time_ms: NOW,
        received_ms: NOW,
        modifiers: Map::new(),
    };
    assert_eq!(
        p.apply_profile(&mut u, &mut lint, NOW, None, None),
        Verdict::Reject("suppressed")
    );
    assert_eq!(lint.count("suppressed"), 3);
}

#[test]
fn gpc_and_dnt_follow_the_project_setting() {
    use crate::settings::SignalHandling;
    let mut p = policy(Audience::General);
    let mut lint = Lint::default();
    let gpc = RequestSignals {
        gpc: true,
        dnt: false,
    };
    let dnt = RequestSignals {
        gpc: false,
        dnt: true,
    };
    assert_eq!(
        p.signals(gpc, &mut lint, NOW),
        SignalEffect::OptOutOfSale,
        "GPC default"
    );
    assert_eq!(
        p.signals(dnt, &mut lint, NOW),
        SignalEffect::None,
        "DNT ignored by default"
    );
    assert_eq!(
        p.signals(RequestSignals::default(), &mut lint, NOW),
        SignalEffect::None
    );
    p.settings.gpc = SignalHandling::StopAnalytics;
    p.settings.dnt = SignalHandling::StopAnalytics;
    assert_eq!(p.signals(gpc, &mut lint, NOW), SignalEffect::StopAnalytics);
    assert_eq!(p.signals(dnt, &mut lint, NOW), SignalEffect::StopAnalytics);
    assert_eq!(lint.count("gpc"), 2);
    assert_eq!(lint.count("dnt"), 1);
}

#[test]
fn a_child_stays_a_child_whatever_later_signals_say() {
    let p = policy(Audience::Mixed);
    let mut lint = Lint::default();
    // A first event says 6-8: the child tier is to be remembered.
    let mut e = event("kid-5", json!({"$age_band": "6-8", "level": 1}));
    let (v, remember) = p.apply_event_with(
        &mut e,
        &mut lint,
        NOW,
        &Facts {
            prior: None,
            consent: Some(&|_| None),
            ..Default::default()
        },
    );
    assert_eq!((v, remember), (Verdict::Keep, Some(AgeTier::ChildUsU13)));
    // Later the same person claims 18+: still a child, nothing new to remember.
    let mut e = event("kid-5", json!({"$age_band": "18+", "level": 2}));
    let (v, remember) = p.apply_event_with(
        &mut e,
        &mut lint,
        NOW,
        &Facts {
            prior: Some(AgeTier::ChildUsU13),
            consent: Some(&|_| None),
            ..Default::default()
        },
    );
    assert_eq!((v, remember), (Verdict::Keep, None));
    assert_eq!(e.properties["$age_tier"], "child_us_u13");
    assert!(!e.properties.contains_key("level"), "child policy applied");
    assert_eq!(lint.count("sticky_tier"), 1);
    // Unknown age is treated as a child but not remembered as one.
    let mut e = event("someone", json!({}));
    let (_, remember) = p.apply_event_with(
        &mut e,
        &mut lint,
        NOW,
        &Facts {
            prior: None,
            consent: Some(&|_| None),
            ..Default::default()
        },
    );
    assert_eq!(remember, None);
    assert_eq!(
        Policy::ids_of(&event("d", json!({"$device_id": "x", "$user_id": "u"}))),
        ["$device:x", "d", "u"]
    );
}

#[test]
fn consent_is_required_where_the_settings_say_and_withdrawal_stops_everything() {
    let mut p = policy(Audience::General);
    p.settings
        .consent_required
        .insert("DE".into(), vec!["analytics".into()]);
    let mut lint = Lint::default();
    let de = || event("u", json!({"mp_country_code": "DE"}));
    let none: &dyn Fn(&str) -> Option<bool> = &|_| None;
    let granted: &dyn Fn(&str) -> Option<bool> = &|s| (s == "analytics").then_some(true);
    let withdrawn: &dyn Fn(&str) -> Option<bool> = &|s| (s == "analytics").then_some(false);
    assert_eq!(
        p.apply_event_with(
            &mut de(),
            &mut lint,
            NOW,
            &Facts {
                prior: None,
                consent: Some(none),
                ..Default::default()
            }
        )
        .0,
        Verdict::Reject("consent_missing")
    );
    assert_eq!(
        p.apply_event_with(
            &mut de(),
            &mut lint,
            NOW,
            &Facts {
                prior: None,
                consent: Some(granted),
                ..Default::default()
            }
        )
        .0,
        Verdict::Keep
    );
    let mut us = event("u", json!({"mp_country_code": "US"}));
    assert_eq!(
        p.apply_event_with(
            &mut us,
            &mut lint,
            NOW,
            &Facts {
                prior: None,
                consent: Some(none),
                ..Default::default()
            }
        )
        .0,
        Verdict::Keep,
        "opt-out regime"
    );
    let mut us = event("u", json!({"mp_country_code": "US"}));
    assert_eq!(
        p.apply_event_with(
            &mut us,
            &mut lint,
            NOW,
            &Facts {
                prior: None,
                consent: Some(withdrawn),
                ..Default::default()
            }
        )
        .0,
        Verdict::Reject("consent_withdrawn")
    );
    assert_eq!(lint.count("consent_missing:analytics"), 1);
    assert_eq!(lint.count("consent_withdrawn"), 1);
}
