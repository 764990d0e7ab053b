//! Retention and flows end to end against the real binary: cohorts by day of first birth in
//! the project's time zone, brackets measured from the birth time, bounded and unbounded; flow
//! paths after an anchor with repeats collapsed and early ends, as Sankey links.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, create_project, import_events};
use serde_json::{Value, json};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

#[test]
fn retention_cohorts_and_brackets() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let p = create_project(&data, "retention");
    let server = Server::start(&data);
    let u = server.url.clone();
    let base = 1_790_000_000_000 - 1_790_000_000_000 % DAY + 10 * HOUR;
    let mut n = 0;
    let mut ev = |name: &str, who: &str, t: i64| {
        n += 1;
        json!({"event": name, "properties": {"distinct_id": who, "time": t,
               "$insert_id": format!("r{n}")}})
    };
    let events = vec![
        ev("Signup", "p1", base),
        ev("Play", "p1", base + HOUR),
        ev("Play", "p1", base + 26 * HOUR),
        ev("Signup", "p2", base + 2 * HOUR),
        ev("Play", "p2", base + 52 * HOUR),
        ev("Signup", "p3", base + DAY),
    ];
    let c = reqwest::blocking::Client::new();
    import_events(&u, &p.secret, &events);
    let query = |unbounded: bool| -> Value {
        let r = c
            .post(format!("{u}/api/v1/query/retention"))
            .basic_auth(&p.secret, Some(""))
            .json(
                &json!({"from_ms": base - 10 * HOUR, "to_ms": base + 3 * DAY,
                          "born": {"event": "Signup"}, "returned": {"event": "Play"},
                          "unit": "day", "brackets": 3, "unbounded": unbounded}),
            )
            .send()
            .unwrap();
        assert!(r.status().is_success());
        r.json().unwrap()
    };
    let bounded = query(false);
    let cohorts = bounded["cohorts"].as_array().unwrap();
    assert_eq!(cohorts.len(), 2, "{bounded}");
    assert_eq!(
        (cohorts[0]["people"].as_u64(), &cohorts[0]["counts"]),
        (Some(2), &json!([1, 1, 1]))
    );
    assert_eq!(
        (cohorts[1]["people"].as_u64(), &cohorts[1]["counts"]),
        (Some(1), &json!([0, 0, 0]))
    );
    let unbounded = query(true);
    assert_eq!(unbounded["cohorts"][0]["counts"], json!([2, 2, 1]));
    // The same through Mixpanel's retention API (whole UTC days).
    let day = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string()
    };
    let mp: Value = c
        .get(format!(
            "{u}/api/query/retention?from_date={}&to_date={}&born_event=Signup&event=Play&unit=day&interval_count=3",
            day(base),
            day(base + 2 * DAY)
        ))
        .basic_auth(&p.secret, Some(""))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        mp[day(base)],
        json!({"counts": [1, 1, 1], "first": 2}),
        "{mp}"
    );
    assert_eq!(mp[day(base + DAY)]["first"], 1);
    // A client mistake is a 400 with the reason.
    let r = c
        .post(format!("{u}/api/v1/query/retention"))
        .basic_auth(&p.secret, Some(""))
        .json(&json!({"from_ms": 0, "to_ms": 1, "born": {"event": "Signup"}, "unit": "year", "brackets": 3}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("unit must be"));
    server.stop();
}

#[test]
fn flows_after_an_anchor_as_sankey_links() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let p = create_project(&data, "flows");
    let server = Server::start(&data);
    let u = server.url.clone();
    let t0: i64 = 1_790_000_000_000;
    let mut n = 0;
    let mut ev = |name: &str, who: &str, t: i64| {
        n += 1;
        json!({"event": name, "properties": {"distinct_id": who, "time": t0 + t * 1000,
               "$insert_id": format!("f{n}")}})
    };
    let events = vec![
        ev("Home", "a", 0),
        ev("Play", "a", 1),
        ev("Play", "a", 2),
        ev("Quit", "a", 3),
        ev("Home", "b", 0),
        ev("Play", "b", 1),
        ev("Home", "c", 0),
        ev("Shop", "c", 1),
    ];
    let c = reqwest::blocking::Client::new();
    import_events(&u, &p.secret, &events);
    let r = c
        .post(format!("{u}/api/v1/query/flows"))
        .basic_auth(&p.secret, Some(""))
        .json(
            &json!({"from_ms": t0, "to_ms": t0 + 60_000, "anchor": "Home",
                      "events": ["Play", "Quit", "Shop"], "steps": 2}),
        )
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let report: Value = r.json().unwrap();
    assert_eq!(report["paths"], 3);
    let links: Vec<(u64, String, String, u64)> = report["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["step"].as_u64().unwrap(),
                l["from"].as_str().unwrap().to_string(),
                l["to"].as_str().unwrap().to_string(),
                l["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(u64, String, String, u64)> = [
        (1, "Home", "Play", 2),
        (1, "Home", "Shop", 1),
        (2, "Play", "$end", 1),
        (2, "Play", "Quit", 1),
        (2, "Shop", "$end", 1),
    ]
    .iter()
    .map(|(s, a, b, c)| (*s, a.to_string(), b.to_string(), *c))
    .collect();
    assert_eq!(links, expected);
    server.stop();
}
