//! Browser privacy signals, end to end: `Sec-GPC: 1` opts the person out of sale/sharing by
//! default (events are marked), a project setting makes it stop analytics; `DNT: 1` is ignored
//! unless the project says otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, create_project, export_all, now_s};
use serde_json::{Value, json};

fn track(url: &str, token: &str, id: &str, headers: &[(&str, &str)]) {
    let body = json!([{"event": "Play", "properties": {"token": token, "distinct_id": id, "time": now_s()}}]);
    let mut req = reqwest::blocking::Client::new()
        .post(format!("{url}/track"))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    assert_eq!(req.send().unwrap().text().unwrap(), "1");
}

#[test]
fn gpc_and_dnt_follow_the_project_settings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let p = create_project(&data, "kids");
    let server = Server::start(&data);
    let u = &server.url;
    track(u, &p.token, "gpc-user", &[("Sec-GPC", "1")]);
    track(u, &p.token, "dnt-user", &[("DNT", "1")]);
    track(u, &p.token, "plain-user", &[]);
    let rows = export_all(u, &p.secret);
    let by: std::collections::HashMap<String, Value> = rows
        .iter()
        .map(|r| {
            (
                r["properties"]["distinct_id"].as_str().unwrap().to_string(),
                r["properties"].clone(),
            )
        })
        .collect();
    assert_eq!(by["gpc-user"]["$opt_out_sale"], true);
    assert!(by["dnt-user"].get("$opt_out_sale").is_none());
    assert!(by["plain-user"].get("$opt_out_sale").is_none());

    // A project that treats both as "stop analytics".
    let c = reqwest::blocking::Client::new();
    let mut settings: Value = c
        .get(format!("{u}/api/v1/settings"))
        .basic_auth(&p.secret, Some(""))
        .send()
        .unwrap()
        .json()
        .unwrap();
    settings["settings"]["privacy"]["gpc"] = json!("stop_analytics");
    settings["settings"]["privacy"]["dnt"] = json!("stop_analytics");
    let r = c
        .put(format!("{u}/api/v1/settings"))
        .basic_auth(&p.secret, Some(""))
        .json(&settings["settings"])
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    track(u, &p.token, "gpc-user-2", &[("Sec-GPC", "1")]);
    track(u, &p.token, "dnt-user-2", &[("DNT", "1")]);
    let ids: Vec<String> = export_all(u, &p.secret)
        .iter()
        .map(|r| r["properties"]["distinct_id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !ids.contains(&"gpc-user-2".to_string()) && !ids.contains(&"dnt-user-2".to_string()),
        "{ids:?}"
    );
    // Invalid settings are refused with a clear message and change nothing.
    settings["settings"]["privacy"]["tiers"] = json!({"child_us_u13": {"ip": "drop", "geo": "country",
        "unknown_properties": "drop", "detectors": "drop_property", "blocked_classes": [],
        "technical_profile_only": true, "refuse_contact_ids": true, "retention_days": null}});
    let r = c
        .put(format!("{u}/api/v1/settings"))
        .basic_auth(&p.secret, Some(""))
        .json(&settings["settings"])
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("finite retention"));
    server.stop();
}
