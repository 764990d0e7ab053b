//! Enrichment under the policy, end to end against the real binary: the IP's country decides
//! the jurisdiction (GeoIP database written by MaxMind's own Perl writer), the tier decides how
//! much location and IP survive, the user agent gives browser and OS; Indian minors are
//! counted under a daily pseudonym and never tracked; the lint report survives a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, create_project, export_all, now_s, put_settings};
use serde_json::{Value, json};
use std::path::Path;

fn make_mmdb(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("geo.mmdb");
    let script = canopy_types::crate_dir!().join("../../tests/geoip/make-test-mmdb.pl");
    let ok = std::process::Command::new("perl")
        .arg(script)
        .arg(&out)
        .status()
        .unwrap()
        .success();
    assert!(
        ok,
        "libmaxmind-db-writer-perl missing? run scripts/test-all"
    );
    out
}

/// One event to `/track?ip=1` from `client` (as a trusted proxy names it).
fn send(url: &str, token: &str, client: &str, id: &str, props: Value) {
    let mut props = props;
    props["token"] = json!(token);
    props["time"] = json!(now_s());
    props["distinct_id"] = json!(id);
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/track?ip=1"))
        .header("content-type", "application/json")
        .header("x-forwarded-for", format!("{client}, 10.0.0.1"))
        .header(
            "user-agent",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        )
        .body(json!([{"event": "Play", "properties": props}]).to_string())
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "1");
}

fn engage(url: &str, token: &str, id: &str, set: Value) {
    let body = json!([{"$token": token, "$distinct_id": id, "$set": set}]);
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/engage"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "1");
}

fn by_id<'a>(rows: &'a [Value], id: &str) -> Vec<&'a Value> {
    rows.iter()
        .filter(|r| r["properties"]["distinct_id"] == id)
        .map(|r| &r["properties"])
        .collect()
}

#[test]
fn location_and_ip_follow_the_tier_and_indian_minors_are_only_counted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = dir.path().join("canopy.toml");
    std::fs::write(
        &config,
        format!(
            "[privacy]\ngeoip_db = {:?}\nclient_ip_header = \"X-Forwarded-For\"\n",
            make_mmdb(dir.path())
        ),
    )
    .unwrap();
    let p = create_project(&data, "kids");
    let server = Server::start_with(&data, &["--config", config.to_str().unwrap()]);
    let u = server.url.clone();
    let r = put_settings(&u, &p.secret, |s| {
        s["privacy"]["audience"] = json!("mixed");
        s["privacy"]["schema"] = json!({"level": "behavioral"});
        s["privacy"]["tiers"]["adult"] = json!({"ip": "truncate", "geo": "city",
            "unknown_properties": "allow", "detectors": "keep", "blocked_classes": [],
            "technical_profile_only": false, "refuse_contact_ids": false, "retention_days": 400});
    });
    assert!(r.status().is_success(), "{}", r.text().unwrap());

    send(
        &u,
        &p.token,
        "203.0.113.77",
        "parent",
        json!({"$age_band": "18+"}),
    );
    send(
        &u,
        &p.token,
        "203.0.113.77",
        "kid-us",
        json!({"$age_band": "6-8", "level": 2}),
    );
    send(
        &u,
        &p.token,
        "198.51.100.9",
        "kid-in",
        json!({"$age_band": "13-15", "level": 1}),
    );
    send(&u, &p.token, "198.51.100.9", "kid-in", json!({"level": 2}));
    send(
        &u,
        &p.token,
        "198.51.100.9",
        "adult-in",
        json!({"$age_band": "18+"}),
    );
    // A remembered Indian minor's profile updates are dropped.
    engage(
        &u,
        &p.token,
        "kid-in",
        json!({"$os": "Android", "favourite": "owls"}),
    );

    let rows = export_all(&u, &p.secret);
    let parent = by_id(&rows, "parent")[0];
    assert_eq!(parent["$jurisdiction"], "US-CA");
    assert_eq!(
        (
            &parent["mp_country_code"],
            &parent["$region"],
            &parent["$city"]
        ),
        (&json!("US"), &json!("California"), &json!("San Francisco"))
    );
    assert_eq!(parent["$ip"], "203.0.113.0", "adult tier: truncated");
    assert_eq!(
        (&parent["$browser"], &parent["$os"]),
        (&json!("Safari"), &json!("iOS"))
    );
    let kid = by_id(&rows, "kid-us")[0];
    assert_eq!(kid["$age_tier"], "child_us_u13");
    assert_eq!(kid["mp_country_code"], "US");
    for k in ["$region", "$city", "$ip"] {
        assert!(kid.get(k).is_none(), "a child keeps no {k}");
    }
    assert_eq!(by_id(&rows, "adult-in")[0]["$jurisdiction"], "IN-KA");
    // The Indian minor: two events under one pseudonym, no trace of the id.
    assert!(by_id(&rows, "kid-in").is_empty());
    let agg: Vec<&Value> = rows
        .iter()
        .filter(|r| r["properties"]["$age_tier"] == "minor_in_u18")
        .map(|r| &r["properties"])
        .collect();
    assert_eq!(agg.len(), 2);
    assert_eq!(agg[0]["distinct_id"], agg[1]["distinct_id"]);
    assert!(agg[0]["distinct_id"].as_str().unwrap().starts_with("$agg:"));
    let text = serde_json::to_string(&rows).unwrap();
    for s in ["kid-in", "203.0.113.77", "198.51.100.9"] {
        assert!(!text.contains(s), "{s} leaked into the export");
    }
    let c = reqwest::blocking::Client::new();
    let person = c
        .get(format!("{u}/api/v1/persons?distinct_id=kid-in"))
        .basic_auth(&p.secret, Some(""))
        .send()
        .unwrap();
    let status = person.status();

    assert_eq!(
        status,
        404,
        "no identity, no profile: {}",
        person.text().unwrap()
    );

    // The lint report survives a restart.
    let lint = |u: &str| -> Value {
        c.get(format!("{u}/api/v1/privacy/lint"))
            .basic_auth(&p.secret, Some(""))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let count = |l: &Value, rule: &str| -> u64 {
        l["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["rule"] == rule)
            .map(|a| a["count"].as_u64().unwrap())
            .sum()
    };
    let before = lint(&u);
    assert_eq!(count(&before, "aggregate_only_tier"), 3, "{before}");
    server.stop();
    let server = Server::start_with(&data, &["--config", config.to_str().unwrap()]);
    let after = lint(&server.url);
    assert_eq!(count(&after, "aggregate_only_tier"), 3, "{after}");
    assert_eq!(after["actions"], before["actions"]);
    server.stop();
}
