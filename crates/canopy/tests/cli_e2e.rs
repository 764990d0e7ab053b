//! The CLI against a data dir with and without a running server: project create/list --json,
//! import (resumable after kill -9), export --json.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{BIN, Server, create_project, files_under};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn write_events(path: &std::path::Path, n: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let e = json!({"event": "Song Played", "properties": {"time": 1_700_000_000 + i as i64, "distinct_id": format!("kid-{}", i % 97),
            "$insert_id": format!("line-{i}"), "song": "Baby Shark", "n": i}});
        writeln!(f, "{e}").unwrap();
    }
}

fn run_json(args: &[&str]) -> Value {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn import_resumes_after_kill_and_export_matches_with_or_without_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let d = data.to_str().unwrap();
    let p = create_project(&data, "cli");
    let list = run_json(&["project", "list", "--json", "--data-dir", d]);
    assert_eq!(list[0]["id"], p.id);
    assert!(
        list[0].get("api_secret").is_none(),
        "secrets are never listed"
    );

    let file = dir.path().join("events.ndjson");
    let n = 120_000;
    write_events(&file, n);
    let f = file.to_str().unwrap();
    let project = p.id.to_string();

    // Start an import, kill it once progress has been recorded, then resume.
    let mut child = Command::new(BIN)
        .args([
            "import",
            f,
            "--project",
            &project,
            "--json",
            "--data-dir",
            d,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let progressed = files_under(&data.join("imports"))
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "json"));
        if progressed {
            break;
        }
        assert!(Instant::now() < deadline, "import made no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "import finished before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let summary = run_json(&[
        "import",
        f,
        "--project",
        &project,
        "--json",
        "--data-dir",
        d,
    ]);
    assert!(
        summary["resumed_from_line"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert_eq!(summary["lines"], n as u64);

    // Export without a server (an embedded one starts for the command).
    let out1 = dir.path().join("out1.ndjson");
    let s1 = run_json(&[
        "export",
        "--project",
        &project,
        "--from-date",
        "2023-01-01",
        "--out",
        out1.to_str().unwrap(),
        "--json",
        "--data-dir",
        d,
    ]);
    assert_eq!(
        s1["events"], n as u64,
        "every line once, despite the replayed batch"
    );

    // With a server running: import again (all duplicates) and export through it.
    let server = Server::start(&data);
    let again = run_json(&[
        "import",
        f,
        "--project",
        &project,
        "--json",
        "--data-dir",
        d,
        "--restart",
    ]);
    assert_eq!(again["lines"], n as u64);
    let out2 = dir.path().join("out2.ndjson");
    let s2 = run_json(&[
        "export",
        "--project",
        &project,
        "--from-date",
        "2023-01-01",
        "--out",
        out2.to_str().unwrap(),
        "--json",
        "--data-dir",
        d,
    ]);
    assert_eq!(s2["events"], n as u64);
    let first: Value = serde_json::from_str(
        std::fs::read_to_string(&out2)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["properties"]["song"], "Baby Shark");
    server.stop();
}
