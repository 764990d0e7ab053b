//! End-to-end: the real binary, every SDK encoding, the answers each SDK expects, CORS, bad
//! input, and export.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Server, create_project, export_all, now_s};
use serde_json::{Value, json};
use std::io::Write;

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::new()
}

fn event(token: &str, id: &str) -> Value {
    json!({"event": "Story Started", "properties": {"token": token, "distinct_id": "kid-1", "time": now_s(),
        "$insert_id": id, "story": "The Gruffalo", "page": 1}})
}

#[test]
fn every_sdk_encoding_is_ingested_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let p = create_project(&data, "kids");
    let server = Server::start(&data);
    let u = &server.url;
    let c = client();
    let form = "application/x-www-form-urlencoded";
    let b64 = |v: &Value| B64.encode(v.to_string());
    let enc = |s: &str| {
        s.replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    };

    // JS: POST form, base64, verbose batch.
    let r = c
        .post(format!("{u}/track/?verbose=1&ip=1&_=123"))
        .header("content-type", form)
        .body(format!(
            "data={}",
            enc(&b64(&json!([event(&p.token, "js1")])))
        ))
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), r#"{"error":null,"status":1}"#);
    // Python: form with raw JSON and verbose in the body.
    let r = c
        .post(format!("{u}/track"))
        .header("content-type", form)
        .body(format!(
            "data={}&verbose=1&ip=0",
            enc(&event(&p.token, "py1").to_string())
        ))
        .send()
        .unwrap();
    assert_eq!(r.json::<Value>().unwrap()["status"], 1);
    // Node: GET ?data=base64; body must be exactly "1".
    let r = c
        .get(format!(
            "{u}/track?ip=0&verbose=0&data={}",
            enc(&b64(&event(&p.token, "node1")))
        ))
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "1");
    // Node batch: un-escaped '+' in the body.
    let r = c
        .post(format!("{u}/track?ip=0"))
        .header("content-type", form)
        .body(format!(
            "data={}",
            b64(&json!([event(&p.token, "node2"), event(&p.token, "node3")]))
        ))
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "1");
    // Android: gzipped form body, milliseconds.
    let mut ev = event(&p.token, "");
    ev["properties"]["time"] = json!((now_s() * 1000.0) as i64);
    ev["properties"]
        .as_object_mut()
        .unwrap()
        .remove("$insert_id");
    ev["$mp_metadata"] = json!({"$mp_event_id": "android1"});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(format!("data={}", enc(&b64(&json!([ev])))).as_bytes())
        .unwrap();
    let r = c
        .post(format!("{u}/track/?ip=1"))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Swift: raw JSON array, status must be exactly 200.
    let r = c
        .post(format!("{u}/track/?ip=1"))
        .header("content-type", "application/json")
        .body(json!([event(&p.token, "swift1")]).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Double slash from an api_host ending in '/'.
    let r = c
        .post(format!("{u}//track/"))
        .header("content-type", "application/json")
        .body(json!([event(&p.token, "slash1")]).to_string())
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "1");

    let rows = export_all(u, &p.secret);
    let mut ids: Vec<&str> = rows
        .iter()
        .map(|r| r["properties"]["$insert_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "android1", "js1", "node1", "node2", "node3", "py1", "slash1", "swift1"
        ]
    );
    let js = rows
        .iter()
        .find(|r| r["properties"]["$insert_id"] == "js1")
        .unwrap();
    assert_eq!(js["event"], "Story Started");
    assert_eq!(js["properties"]["story"], "The Gruffalo");
    assert_eq!(js["properties"]["page"], 1);
    assert_eq!(js["properties"]["distinct_id"], "kid-1");
    assert!(js["properties"].get("token").is_none());
    server.stop();
}

#[test]
fn bad_input_never_costs_valid_events_and_never_4xx_on_track() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let p = create_project(&data, "kids");
    let server = Server::start(&data);
    let u = &server.url;
    let c = client();
    let deep =
        json!({"event": "x", "properties": {"token": p.token, "a": {"b": {"c": {"d": {"e": 1}}}}}});
    let mixed = json!([event(&p.token, "good1"), {"event": "no token"}, {"event": "x", "properties": {"token": "nope"}},
        deep, "not an object", event(&p.token, "good2")]);
    let r = c
        .post(format!("{u}/track?verbose=1"))
        .header("content-type", "application/json")
        .body(mixed.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["status"], 1);
    let reasons: Vec<&str> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "missing_token",
            "unknown_token",
            "too_deep",
            "not_an_object"
        ]
    );

    let big = vec![b'a'; 11 << 20];
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 40 << 20]).unwrap();
    let bomb = gz.finish().unwrap();
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("data=!!!notbase64", b"".to_vec(), None),
        ("", b"data=//4=".to_vec(), None),
        ("", b"[{\"event\":".to_vec(), None),
        ("", big, None),
        ("", bomb, Some("gzip")),
        ("", b"\x1f\x8bjunk".to_vec(), Some("gzip")),
    ];
    for endpoint in ["track", "engage", "groups"] {
        for (q, body, ce) in &cases {
            let mut req = c
                .post(format!("{u}/{endpoint}?{q}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone());
            if let Some(ce) = ce {
                req = req.header("content-encoding", *ce);
            }
            let r = req.send().unwrap();
            assert_eq!(r.status().as_u16(), 200, "{endpoint} {q}");
            assert_eq!(r.text().unwrap(), "0", "{endpoint} {q}");
        }
    }
    let rows = export_all(u, &p.secret);
    assert_eq!(rows.len(), 2);
    let metrics = c
        .get(format!("{u}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for reason in [
        "missing_token",
        "unknown_token",
        "too_deep",
        "bad_base64",
        "bad_json",
        "body_too_large",
        "decompressed_too_large",
        "bad_gzip",
        "bad_utf8",
    ] {
        assert!(
            metrics.contains(&format!("reason=\"{reason}\"")),
            "{reason} not counted"
        );
    }
    server.stop();
}

#[test]
fn cors_echoes_origin_with_credentials_and_answers_preflight() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = Server::start(&data);
    let c = client();
    let r = c
        .post(format!("{}/track", server.url))
        .header("origin", "https://kids.example")
        .body("data=x")
        .send()
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://kids.example"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let r = c
        .request(reqwest::Method::OPTIONS, format!("{}/flags", server.url))
        .header("origin", "https://kids.example")
        .header("access-control-request-method", "GET")
        .header(
            "access-control-request-headers",
            "authorization,traceparent",
        )
        .send()
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://kids.example"
    );
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("traceparent"));
    // Regression: cancelling a request from an admin page (DELETE) was refused by preflight.
    let r = c
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/v1/dsr/requests/x", server.url),
        )
        .header("origin", "https://admin.example")
        .header("access-control-request-method", "DELETE")
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        methods.contains("DELETE") && methods.contains("PUT"),
        "{methods}"
    );
    for (path, key) in [
        ("/decide", "notifications"),
        ("/flags", "flags"),
        ("/settings", "sdk_config"),
    ] {
        let v: Value = c
            .get(format!("{}{path}", server.url))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert!(v.get(key).is_some(), "{path}");
    }
    server.stop();
}

#[test]
fn import_authenticates_and_validates_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let p = create_project(&data, "kids");
    let server = Server::start(&data);
    let u = &server.url;
    let c = client();
    let old = now_s() - 86400.0 * 400.0;
    let good = json!({"event": "Old", "properties": {"time": old, "distinct_id": "u1", "$insert_id": "imp-1"}});
    let bad = json!({"event": "Old", "properties": {"time": old, "distinct_id": "undefined", "$insert_id": "imp-2"}});
    let body = json!([good, bad]).to_string();
    // No or wrong credentials: 401.
    assert_eq!(
        c.post(format!("{u}/import"))
            .body(body.clone())
            .send()
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        c.post(format!("{u}/import"))
            .basic_auth("wrong", Some(""))
            .body(body.clone())
            .send()
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    // Strict: partial success with failed_records.
    let r = c
        .post(format!("{u}/import?strict=1&project_id={}", p.id))
        .basic_auth("svc-user", Some(&p.secret))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().unwrap();
    assert_eq!(v["num_records_imported"], 1);
    assert_eq!(v["failed_records"][0]["index"], 1);
    assert_eq!(v["failed_records"][0]["field"], "properties.distinct_id");
    // Wrong project id for the secret: 401.
    let r = c
        .post(format!("{u}/import?project_id=999"))
        .basic_auth(&p.secret, Some(""))
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // More than 2000 events: refused as a whole.
    let many: Vec<Value> = (0..2001).map(|i| json!({"event": "e", "properties": {"time": old, "distinct_id": "u", "$insert_id": format!("m{i}")}})).collect();
    let r = c
        .post(format!("{u}/import?strict=1"))
        .basic_auth(&p.secret, Some(""))
        .body(json!(many).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // Token as the Basic user.
    let r = c
        .post(format!("{u}/import"))
        .basic_auth(&p.token, Some(""))
        .body(json!([good]).to_string())
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "1");
    let rows = export_all(u, &p.secret);
    assert_eq!(rows.len(), 1, "dedup on $insert_id");
    assert_eq!(rows[0]["properties"]["$import"], true);
    server.stop();
}

#[test]
fn export_requires_credentials_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let p = create_project(&data, "kids");
    let other = create_project(&data, "other");
    let server = Server::start(&data);
    let u = &server.url;
    let c = client();
    let evs: Vec<Value> = (0..20)
        .map(|i| {
            let mut e = event(&p.token, &format!("e{i}"));
            e["event"] = json!(if i % 2 == 0 { "A" } else { "B" });
            e["properties"]["n"] = json!(i);
            e
        })
        .collect();
    c.post(format!("{u}/track"))
        .body(json!(evs).to_string())
        .header("content-type", "application/json")
        .send()
        .unwrap();
    let get = |q: &str, secret: &str| {
        c.get(format!("{u}/api/2.0/export?{q}"))
            .basic_auth(secret, Some(""))
            .send()
            .unwrap()
    };
    let today = chrono::Utc::now().date_naive();
    let range = format!(
        "from_date={}&to_date={}",
        today - chrono::Days::new(1),
        today
    );
    assert_eq!(get(&range, "nope").status().as_u16(), 401);
    assert_eq!(
        get(&range, &other.secret).text().unwrap(),
        "",
        "projects are isolated"
    );
    assert_eq!(
        get("from_date=yesterday&to_date=2020-01-01", &p.secret)
            .status()
            .as_u16(),
        400
    );
    let lines = |r: reqwest::blocking::Response| r.text().unwrap().lines().count();
    assert_eq!(lines(get(&range, &p.secret)), 20);
    assert_eq!(
        lines(get(&format!("{range}&event=%5B%22A%22%5D"), &p.secret)),
        10
    );
    assert_eq!(
        lines(get(
            &format!("{range}&where=properties%5B%22n%22%5D%20%3E%3D%2015"),
            &p.secret
        )),
        5
    );
    assert_eq!(lines(get(&format!("{range}&limit=3"), &p.secret)), 3);
    assert_eq!(
        get(&format!("{range}&where=(("), &p.secret)
            .status()
            .as_u16(),
        400
    );
    server.stop();
}
