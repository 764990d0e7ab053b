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

/// `distinct_id`-less events in a simplified project: identity comes from the device and user.
fn track_ids(url: &str, token: &str, device: &str, user: Option<&str>, props: Value) {
    let mut props = props;
    props["$device_id"] = json!(device);
    if let Some(u) = user {
        props["$user_id"] = json!(u);
    }
    track_event(url, token, "Play", props, &[]);
}

#[test]
fn tiers_and_suppressions_hold_for_every_id_of_the_person() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let p = create_project(&data, "kids");
    let server = Server::start(&data);
    let u = server.url.clone();
    // The device is linked to the user before any age is known…
    track_ids(&u, &p.token, "d1", None, json!({}));
    track_ids(&u, &p.token, "d1", Some("u1"), json!({}));
    // …then the logged-in user says 6-8: the whole cluster is a child from now on,
    // including the device on its own (before login, on the next app start).
    track_event(
        &u,
        &p.token,
        "Play",
        json!({"$user_id": "u1", "$age_band": "6-8"}),
        &[],
    );
    track_ids(
        &u,
        &p.token,
        "d1",
        None,
        json!({"$age_band": "18+", "level": 1}),
    );
    let rows = export_all(&u, &p.secret);
    let device_only = rows
        .iter()
        .find(|r| r["properties"]["$age_band"] == "18+")
        .unwrap();
    assert_eq!(device_only["properties"]["$age_tier"], "child_us_u13");
    // Suppressing the user suppresses the device too.
    let c = reqwest::blocking::Client::new();
    let r = c
        .post(format!("{u}/api/v1/suppressions"))
        .basic_auth(&p.secret, Some(""))
        .json(&json!({"distinct_ids": ["u1"]}))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    track_ids(&u, &p.token, "d1", None, json!({}));
    assert_eq!(export_all(&u, &p.secret).len(), rows.len());
    server.stop();
}
