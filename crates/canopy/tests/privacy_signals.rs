//! Browser privacy signals, end to end: `Sec-GPC: 1` opts the person out of sale/sharing by
//! default (events are marked), a project setting makes it stop analytics; `DNT: 1` is ignored
//! unless the project says otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, create_project, export_all, put_settings, track_event};
use serde_json::{Value, json};

fn track(url: &str, token: &str, id: &str, headers: &[(&str, &str)]) {
    track_event(url, token, "Play", json!({"distinct_id": id}), headers);
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
    let r = put_settings(u, &p.secret, |s| {
        s["privacy"]["gpc"] = json!("stop_analytics");
        s["privacy"]["dnt"] = json!("stop_analytics");
    });
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
    let r = put_settings(u, &p.secret, |s| {
        s["privacy"]["tiers"] = json!({"child_us_u13": {"ip": "drop", "geo": "country",
            "unknown_properties": "drop", "detectors": "drop_property", "blocked_classes": [],
            "technical_profile_only": true, "refuse_contact_ids": true, "retention_days": null}});
    });
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("finite retention"));
    server.stop();
}
