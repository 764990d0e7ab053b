//! Crash test: kill -9 the server at random moments during concurrent ingestion, with tiny
//! flush thresholds so kills also land inside flushes and compactions. After every restart,
//! every acknowledged event must be present exactly once and every segment must read.
//! `CANOPY_CRASH_CYCLES` sets the number of cycles (default 50).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, create_project, export_all, now_s};
use rand::Rng;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CONFIG: &str = "[storage]\nflush_rows = 1000\nflush_interval_secs = 1\ncompaction_min_segments = 2\nbuckets = 4\n";

#[test]
fn acknowledged_events_survive_kill_9_exactly_once() {
    let cycles = common::env_count("CANOPY_CRASH_CYCLES", 50);
    let (_dir, data, config) = common::data_dir_with_config(CONFIG);
    let p = create_project(&data, "crash");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let next_id = Arc::new(AtomicU64::new(0));
    let mut rng = rand::rng();
    for cycle in 0..cycles {
        let server = Server::start_with(&data, &["--config", config.to_str().unwrap()]);
        if cycle % 10 == 9 {
            verify(&server.url, &p.secret, &acked.lock().unwrap());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for _ in 0..6 {
            let (url, token, acked, next_id, stop) = (
                server.url.clone(),
                p.token.clone(),
                acked.clone(),
                next_id.clone(),
                stop.clone(),
            );
            clients.push(std::thread::spawn(move || {
                let c = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
                while !stop.load(Ordering::SeqCst) {
                    let ids: Vec<String> = (0..50).map(|_| format!("c{}", next_id.fetch_add(1, Ordering::SeqCst))).collect();
                    let batch: Vec<_> = ids.iter().map(|id| json!({"event": "Tick", "properties": {
                        "token": token, "distinct_id": format!("kid-{}", id.len() * 7 % 13), "time": now_s(), "$insert_id": id}})).collect();
                    let r = c.post(format!("{url}/track")).header("content-type", "application/json").body(json!(batch).to_string()).send();
                    match r {
                        Ok(r) if r.status().as_u16() == 200 => {
                            if r.text().map(|t| t == "1").unwrap_or(false) {
                                acked.lock().unwrap().extend(ids);
                            }
                        }
                        _ => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(30..400)));
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.join().unwrap();
        }
    }
    let server = Server::start_with(&data, &["--config", config.to_str().unwrap()]);
    let acked = acked.lock().unwrap();
    assert!(
        acked.len() > cycles * 50,
        "too few acknowledged events ({}) to mean anything",
        acked.len()
    );
    verify(&server.url, &p.secret, &acked);
    server.stop();
    // After a graceful stop everything is in segments, and a restart replays nothing.
    let server = Server::start_with(&data, &["--config", config.to_str().unwrap()]);
    verify(&server.url, &p.secret, &acked);
    server.stop();
}

fn verify(url: &str, secret: &str, acked: &[String]) {
    let rows = export_all(url, secret);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        *seen
            .entry(r["properties"]["$insert_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let dupes: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dupes.is_empty(), "events present more than once: {dupes:?}");
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged events lost: {missing:?} (of {})",
        acked.len()
    );
}
