//! Insights, cohorts and Mixpanel's segmentation / events / engage / cohorts endpoints end to
//! end against the real binary, in a project whose time zone is Asia/Kolkata (so local days
//! differ from UTC days), with one person across an anonymous device and a login.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    Server, create_project, device_ids, import_events, numbered_events, put_settings, user_ids,
};
use serde_json::{Value, json};

/// 2026-11-20T18:00:00Z = 23:30 on the 20th in India.
const T: i64 = 1_795_197_600_000;
const HOUR: i64 = 3_600_000;

#[test]
fn insights_cohorts_and_the_mixpanel_query_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let p = create_project(&data, "insights");
    let server = Server::start(&data);
    let u = server.url.clone();
    let r = put_settings(&u, &p.secret, |s| s["timezone"] = json!("Asia/Kolkata"));
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    let mut ev = numbered_events();
    let (dev, user) = (device_ids, user_ids);
    let events = vec![
        // The 20th (IST): a anonymous on iOS, b on Android.
        ev(
            "Buy",
            T,
            dev("d-a"),
            json!({"platform": "iOS", "price": 10}),
        ),
        ev(
            "Buy",
            T + 10,
            dev("d-b"),
            json!({"platform": "Android", "price": 4}),
        ),
        // The 21st (IST; still the 20th in UTC): a logs in and buys twice more.
        ev(
            "Buy",
            T + HOUR,
            user("d-a", "u-a"),
            json!({"platform": "iOS", "price": 20}),
        ),
        ev(
            "Buy",
            T + HOUR + 1,
            user("d-a", "u-a"),
            json!({"platform": "iOS", "price": 30}),
        ),
        ev("Open", T + HOUR, dev("d-c"), json!({"platform": "Web"})),
    ];
    import_events(&u, &p.secret, &events);
    let c = reqwest::blocking::Client::new();
    let r = c
        .post(format!("{u}/engage"))
        .json(&json!([{"$token": p.token, "$distinct_id": "u-a", "$set": {"plan": "gold"}},
                       {"$token": p.token, "$distinct_id": "$device:d-b", "$set": {"plan": "free"}}]))
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "1");
    let post = |path: &str, body: Value| -> (u16, Value) {
        let r = c
            .post(format!("{u}{path}"))
            .basic_auth(&p.secret, Some(""))
            .json(&body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    };
    let get = |path: &str| -> (u16, Value) {
        let r = c
            .get(format!("{u}{path}"))
            .basic_auth(&p.secret, Some(""))
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    };
    let range = json!({"from_ms": T - 20 * HOUR, "to_ms": T + 20 * HOUR});
    let insights = |extra: Value| {
        let mut body = range.clone();
        body["events"] = json!([{"event": "Buy"}]);
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        post("/api/v1/query/insights", body)
    };

    // Local days: 23:30 and 00:30 IST are different days, though the same UTC day.
    let (s, r) = insights(json!({"unit": "day"}));
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["buckets"], json!(["2026-11-20", "2026-11-21"]));
    assert_eq!(r["series"][0]["values"], json!([2, 2]));
    assert_eq!(r["series"][0]["total"], json!(4));
    let (_, r) = insights(json!({"unit": "day", "measure": {"type": "unique"}}));
    assert_eq!(r["series"][0]["values"], json!([2, 1]));
    assert_eq!(
        r["series"][0]["total"],
        json!(2),
        "d-a and u-a are one person"
    );
    let (_, r) = insights(
        json!({"unit": "all", "measure": {"type": "property", "property": "price", "stat": "p50"}}),
    );
    assert_eq!(r["series"][0]["total"], json!(15));
    let (_, r) = insights(json!({"unit": "all", "measure": {"type": "per_person", "stat": "max"}}));
    assert_eq!(r["series"][0]["total"], json!(3));
    // Several metrics in one report: each series names its measure.
    let (_, r) =
        insights(json!({"unit": "day", "measures": [{"type": "total"}, {"type": "unique"}]}));
    let got: Vec<(Value, Value)> = r["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["measure"].clone(), s["values"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![(json!(0), json!([2, 2])), (json!(1), json!([2, 1]))]
    );

    // Breakdown: top 1 platform plus the rest.
    let (_, r) =
        insights(json!({"unit": "all", "breakdown": {"property": "platform", "limit": 1}}));
    let segs: Vec<(Value, Value)> = r["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["segment"].clone(), s["total"].clone()))
        .collect();
    assert_eq!(
        segs,
        vec![(json!("iOS"), json!(3)), (json!("$other"), json!(1))]
    );
    // A profile property filters events sent before the login, too.
    let (_, r) = insights(json!({"unit": "all",
        "filters": [{"property": "plan", "source": "user", "op": "equals", "value": "gold"}]}));
    assert_eq!(r["series"][0]["total"], json!(3));
    let (_, r) = insights(json!({"unit": "day", "compare_previous": true}));
    assert_eq!(
        r["previous"]["series"],
        json!([]),
        "nothing happened the period before"
    );
    assert_eq!(r["previous"]["to_ms"], json!(T - 20 * HOUR));

    // Clear errors for bad requests.
    for bad in [
        json!({"measure": {"type": "weird"}}),
        json!({"unit": "fortnight"}),
        json!({"filters": [{"property": "price", "op": "between", "value": 3}]}),
        json!({"cohort": {"id": 999}}),
        json!({"where": "properties[\"a\" =="}),
    ] {
        let (s, r) = insights(bad.clone());
        assert_eq!(s, 400, "{bad} → {r}");
        assert!(r["error"].as_str().is_some_and(|e| !e.is_empty()), "{r}");
    }

    // Cohorts: repeat buyers (u-a), and gold profiles.
    let (s, made) = post(
        "/api/v1/cohorts",
        json!({"name": "Repeat buyers", "definition":
            {"kind": "behavioral", "event": "Buy", "min_count": 2, "window_days": 3650}}),
    );
    assert_eq!(s, 201, "{made}");
    assert_eq!(made["count"], json!(1));
    let id = made["id"].as_u64().unwrap();
    let (s, _) = post(
        "/api/v1/cohorts",
        json!({"name": "x", "definition": {"kind": "behavioral", "event": "Buy", "window_days": 0}}),
    );
    assert_eq!(s, 400);
    let (_, r) = insights(json!({"unit": "all", "cohort": {"id": id, "negate": true}}));
    assert_eq!(r["series"][0]["total"], json!(1), "b alone");
    let (_, r) = insights(
        json!({"unit": "all", "measure": {"type": "unique"}, "breakdown": {"cohort": id}}),
    );
    let segs: Vec<Value> = r["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["segment"].clone())
        .collect();
    assert_eq!(
        segs,
        vec![json!("Repeat buyers"), json!("not in Repeat buyers")]
    );
    // "Did not do": everyone the project knows but the repeat buyers — on events, the same
    // people as the negated cohort.
    let (s, not) = post(
        "/api/v1/cohorts",
        json!({"name": "Not repeat buyers", "definition": {"kind": "behavioral", "event": "Buy",
            "min_count": 2, "window_days": 3650, "did_not": true}}),
    );
    assert_eq!(s, 201, "{not}");
    assert!(not["count"].as_u64().unwrap() >= 1, "{not}");
    let (_, r) = insights(json!({"unit": "all", "cohort": {"id": not["id"]}}));
    assert_eq!(r["series"][0]["total"], json!(1), "b alone, as negated");
    // The same cohort restricts funnels, retention and flows.
    let funnel = |cohort: Value| {
        let (s, r) = post(
            "/api/v1/query/funnel",
            json!({"from_ms": T - 20 * HOUR, "to_ms": T + 20 * HOUR,
            "window_ms": 86_400_000, "steps": [{"event": "Buy"}, {"event": "Buy"}], "cohort": cohort}),
        );
        assert_eq!(s, 200, "{r}");
        r["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["count"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(funnel(json!({"id": id})), vec![json!(1), json!(1)]);
    // ...and splits a funnel: members and everyone else, by the person, not the event.
    let (s, r) = post(
        "/api/v1/query/funnel",
        json!({"from_ms": T - 20 * HOUR, "to_ms": T + 20 * HOUR, "window_ms": 86_400_000,
        "steps": [{"event": "Buy"}, {"event": "Buy"}], "breakdown": {"cohort": id}}),
    );
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        r["breakdown"],
        json!([{"segment": "Repeat buyers", "counts": [1, 1]},
               {"segment": "not in Repeat buyers", "counts": [1, 0]}])
    );
    for (bad, why) in [
        (json!({"cohort": 4242}), "unknown cohort"),
        (
            json!({"cohort": id, "property": "plan"}),
            "property and cohort",
        ),
        (json!({}), "neither"),
    ] {
        let (s, r) = post(
            "/api/v1/query/funnel",
            json!({"from_ms": T - 20 * HOUR, "to_ms": T + 20 * HOUR, "window_ms": 86_400_000,
            "steps": [{"event": "Buy"}, {"event": "Buy"}], "breakdown": bad}),
        );
        assert_eq!(s, 400, "{why}: {r}");
    }
    assert_eq!(
        funnel(json!({"id": id, "negate": true})),
        vec![json!(1), json!(0)]
    );
    let (s, r) = post(
        "/api/v1/query/retention",
        json!({"from_ms": T - 20 * HOUR, "to_ms": T + 20 * HOUR,
        "born": {"event": "Buy"}, "unit": "day", "brackets": 1, "cohort": {"id": id}}),
    );
    assert_eq!(s, 200, "{r}");
    let people: u64 = r["cohorts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["people"].as_u64().unwrap())
        .sum();
    assert_eq!(people, 1);
    let (s, r) = post(
        "/api/v1/query/flows",
        json!({"from_ms": T - 20 * HOUR, "to_ms": T + 20 * HOUR,
        "anchor": "Buy", "events": ["Buy", "Open"], "steps": 2, "cohort": {"id": id, "negate": true}}),
    );
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["paths"], json!(1), "b alone");
    let (s, _) = post(
        "/api/v1/query/funnel",
        json!({"from_ms": T, "to_ms": T + HOUR, "window_ms": 1000,
        "steps": [{"event": "Buy"}, {"event": "Buy"}], "cohort": {"id": 4242}}),
    );
    assert_eq!(s, 400, "unknown cohort");
    let (_, list) = get("/api/query/cohorts/list");
    assert_eq!(list[0]["name"], json!("Repeat buyers"));
    assert_eq!(list[0]["count"], json!(1));

    // Mixpanel segmentation and events: local dates, segments by `on`.
    let (s, r) = get(
        "/api/2.0/segmentation?event=Buy&from_date=2026-11-20&to_date=2026-11-21&type=unique&on=properties%5B%22platform%22%5D",
    );
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["data"]["series"], json!(["2026-11-20", "2026-11-21"]));
    assert_eq!(
        r["data"]["values"]["iOS"],
        json!({"2026-11-20": 1, "2026-11-21": 1})
    );
    assert_eq!(
        r["data"]["values"]["Android"],
        json!({"2026-11-20": 1, "2026-11-21": 0})
    );
    assert_eq!(r["legend_size"], json!(2));
    let (s, r) = get(
        "/api/query/events?event=%5B%22Buy%22%2C%22Open%22%5D&type=general&unit=day&from_date=2026-11-20&to_date=2026-11-21",
    );
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        r["data"]["values"]["Open"],
        json!({"2026-11-20": 0, "2026-11-21": 1})
    );
    assert_eq!(r["data"]["values"]["Buy"]["2026-11-21"], json!(2));
    let (s, _) = get("/api/2.0/segmentation?event=Buy&from_date=2026-11-20");
    assert_eq!(s, 400, "to_date is required");
    let (s, _) =
        get("/api/2.0/segmentation?event=Buy&from_date=2026-11-20&to_date=2026-11-21&on=1%2B1");
    assert_eq!(s, 400);

    // Lookups for query builders: the most common names and values of the last 31 days.
    let (s, r) = get("/api/2.0/events/names?type=general");
    assert_eq!(s, 200, "{r}");
    assert_eq!(r, json!(["Buy", "Open"]));
    let (_, r) = get("/api/query/events/properties/values?event=Buy&name=platform&limit=5");
    assert_eq!(r, json!(["iOS", "Android"]));
    let (_, r) = get("/api/query/events/properties/values?name=price&limit=2");
    assert_eq!(r, json!(["10", "20"]), "numbers as text, ties by value");
    assert_eq!(get("/api/query/events/properties/values?event=Buy").0, 400);
    assert_eq!(get("/api/2.0/events/names?type=weird").0, 400);

    // Engage: profiles by where, by cohort, by id; paged and sorted.
    let r = c
        .post(format!("{u}/api/2.0/engage"))
        .basic_auth(&p.secret, Some(""))
        .form(&[("where", r#"properties["plan"] == "gold""#)])
        .send()
        .unwrap();
    let r: Value = r.json().unwrap();
    assert_eq!(r["total"], json!(1));
    assert_eq!(r["results"][0]["$distinct_id"], json!("u-a"));
    assert_eq!(r["results"][0]["$properties"]["plan"], json!("gold"));
    let (_, r) = get(&format!(
        "/api/query/engage?filter_by_cohort=%7B%22id%22%3A{id}%7D&output_properties=%5B%5D"
    ));
    assert_eq!(r["total"], json!(1));
    assert_eq!(r["results"][0]["$properties"], json!({}));
    let (_, r) = get("/api/query/engage?distinct_id=d-b");
    assert_eq!(r["total"], json!(0), "d-b is not an id; $device:d-b is");
    let (_, r) = get("/api/query/engage?distinct_id=%24device%3Ad-b");
    assert_eq!(r["results"][0]["$properties"]["plan"], json!("free"));
    let (s, _) = get("/api/query/engage?where=properties%5B");
    assert_eq!(s, 400);
    server.stop();
}
