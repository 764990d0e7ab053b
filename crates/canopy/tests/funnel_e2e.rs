//! Funnels and person activity end to end against the real binary: events imported for several
//! people (one of them across an anonymous device and a logged-in user), the report through
//! `POST /api/v1/query/funnel`, checked against the hand-computed answer of
//! `docs/query-semantics.md`'s rules; the person's events through any of their ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, create_project, device_ids, import_events, numbered_events, user_ids};
use serde_json::{Value, json};

const MIN: i64 = 60_000;

#[test]
fn funnel_and_activity_across_merged_identities_windows_filters_and_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let p = create_project(&data, "funnels");
    let server = Server::start(&data);
    let u = server.url.clone();
    let t0: i64 = 1_790_000_000_000;
    let mut ev = numbered_events();
    let (dev, user) = (device_ids, user_ids);
    let events = vec![
        // A: anonymous Open, logs in at Browse, Buys as the user: one person, converts.
        ev("Open", t0, dev("d-a"), json!({"campaign": "tv"})),
        ev("Browse", t0 + MIN, user("d-a", "u-a"), json!({})),
        ev(
            "Buy",
            t0 + 5 * MIN,
            json!({"distinct_id": "u-a", "$user_id": "u-a"}),
            json!({"price": 9}),
        ),
        // B: Buys two hours later: outside the 1-hour window.
        ev("Open", t0, dev("d-b"), json!({"campaign": "tv"})),
        ev("Browse", t0 + 2 * MIN, dev("d-b"), json!({})),
        ev("Buy", t0 + 120 * MIN, dev("d-b"), json!({"price": 9})),
        // C: out of order.
        ev("Browse", t0, dev("d-c"), json!({})),
        ev("Open", t0 + MIN, dev("d-c"), json!({})),
        // E: the purchase fails the step's filter.
        ev("Open", t0, dev("d-e"), json!({"campaign": "web"})),
        ev("Browse", t0 + MIN, dev("d-e"), json!({})),
        ev("Buy", t0 + 2 * MIN, dev("d-e"), json!({"price": 3})),
        // F: enters after the range: not counted.
        ev("Open", t0 + 24 * 60 * MIN, dev("d-f"), json!({})),
        ev("Browse", t0 + 24 * 60 * MIN + 1, dev("d-f"), json!({})),
    ];
    let c = reqwest::blocking::Client::new();
    import_events(&u, &p.secret, &events);
    let query = |body: Value| -> reqwest::blocking::Response {
        c.post(format!("{u}/api/v1/query/funnel"))
            .basic_auth(&p.secret, Some(""))
            .json(&body)
            .send()
            .unwrap()
    };
    let body = json!({
        "from_ms": t0 - MIN, "to_ms": t0 + 12 * 60 * MIN, "window_ms": 60 * MIN,
        "steps": [{"event": "Open"}, {"event": "Browse"},
                  {"event": "Buy", "where": "properties[\"price\"] > 5"}],
    });
    let r = query(body.clone());
    assert!(r.status().is_success());
    let report: Value = r.json().unwrap();
    let counts: Vec<u64> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [4, 3, 1], "{report}");
    assert_eq!(
        report["steps"][2]["avg_time_from_start_ms"],
        json!(5.0 * MIN as f64)
    );
    assert_eq!(report["steps"][1]["step_conv_ratio"], json!(0.75));

    // Time to convert, conversion by day of entry, and a breakdown by the entering event's
    // property (top 1 + the rest).
    assert_eq!(report["time_to_convert"]["median_ms"], json!(5 * MIN));
    assert_eq!(
        report["time_to_convert"]["counts"][1],
        json!(1),
        "(1, 5] minutes"
    );
    let mut split = body.clone();
    split["breakdown"] = json!({"property": "campaign", "limit": 1});
    split["unit"] = json!("day");
    let r: Value = query(split).json().unwrap();
    assert_eq!(
        r["breakdown"],
        json!([{"segment": "tv", "counts": [2, 2, 1]}, {"segment": "$other", "counts": [2, 1, 0]}]),
        "{r}"
    );
    assert_eq!(
        r["over_time"]["buckets"],
        json!(["2026-09-21", "2026-09-22"])
    );
    assert_eq!(r["over_time"]["entered"], json!([4, 0]));
    assert_eq!(r["over_time"]["completed"], json!([1, 0]));
    let mut bad = body.clone();
    bad["unit"] = json!("hour");
    assert_eq!(query(bad).status(), 400);

    // Client mistakes are 400s with a reason.
    let mut bad = body.clone();
    bad["steps"] = json!([{"event": "Open"}]);
    let r = query(bad);
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("2 to 20 steps"));
    let mut bad = body.clone();
    bad["steps"][0]["where"] = json!("properties[");
    assert_eq!(query(bad).status(), 400);
    // A refusal names the field, never what was sent in it (a filter value may be an email).
    let email = "kid.parent@example.org";
    for (field, value) in [
        ("order", json!(email)),
        ("window_ms", json!(email)),
        (
            "steps",
            json!([{"event": email, "where": format!("properties[\"e\"] == {email}")}, {"event": "Buy"}]),
        ),
        ("breakdown", json!({"property": email, "cohort": 7})),
    ] {
        let mut bad = body.clone();
        bad[field] = value;
        let r = query(bad);
        assert_eq!(r.status(), 400, "{field}");
        let text = r.text().unwrap();
        assert!(!text.contains("kid.parent"), "{field}: {text}");
        assert!(
            text.contains(field) || field == "breakdown",
            "{field}: {text}"
        );
    }
    let r = c
        .post(format!("{u}/api/v1/query/insights"))
        .basic_auth(&p.secret, Some(""))
        .json(
            &json!({"from_ms": 0, "to_ms": 1, "events": [{"event": "Open"}],
            "filters": [{"property": "email", "op": "date_after", "value": email}]}),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().unwrap();
    assert!(
        text.contains("filters[0]") && !text.contains("kid.parent"),
        "{text}"
    );

    // Person activity: any id finds the whole person, oldest first, under the canonical id.
    let get = |path: &str| -> reqwest::blocking::Response {
        c.get(format!("{u}{path}"))
            .basic_auth(&p.secret, Some(""))
            .send()
            .unwrap()
    };
    let a: Value = get("/api/v1/persons/activity?distinct_id=%24device%3Ad-a&from_date=2026-09-20&to_date=2026-09-23")
        .json()
        .unwrap();
    let names: Vec<&str> = a["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Open", "Browse", "Buy"], "{a}");
    assert_eq!(a["distinct_id"], "u-a");
    assert_eq!(a["events"][0]["properties"]["distinct_id"], "u-a");
    // Mixpanel's activity stream, several people at once.
    let s: Value = get("/api/query/stream/query?distinct_ids=%5B%22u-a%22%2C%22%24device%3Ad-b%22%2C%22nobody%22%5D&from_date=2026-09-20&to_date=2026-09-23")
        .json()
        .unwrap();
    assert_eq!(s["status"], "ok");
    assert_eq!(s["results"]["events"].as_array().unwrap().len(), 6);
    assert_eq!(
        get("/api/v1/persons/activity?distinct_id=nobody&from_date=2026-09-20&to_date=2026-09-23")
            .status(),
        404
    );
    assert_eq!(
        get("/api/v1/persons/activity?distinct_id=u-a&from_date=2026-09-23&to_date=2026-09-20")
            .status(),
        400
    );
    server.stop();
}
