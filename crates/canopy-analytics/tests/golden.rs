//! Golden files for the documented edge cases of funnels and retention
//! (`docs/query-semantics.md`): each `tests/golden/*.json` names its rule, gives one person's
//! events as the operators see them, and the expected result. Adding a case is adding a file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_analytics::{
    FunnelSpec, Kind, Order, RetentionEvent, RetentionSpec, RetentionTable, StepEvent,
};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Case {
    rule: String,
    funnel: Option<FunnelCase>,
    retention: Option<RetentionCase>,
    events: Vec<Ev>,
    expected: serde_json::Value,
}

#[derive(Deserialize)]
struct FunnelCase {
    steps: usize,
    window_ms: i64,
    #[serde(default)]
    order: Option<String>,
    #[serde(default)]
    hold_constant: bool,
}

#[derive(Deserialize)]
struct RetentionCase {
    kind: String,
    unit_ms: i64,
    brackets: usize,
    #[serde(default)]
    unbounded: bool,
    from_ms: i64,
    to_ms: i64,
}

#[derive(Deserialize)]
struct Ev {
    t: i64,
    #[serde(default)]
    steps: u32,
    #[serde(default)]
    excludes: u32,
    #[serde(default)]
    constant: Option<String>,
    #[serde(default)]
    birth: bool,
    #[serde(default)]
    returned: bool,
}

fn run(case: &Case) -> serde_json::Value {
    if let Some(f) = &case.funnel {
        let spec = FunnelSpec {
            steps: f.steps,
            window_ms: f.window_ms,
            order: if f.order.as_deref() == Some("any") {
                Order::Any
            } else {
                Order::Specific
            },
            hold_constant: f.hold_constant,
        };
        let events: Vec<StepEvent> = case
            .events
            .iter()
            .map(|e| StepEvent {
                time_ms: e.t,
                steps: e.steps,
                excludes: e.excludes,
                constant: e.constant.clone(),
            })
            .collect();
        let c = spec.evaluate(&events);
        return serde_json::json!({"level": c.level, "times": c.times});
    }
    let r = case
        .retention
        .as_ref()
        .expect("a funnel or a retention case");
    let spec = RetentionSpec {
        kind: if r.kind == "recurring" {
            Kind::Recurring
        } else {
            Kind::FirstTime
        },
        unit_ms: r.unit_ms,
        brackets: r.brackets,
        unbounded: r.unbounded,
        from_ms: r.from_ms,
        to_ms: r.to_ms,
    };
    let events: Vec<RetentionEvent> = case
        .events
        .iter()
        .map(|e| RetentionEvent {
            time_ms: e.t,
            birth: e.birth,
            returned: e.returned,
        })
        .collect();
    let mut table = RetentionTable::default();
    let unit = r.unit_ms;
    spec.add_person(&events, &|t| t.div_euclid(unit), &mut table);
    let cohorts: BTreeMap<String, serde_json::Value> = table
        .cohorts
        .into_iter()
        .map(|(k, (people, counts))| (k.to_string(), serde_json::json!([people, counts])))
        .collect();
    serde_json::to_value(cohorts).unwrap()
}

#[test]
fn every_golden_case_holds() {
    let dir = canopy_types::crate_dir!().join("tests/golden");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "golden cases missing from {}",
        dir.display()
    );
    for path in files {
        let case: Case = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            run(&case),
            case.expected,
            "{}: {}",
            path.file_name().unwrap().to_string_lossy(),
            case.rule
        );
    }
}
