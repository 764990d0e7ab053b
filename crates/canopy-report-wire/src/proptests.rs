//! Property tests: definitions from arbitrary client bytes never panic and are refused with a
//! reason; what passes `check` has no client error left for the engine to find; and funnel
//! definitions are accepted exactly when a model of the rules says so.

use crate::cohort::{CohortDefinition, NewCohort};
use crate::conformance::assert_consistent;
use crate::{Definition, FlowsQuery, FunnelQuery, InsightsQuery, RetentionQuery, WireError, parse};

/// Every refusal of `body`, as each kind of definition.
fn refusals(body: &[u8]) -> Vec<WireError> {
    fn refused<D: Definition>(body: &[u8]) -> Option<WireError> {
        parse::<D>(body).err()
    }
    let mut out: Vec<WireError> = [
        refused::<FunnelQuery>(body),
        refused::<RetentionQuery>(body),
        refused::<FlowsQuery>(body),
        refused::<InsightsQuery>(body),
        refused::<NewCohort>(body),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Ok(d) = serde_json::from_slice::<CohortDefinition>(body) {
        out.extend(d.validate().err());
    }
    out
}
use proptest::prelude::*;

proptest! {
    #[test]
    fn definitions_from_arbitrary_bytes_are_parsed_or_refused_with_a_reason(
        body in any::<String>(),
        json in arbitrary_json(),
    ) {
        assert_consistent(body.as_bytes());
        assert_consistent(json.as_bytes());
    }

    #[test]
    fn refusals_never_repeat_what_the_client_sent(
        s in secret(),
        pick in 0usize..16,
        n in prop::sample::select(vec![-1i64, 0, 1, 3, 5000]),
    ) {
        let body = with_secret(&s, pick, n);
        for e in refusals(body.as_bytes()) {
            let message = e.to_string();
            prop_assert!(!message.contains(&s), "{} → {}", body, message);
        }
    }

    #[test]
    fn funnels_are_accepted_exactly_when_the_rules_allow(
        steps in 0usize..24,
        window_ms in prop::sample::select(vec![-1i64, 0, 1, 86_400_000, 366 * 86_400_000, 366 * 86_400_000 + 1]),
        span in -2i64..3,
        order in prop::sample::select(vec!["specific", "any", "Any", ""]),
        after_step in prop::option::of(0usize..24),
        bad_where in any::<bool>(),
        breakdown in prop::sample::select(vec!["", r#","breakdown":{"property":"p"}"#, r#","breakdown":{"cohort":3}"#, r#","breakdown":{"property":"p","cohort":3}"#, r#","breakdown":{}"#]),
        unit in prop::sample::select(vec!["", r#","unit":"day""#, r#","unit":"month""#, r#","unit":"hour""#, r#","unit":"decade""#]),
    ) {
        let step_list: Vec<String> = (0..steps)
            .map(|i| if i == 0 && bad_where {
                r#"{"event":"e0","where":"properties[\"x\" =="}"#.to_string()
            } else {
                format!(r#"{{"event":"e{i}"}}"#)
            })
            .collect();
        let exclusions = after_step
            .map(|a| format!(r#","exclusions":[{{"event":"x","after_step":{a}}}]"#))
            .unwrap_or_default();
        let body = format!(
            r#"{{"from_ms":1000,"to_ms":{},"window_ms":{window_ms},"order":{order:?},"steps":[{}]{exclusions}{breakdown}{unit}}}"#,
            1000 + span,
            step_list.join(","),
        );
        let expected = (2..=20).contains(&steps)
            && (1..=366 * 86_400_000).contains(&window_ms)
            && span > 0
            && (order == "specific" || order == "any")
            && after_step.is_none_or(|a| a >= 1 && a < steps)
            && !bad_where
            && !breakdown.contains("{}")
            && !(breakdown.contains("property") && breakdown.contains("cohort"))
            && !unit.contains("hour")
            && !unit.contains("decade");
        let got = parse::<FunnelQuery>(body.as_bytes());
        prop_assert_eq!(got.is_ok(), expected, "{} → {:?}", body, got.err());
    }
}

/// A value a client could send that must never come back in a message: `QZ` and six capitals
/// (no field name, keyword or fixed text has two capitals in a row).
fn secret() -> impl Strategy<Value = String> {
    "QZ[A-Z]{6}"
}

/// Definitions of every kind with `s` wherever the client's text goes: event and property
/// names, filter values, `where` words, enumerations, cohort names.
fn with_secret(s: &str, pick: usize, n: i64) -> String {
    let shapes = [
        format!(
            r#"{{"from_ms":0,"to_ms":10,"window_ms":5,"steps":[{{"event":"{s}","where":"{s} == 1"}},{{"event":"b"}}]}}"#
        ),
        format!(
            r#"{{"from_ms":0,"to_ms":10,"window_ms":5,"order":"{s}","steps":[{{"event":"a"}},{{"event":"b"}}]}}"#
        ),
        format!(
            r#"{{"from_ms":0,"to_ms":10,"window_ms":5,"steps":[{{"event":"a"}},{{"event":"b"}}],"exclusions":[{{"event":"{s}","after_step":{n}}}],"unit":"{s}"}}"#
        ),
        format!(
            r#"{{"from_ms":0,"to_ms":10,"events":[{{"event":"{s}"}}],"filters":[{{"property":"{s}","op":"gt","value":"{s}"}}]}}"#
        ),
        format!(
            r#"{{"from_ms":0,"to_ms":10,"events":[{{"event":"a"}}],"filters":[{{"property":"p","op":"date_after","value":"{s}"}}]}}"#
        ),
        format!(
            r#"{{"from_ms":0,"to_ms":10,"events":[{{"event":"a"}}],"filters":[{{"property":"p","op":"{s}","value":1}}]}}"#
        ),
        format!(
            r#"{{"from_ms":0,"to_ms":10,"events":[{{"event":"a"}}],"measure":{{"type":"{s}","stat":"{s}"}},"where":"properties[\"{s}\"] == {s}"}}"#
        ),
        format!(
            r#"{{"from_ms":0,"to_ms":10,"events":[{{"event":"a"}}],"measure":{{"type":"per_person","stat":"p{s}"}},"unit":"{s}"}}"#
        ),
        format!(
            r#"{{"from_ms":"{s}","to_ms":{n},"born":{{"event":"{s}","where":"({s}"}},"unit":"{s}","brackets":{n},"kind":"{s}"}}"#
        ),
        format!(
            r#"{{"from_ms":0,"to_ms":10,"anchor":"{s}","events":["{s}"],"steps":{n},"direction":"{s}"}}"#
        ),
        format!(
            r#"{{"name":"{s}","definition":{{"kind":"{s}","event":"{s}","window_days":{n}}}}}"#
        ),
        format!(
            r#"{{"name":"x","definition":{{"kind":"behavioral","event":"{s}","window_days":{n},"min_count":"{s}"}}}}"#
        ),
        format!(
            r#"{{"name":"x","definition":{{"kind":"profile","filters":[{{"property":"{s}","op":"in","value":[{{"{s}":1}}]}}]}}}}"#
        ),
        format!(r#"{{"{s}":"{s}","steps":"{s}","events":"{s}","born":"{s}"}}"#),
        format!(r#"{{"steps":[{{"event":"a","{s}":[1,"where":5}}]}}"#),
        format!(r#"{{"steps":[{{"event":"a","{s}":{{"{s}":1}},"where":5}}]}}"#),
    ];
    shapes[pick % shapes.len()].clone()
}

/// JSON objects shaped like report definitions, with random values where fields go.
fn arbitrary_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        (0i64..30).prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| serde_json::to_string(&f).unwrap_or_default()),
        "[a-z_]{0,12}".prop_map(|s| format!("{s:?}")),
        prop::sample::select(vec![
            r#""day""#,
            r#""hour""#,
            r#""all""#,
            r#""any""#,
            r#""before""#,
            r#""recurring""#,
            r#""p99""#,
            r#""p101""#,
            r#""per_person""#,
            r#""property""#,
            r#""2026-01-01""#,
            r#"{"event":"a"}"#,
            r#"{"event":"a","where":"properties[\"x\"] == 1"}"#,
            r#"{"event":"a","where":"(("}"#,
            r#"[{"event":"a"},{"event":"b"}]"#,
            r#"[{"property":"p","op":"between","value":[1,2]}]"#,
            r#"[{"property":"p","op":"date_between","value":["2026-01-01"]}]"#,
            r#"{"kind":"behavioral","event":"a","window_days":3}"#,
            r#"{"kind":"profile","filters":[{"property":"p","op":"set"}]}"#,
            r#"{"id":1}"#,
            r#"{"property":"p"}"#,
            r#"{"cohort":2,"limit":0}"#,
            r#"[{"event":"x","after_step":1}]"#,
        ])
        .prop_map(str::to_string),
        Just("[]".to_string()),
        Just("{}".to_string()),
    ];
    let key = prop::sample::select(vec![
        "from_ms",
        "to_ms",
        "events",
        "steps",
        "window_ms",
        "measure",
        "measures",
        "unit",
        "filters",
        "breakdown",
        "cohort",
        "kind",
        "event",
        "min_count",
        "window_days",
        "brackets",
        "born",
        "returned",
        "limit",
        "where",
        "order",
        "exclusions",
        "op",
        "value",
        "property",
        "anchor",
        "direction",
        "name",
        "definition",
        "version",
        "hold_constant",
    ]);
    prop::collection::vec((key, leaf), 0..10).prop_map(|kv| {
        let body: Vec<String> = kv.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
        format!("{{{}}}", body.join(", "))
    })
}
