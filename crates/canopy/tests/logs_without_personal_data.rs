//! Logs never carry payloads or personal data: the server runs at the most verbose level while
//! canaries travel in valid events, invalid events, query strings, profile updates, tokens and
//! credentials; none of them may appear in its log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, create_project, export_all, now_s};
use serde_json::json;

#[test]
fn debug_logs_contain_no_canary() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let p = create_project(&data, "kids");
    let log = dir.path().join("canopy.log");
    let server = Server::start_logged(&data, "trace,hyper=info,h2=info", &log);
    let u = &server.url;
    let c = reqwest::blocking::Client::new();
    let canaries = [
        "kid-canary-0451",
        "canary.mum@example.com",
        "CanaryStreet 12",
        "canary-device-9",
    ];
    let good = json!([{"event": "Drawing Saved", "properties": {"token": p.token, "distinct_id": canaries[0],
        "time": now_s(), "email": canaries[1], "address": canaries[2]}}]);
    let deep = json!([{"event": canaries[3], "properties": {"token": p.token, "a": {"b": {"c": {"d": {"e": canaries[1]}}}}}}]);
    let unknown =
        json!([{"event": "x", "properties": {"token": canaries[3], "distinct_id": canaries[0]}}]);
    for body in [
        good.to_string(),
        deep.to_string(),
        unknown.to_string(),
        format!("[{{\"event\": \"{}\"", canaries[2]),
    ] {
        c.post(format!("{u}/track?verbose=1"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
    }
    c.get(format!(
        "{u}/track?data=%7B%22event%22%3A%22{}%22%7D&verbose=1",
        canaries[0]
    ))
    .send()
    .unwrap();
    c.post(format!("{u}/engage"))
        .body(format!(
            "data=[{{\"$token\":\"{}\",\"$distinct_id\":\"{}\",\"$set\":{{\"$email\":\"{}\"}}}}]",
            p.token, canaries[0], canaries[1]
        ))
        .send()
        .unwrap();
    c.post(format!("{u}/import"))
        .basic_auth(canaries[3], Some(canaries[1]))
        .body(good.to_string())
        .send()
        .unwrap();
    c.get(format!("{u}/api/2.0/export?from_date=2020-01-01&to_date=2100-01-01&where=properties%5B%22email%22%5D%20%3D%3D%20%22{}%22", canaries[1]))
        .basic_auth(&p.secret, Some("")).send().unwrap();
    assert_eq!(export_all(u, &p.secret).len(), 1);
    server.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("request"),
        "the log should show requests at this level"
    );
    for canary in canaries
        .iter()
        .chain([&p.token.as_str(), &p.secret.as_str()])
    {
        assert!(!text.contains(canary), "{canary} leaked into the log");
    }
}
