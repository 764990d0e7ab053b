//! A child stays a child: once a record shows a child's age, later "adult" signals do not
//! change the tier — across a restart — until an audited correction says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, create_project, export_all, track_event};
use serde_json::{Value, json};

fn track(url: &str, token: &str, id: &str, props: Value) {
    let mut props = props;
    props["distinct_id"] = json!(id);
    track_event(url, token, "Play", props, &[]);
}

fn tiers(url: &str, secret: &str, id: &str) -> Vec<String> {
    export_all(url, secret)
        .iter()
        .filter(|r| r["properties"]["distinct_id"] == id)
        .map(|r| r["properties"]["$age_tier"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_child_stays_a_child_until_an_audited_correction() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let p = create_project(&data, "kids");
    let server = Server::start(&data);
    track(&server.url, &p.token, "kid-3", json!({"$age_band": "6-8"}));
    track(
        &server.url,
        &p.token,
        "kid-3",
        json!({"$age_band": "18+", "level": 4}),
    );
    assert_eq!(
        tiers(&server.url, &p.secret, "kid-3"),
        ["child_us_u13", "child_us_u13"]
    );
    server.stop();
    // The tier is durable.
    let server = Server::start(&data);
    let u = server.url.clone();
    track(&u, &p.token, "kid-3", json!({"$age_band": "18+"}));
    assert_eq!(tiers(&u, &p.secret, "kid-3").len(), 3);
    assert!(
        tiers(&u, &p.secret, "kid-3")
            .iter()
            .all(|t| t == "child_us_u13")
    );
    // A correction needs a reason, and then the person is an adult.
    let c = reqwest::blocking::Client::new();
    let r = c
        .put(format!("{u}/api/v1/persons/tier"))
        .basic_auth(&p.secret, Some(""))
        .json(&json!({"distinct_id": "kid-3", "tier": "adult", "reason": ""}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .put(format!("{u}/api/v1/persons/tier"))
        .basic_auth(&p.secret, Some(""))
        .json(&json!({"distinct_id": "kid-3", "tier": "adult", "reason": "parent verified age 19 (ticket 42)"}))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    track(
        &u,
        &p.token,
        "kid-3",
        json!({"$age_band": "18+", "level": 5}),
    );
    let t = tiers(&u, &p.secret, "kid-3");
    assert_eq!(t.len(), 4);
    assert_eq!(t.iter().filter(|t| *t == "adult").count(), 1, "{t:?}");
    server.stop();
}
