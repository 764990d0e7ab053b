//! Rectification against the real binary: a property sent by mistake is corrected on a
//! person's past events (in segments and in the WAL tail), the profile is corrected through
//! the privacy policy, and bad requests get a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, create_project, export_all, track_event};
use serde_json::{Value, json};

#[test]
fn a_mistaken_value_is_corrected_on_past_events_and_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data, "rectify");
    let server = Server::start(&data);
    let url = server.url.clone();
    track_event(
        &url,
        &p.token,
        "Play",
        json!({"$device_id": "d1", "$user_id": "kid-1", "level": "wrong-7"}),
        &[],
    );
    track_event(
        &url,
        &p.token,
        "Play",
        json!({"distinct_id": "kid-2", "level": "wrong-7"}),
        &[],
    );
    server.stop();
    let server = Server::start(&data);
    let url = server.url.clone();
    track_event(
        &url,
        &p.token,
        "Quit",
        json!({"$device_id": "d1", "$user_id": "kid-1", "level": "wrong-7"}),
        &[],
    );
    let c = reqwest::blocking::Client::new();
    c.post(format!("{url}/engage"))
        .form(&[("data", json!({"$token": p.token, "$distinct_id": "kid-1", "$set": {"nickname": "Wrong", "color": "red"}}).to_string())])
        .send()
        .unwrap();
    let post = |body: Value| {
        let r = c
            .post(format!("{url}/api/v1/persons/rectify"))
            .basic_auth(&p.secret, Some(""))
            .json(&body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let (s, r) = post(
        json!({"distinct_id": "$device:d1", "reason": "level sent as text by an old app version",
        "events": {"property": "level", "value": 7},
        "profile": {"$set": {"nickname": "Right"}, "$unset": ["color"]}}),
    );
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["events_changed"].clone(), r["profile_updates"].clone()),
        (json!(2), json!(2))
    );
    let rows = export_all(&url, &p.secret);
    for row in &rows {
        let level = &row["properties"]["level"];
        if row["properties"]["distinct_id"] == "kid-1" {
            assert_eq!(level, &json!(7), "{row}");
        } else {
            assert_eq!(level, "wrong-7", "another person's events are untouched");
        }
    }
    let person: Value = c
        .get(format!("{url}/api/v1/persons?distinct_id=kid-1"))
        .basic_auth(&p.secret, Some(""))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        person["profile"]["properties"]["nickname"], "Right",
        "{person}"
    );
    assert!(person["profile"]["properties"].get("color").is_none());
    // Removing a property: value null.
    let (_, r) = post(
        json!({"distinct_id": "kid-2", "reason": "not ours to keep", "events": {"property": "level", "value": null}}),
    );
    assert_eq!(r["events_changed"], 1);
    // Bad requests.
    for (body, status) in [
        (
            json!({"distinct_id": "kid-1", "events": {"property": "level", "value": 1}}),
            400,
        ),
        (json!({"distinct_id": "kid-1", "reason": " "}), 400),
        (
            json!({"distinct_id": "nobody", "reason": "x", "events": {"property": "level", "value": 1}}),
            404,
        ),
        (
            json!({"distinct_id": "kid-1", "reason": "x", "events": {"property": "$insert_id", "value": 1}}),
            400,
        ),
        (
            json!({"distinct_id": "kid-1", "reason": "x", "events": {"property": "level", "value": "kid@example.com"}}),
            400,
        ),
    ] {
        let (s, e) = post(body);
        assert_eq!(s, status, "{e}");
    }
    server.stop();
}
