//! Retention against the real binary: events older than their tier's period are reported as
//! due, deleted on demand, and the written policy names each period.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, create_project, export_all, import_events, now_s, put_settings};
use serde_json::{Value, json};

#[test]
fn aged_out_events_are_reported_then_deleted_and_the_policy_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data, "retention");
    let server = Server::start(&data);
    let url = server.url.clone();
    let r = put_settings(&url, &p.secret, |s| {
        for tier in ["adult", "unknown"] {
            s["privacy"]["tiers"][tier] = json!({"ip": "drop", "geo": "country", "unknown_properties": "allow",
                "detectors": "keep", "blocked_classes": [], "technical_profile_only": false,
                "refuse_contact_ids": false, "retention_days": 30});
        }
    });
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    let now = now_s() as i64;
    let mut events = Vec::new();
    for i in 0..12 {
        // Half 60 days old, half 5 days old.
        let age_days = if i % 2 == 0 { 60 } else { 5 };
        events.push(
            json!({"event": "Play", "properties": {"distinct_id": format!("u{i}"),
            "time": now - age_days * 86_400, "$insert_id": format!("r{i}")}}),
        );
    }
    import_events(&url, &p.secret, &events);
    let c = reqwest::blocking::Client::new();
    let get = |path: &str| {
        c.get(format!("{url}{path}"))
            .basic_auth(&p.secret, Some(""))
            .send()
            .unwrap()
    };
    let status: Value = get("/api/v1/retention").json().unwrap();
    let due: u64 = status["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["events_due_now"].as_u64().unwrap())
        .sum();
    assert_eq!(due, 6, "{status}");
    let child = status["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tier"] == "child_us_u13")
        .unwrap();
    assert_eq!(child["retention_days"], 90);
    let ran: Value = c
        .post(format!("{url}/api/v1/retention/run"))
        .basic_auth(&p.secret, Some(""))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ran["deleted_events"], 6);
    let left = export_all(&url, &p.secret);
    assert_eq!(left.len(), 6);
    assert!(
        left.iter()
            .all(|r| r["properties"]["time"].as_i64().unwrap() > now - 10 * 86_400)
    );
    let policy = get("/api/v1/retention/policy").text().unwrap();
    assert!(policy.contains("Adults: 30 days"), "{policy}");
    assert!(policy.contains("Children under 13 in the United States (COPPA): 90 days"));
    server.stop();
}
