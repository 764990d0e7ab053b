//! The privacy policy over arbitrary event properties: never panics, and for a child (the
//! strictest tier of a child-directed project) no string in the output — name or value, at
//! any depth — is something a PII detector recognizes; an aggregate-only Indian minor's output
//! carries no identifier property.
#![no_main]

use canopy_policy::{Audience, Facts, Lint, Policy, PrivacySettings, Verdict, detect};
use canopy_types::{Event, PersonKey, ProjectId, is_identifier_property};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

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

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Object(props)) = serde_json::from_slice::<Value>(data) else { return };
    let policy = Policy {
        settings: PrivacySettings { audience: Audience::ChildDirected, ..Default::default() },
        hash_salt: [3; 32],
        suppressed: Default::default(),
    };
    let mut e = Event {
        project: ProjectId(1), name: "Play".into(), time_ms: 1_795_000_000_000,
        distinct_id: "kid".into(), person: PersonKey::NONE, insert_id: String::new(),
        received_ms: 1_795_000_000_000, properties: props, ip: None,
    };
    let salt = |_t: i64| Some([9u8; 32]);
    let facts = Facts { daily_salt: Some(&salt), ..Default::default() };
    let (v, _) = policy.apply_event_with(&mut e, &mut Lint::default(), 1_795_000_000_000, &facts);
    if v != Verdict::Keep {
        return;
    }
    let mut all = Vec::new();
    strings(&Value::Object(e.properties.clone()), &mut all);
    for s in &all {
        assert!(detect(s).is_empty(), "a detectable string survived the child policy");
    }
    if e.properties.get("$age_tier").and_then(Value::as_str) == Some("minor_in_u18") {
        assert!(e.distinct_id.starts_with(canopy_policy::PSEUDONYM_PREFIX));
        assert!(e.properties.keys().all(|k| !is_identifier_property(&e.name, k)));
    }
});
