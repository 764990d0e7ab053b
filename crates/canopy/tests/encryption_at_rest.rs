//! Encryption at rest: canary strings sent in events and profiles never appear in plaintext in
//! any file under the data dir (WAL, segments, manifest, SQLite), before or after flushes; and
//! starting with the wrong master key fails clearly without touching data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{BIN, Server, create_project, export_all, files_under, key_file, now_s};
use serde_json::json;
use std::process::Command;

const CANARIES: [&str; 4] = [
    "zebra-canary-7731",
    "canary.parent@example.com",
    "Canary Kid Name",
    "canary-device-42",
];

fn assert_no_canary(dir: &std::path::Path) {
    let files = files_under(dir);
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "parquet"))
            || files
                .iter()
                .any(|f| f.extension().is_some_and(|e| e == "wal"))
    );
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for c in CANARIES {
            assert!(
                !bytes.windows(c.len()).any(|w| w == c.as_bytes()),
                "{c} in plaintext in {}",
                f.display()
            );
        }
    }
}

#[test]
fn canaries_never_reach_disk_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let p = create_project(&data, "kids");
    let server = Server::start(&data);
    let c = reqwest::blocking::Client::new();
    let events: Vec<_> = (0..200).map(|i| json!({"event": "Canary Event", "properties": {
        "token": p.token, "distinct_id": CANARIES[3], "time": now_s(), "$insert_id": format!("k{i}"),
        "note": CANARIES[0], "email": CANARIES[1], "child": {"name": CANARIES[2]}}})).collect();
    let r = c
        .post(format!("{}/track", server.url))
        .header("content-type", "application/json")
        .body(json!(events).to_string())
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "1");
    let profile = json!([{"$token": p.token, "$distinct_id": CANARIES[3], "$set": {"$email": CANARIES[1], "$name": CANARIES[2]}}]);
    c.post(format!("{}/engage", server.url))
        .body(format!("data={profile}"))
        .send()
        .unwrap();
    // Only in the WAL so far.
    assert_no_canary(&data);
    assert_eq!(export_all(&server.url, &p.secret).len(), 200);
    server.stop();
    // Now flushed to segments.
    assert!(
        files_under(&data)
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "parquet"))
    );
    assert_no_canary(&data);
    // And readable again.
    let server = Server::start(&data);
    let rows = export_all(&server.url, &p.secret);
    assert_eq!(rows.len(), 200);
    assert_eq!(rows[0]["properties"]["child"]["name"], CANARIES[2]);
    server.stop();
}

#[test]
fn wrong_master_key_fails_clearly_without_touching_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let p = create_project(&data, "kids");
    let server = Server::start(&data);
    let ev = json!([{"event": "e", "properties": {"token": p.token, "distinct_id": "d", "time": now_s()}}]);
    reqwest::blocking::Client::new()
        .post(format!("{}/track", server.url))
        .body(ev.to_string())
        .header("content-type", "application/json")
        .send()
        .unwrap();
    server.kill9();
    let snapshot = |d: &std::path::Path| {
        let mut v: Vec<(String, Vec<u8>)> = files_under(d)
            .into_iter()
            .filter(|f| !f.ends_with("LOCK") && !f.to_string_lossy().ends_with("-shm"))
            .map(|f| (f.display().to_string(), std::fs::read(&f).unwrap()))
            .collect();
        v.sort();
        v
    };
    let before = snapshot(&data);
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("CANOPY_MASTER_KEY", "11".repeat(32))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("master key does not match"), "{stderr}");
    assert_eq!(
        snapshot(&data),
        before,
        "a failed start must not change the data dir"
    );
    // A missing key file is refused too, instead of silently generating a new key.
    std::fs::rename(key_file(&data), dir.path().join("moved.key")).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    // With the right key everything is still there.
    std::fs::rename(dir.path().join("moved.key"), key_file(&data)).unwrap();
    let server = Server::start(&data);
    assert_eq!(export_all(&server.url, &p.secret).len(), 1);
    server.stop();
}
