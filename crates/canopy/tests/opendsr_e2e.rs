//! OpenDSR 2.0 conformance against the real binary: discovery, create (201, signed, the request
//! echoed in `encoded_request`), hashed identities, status, cancel while pending (202), spec-shaped
//! errors that never echo identities, the legacy `opengdpr_requests` name, and status callbacks
//! on every state change — each response and callback signed over its raw body with the key
//! published at `certificate.pem`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Server, create_project, export_all, track_event};
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DOMAIN: &str = "opendsr.canopy.test";

/// One received callback: its headers (lower-case names) and raw body.
type Received = Arc<Mutex<Vec<(Vec<(String, String)>, Vec<u8>)>>>;

/// A controller's callback endpoint: records (headers, raw body) of every POST, answers 202.
fn callback_receiver() -> (String, Received) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/opendsr_callbacks",
        listener.local_addr().unwrap()
    );
    let got: Arc<Mutex<Vec<_>>> = Arc::default();
    let store = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            store.lock().unwrap().push((headers, body));
            let _ = stream.write_all(
                b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    (url, got)
}

fn public_key(url: &str) -> VerifyingKey {
    let pem = reqwest::blocking::get(format!("{url}/opendsr/v1/certificate.pem"))
        .unwrap()
        .text()
        .unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = B64.decode(b64).unwrap();
    assert_eq!(der.len(), 44, "Ed25519 SubjectPublicKeyInfo");
    VerifyingKey::from_bytes(&der[12..].try_into().unwrap()).unwrap()
}

fn check_signed(key: &VerifyingKey, domain: Option<&str>, signature: Option<&str>, body: &[u8]) {
    assert_eq!(domain, Some(DOMAIN));
    let sig: [u8; 64] = B64
        .decode(signature.expect("signed"))
        .unwrap()
        .try_into()
        .unwrap();
    key.verify_strict(body, &Signature::from_bytes(&sig))
        .expect("the signature covers the raw body");
}

struct Answer {
    status: u16,
    body: Value,
}

fn call(key: &VerifyingKey, req: reqwest::blocking::RequestBuilder) -> Answer {
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
    let (domain, sig) = (
        header("x-opendsr-processor-domain"),
        header("x-opendsr-signature"),
    );
    let raw = r.bytes().unwrap().to_vec();
    if status < 300 {
        check_signed(key, domain.as_deref(), sig.as_deref(), &raw);
    }
    Answer {
        status,
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
    }
}

fn request(id: &str, identity: Value, callback: &str) -> Value {
    json!({"subject_request_id": id, "subject_request_type": "erasure", "regulation": "gdpr",
           "submitted_time": "2026-11-20T10:00:00Z", "api_version": "2.0",
           "subject_identities": [identity], "status_callback_urls": [callback]})
}

#[test]
fn opendsr_requests_are_signed_cancellable_and_call_back_on_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("canopy.toml");
    std::fs::write(
        &config,
        format!("[dsr]\ncancel_window_secs = 2\nopendsr_domain = \"{DOMAIN}\"\n"),
    )
    .unwrap();
    let p = create_project(&data, "opendsr");
    let server = Server::start_with(&data, &["--config", config.to_str().unwrap()]);
    let url = server.url.clone();
    for who in ["cust-1", "cust-2"] {
        track_event(&url, &p.token, "Play", json!({"distinct_id": who}), &[]);
    }
    let key = public_key(&url);
    let http = reqwest::blocking::Client::new();
    let (callback, received) = callback_receiver();

    let d = call(&key, http.get(format!("{url}/opendsr/v1/discovery")));
    assert_eq!(d.status, 200);
    assert_eq!(d.body["api_version"], "2.0");
    assert_eq!(
        d.body["supported_subject_request_types"],
        json!(["erasure", "access", "portability"])
    );
    assert!(
        d.body["processor_certificate"]
            .as_str()
            .unwrap()
            .ends_with("/opendsr/v1/certificate.pem")
    );

    let create = |body: &Value| {
        call(
            &key,
            http.post(format!("{url}/opendsr/v1/requests"))
                .basic_auth(&p.secret, Some(""))
                .json(body),
        )
    };
    // Errors: unauthenticated, malformed, unsupported — in the spec's shape, no identity echoed.
    let r1 = "5f3c7c8e-2a4b-4d1e-9f00-0c1d2e3f4a5b";
    let hashed = hex::encode(Sha256::digest(b"cust-1"));
    let ok_body = request(
        r1,
        json!({"identity_type": "controller_customer_id", "identity_value": hashed, "identity_format": "sha256"}),
        &callback,
    );
    let unauth = http
        .post(format!("{url}/opendsr/v1/requests"))
        .json(&ok_body)
        .send()
        .unwrap();
    assert_eq!(unauth.status().as_u16(), 401);
    let mut bad = ok_body.clone();
    bad.as_object_mut().unwrap().remove("submitted_time");
    let e = create(&bad);
    assert_eq!(e.status, 400);
    assert_eq!(
        e.body["error"]["errors"][0]["reason"],
        "missing_submitted_time"
    );
    assert!(!e.body.to_string().contains(&hashed));
    let mut email = ok_body.clone();
    email["subject_identities"] = json!([{"identity_type": "email", "identity_value": "kid@example.com", "identity_format": "raw"}]);
    let e = create(&email);
    assert_eq!(
        (e.status, e.body["error"]["errors"][0]["reason"].clone()),
        (400, json!("unsupported_identity_type"))
    );
    assert!(!e.body.to_string().contains("kid@example.com"));

    // Create: by a SHA-256 digest of the id.
    let c = create(&ok_body);
    assert_eq!(c.status, 201, "{}", c.body);
    assert_eq!(c.body["subject_request_id"], r1);
    assert_eq!(c.body["controller_id"], p.id.to_string());
    let echoed: Value = serde_json::from_slice(
        &B64.decode(c.body["encoded_request"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(echoed, ok_body);
    assert!(
        chrono::DateTime::parse_from_rfc3339(c.body["expected_completion_time"].as_str().unwrap())
            .is_ok()
    );
    assert_eq!(
        create(&ok_body).status,
        400,
        "a subject_request_id is used once"
    );

    // A second request, cancelled inside the cancellation window.
    let r2 = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let c2 = create(&request(
        r2,
        json!({"identity_type": "controller_customer_id", "identity_value": "cust-2", "identity_format": "raw"}),
        &callback,
    ));
    assert_eq!(c2.status, 201);
    let cancelled = call(
        &key,
        http.delete(format!("{url}/opendsr/v1/requests/{r2}"))
            .basic_auth(&p.secret, Some("")),
    );
    assert_eq!(cancelled.status, 202, "{}", cancelled.body);
    assert_eq!(cancelled.body["subject_request_id"], r2);
    let s2 = call(
        &key,
        http.get(format!("{url}/opendsr/v1/opengdpr_requests/{r2}"))
            .basic_auth(&p.secret, Some("")),
    );
    assert_eq!(s2.body["request_status"], "cancelled");

    // The first completes after the window; its cancellation is then refused.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s = call(
            &key,
            http.get(format!("{url}/opendsr/v1/requests/{r1}"))
                .basic_auth(&p.secret, Some("")),
        );
        if s.body["request_status"] == "completed" || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        status.body["request_status"], "completed",
        "{}",
        status.body
    );
    let late = call(
        &key,
        http.delete(format!("{url}/opendsr/v1/requests/{r1}"))
            .basic_auth(&p.secret, Some("")),
    );
    assert_eq!(late.status, 409);
    let owners: Vec<String> = export_all(&url, &p.secret)
        .iter()
        .map(|r| r["properties"]["distinct_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(owners, vec!["cust-2"]);

    // Callbacks: every state change of each request, in order, signed, naming its target.
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.lock().unwrap().len() < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = received.lock().unwrap().clone();
    let mut seen: Vec<(String, String)> = Vec::new();
    for (headers, body) in &got {
        let h = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        check_signed(
            &key,
            h("x-opendsr-processor-domain"),
            h("x-opendsr-signature"),
            body,
        );
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["status_callback_url"], callback);
        assert_eq!(v["controller_id"], p.id.to_string());
        seen.push((
            v["subject_request_id"].as_str().unwrap().into(),
            v["request_status"].as_str().unwrap().into(),
        ));
    }
    let of = |id: &str| {
        seen.iter()
            .filter(|(r, _)| r == id)
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(of(r1), vec!["pending", "in_progress", "completed"]);
    assert_eq!(of(r2), vec!["pending", "cancelled"]);

    // Portability: once completed, `results_url` downloads the person's bundle.
    let r3 = "7d6c5b4a-3f2e-4d1c-8b0a-9f8e7d6c5b4a";
    let mut portability = request(
        r3,
        json!({"identity_type": "controller_customer_id", "identity_value": "cust-2", "identity_format": "raw"}),
        &callback,
    );
    portability["subject_request_type"] = json!("portability");
    assert_eq!(create(&portability).status, 201);
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let s = call(
            &key,
            http.get(format!("{url}/opendsr/v1/requests/{r3}"))
                .basic_auth(&p.secret, Some("")),
        );
        if s.body["request_status"] == "completed" || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let results = done.body["results_url"]
        .as_str()
        .expect("results_url when completed");
    let zip = http.get(results).send().unwrap();
    assert_eq!(zip.headers()["content-type"], "application/zip");
    let bytes = zip.bytes().unwrap();
    assert_eq!(&bytes[..2], b"PK");
    assert!(
        export_all(&url, &p.secret).len() == 1,
        "an access request erases nothing"
    );
    server.stop();
}
