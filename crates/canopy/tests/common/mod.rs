//! Test support: runs the real `canopy` binary on a free port against a temporary data dir.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_canopy");

pub struct Server {
    pub child: Child,
    pub url: String,
    pub data_dir: PathBuf,
}

pub fn key_file(data_dir: &Path) -> PathBuf {
    let mut s = data_dir.as_os_str().to_owned();
    s.push(".master.key");
    PathBuf::from(s)
}

impl Server {
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        Self::spawn(data_dir, extra, "warn", Stdio::inherit())
    }

    /// Runs with `log_level` and its log (stderr) written to `log`.
    pub fn start_logged(data_dir: &Path, log_level: &str, log: &Path) -> Server {
        Self::spawn(
            data_dir,
            &[],
            log_level,
            Stdio::from(std::fs::File::create(log).unwrap()),
        )
    }

    fn spawn(data_dir: &Path, extra: &[&str], log_level: &str, stderr: Stdio) -> Server {
        let child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", log_level)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn canopy");
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(60);
        let server_json = data_dir.join("server.json");
        let url = loop {
            assert!(Instant::now() < deadline, "server did not start");
            if let Ok(text) = std::fs::read_to_string(&server_json)
                && let Ok(v) = serde_json::from_str::<Value>(&text)
                && v["pid"].as_u64() == Some(u64::from(pid))
            {
                break v["url"].as_str().unwrap().to_string();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let s = Server {
            child,
            url,
            data_dir: data_dir.to_path_buf(),
        };
        while reqwest::blocking::get(format!("{}/readyz", s.url))
            .map(|r| r.status().as_u16())
            .ok()
            != Some(200)
        {
            assert!(Instant::now() < deadline, "server not ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: graceful shutdown.
    pub fn stop(mut self) {
        self.stop_in_place();
    }

    fn stop_in_place(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "server exited with {status}");
    }
}

impl Drop for Server {
    /// A failing test must not leave a server behind (it would hold the test's output pipe).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub struct Project {
    pub id: u64,
    pub token: String,
    pub secret: String,
}

pub fn create_project(data_dir: &Path, name: &str) -> Project {
    let out = Command::new(BIN)
        .args(["project", "create", name, "--json", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    Project {
        id: v["id"].as_u64().unwrap(),
        token: v["token"].as_str().unwrap().into(),
        secret: v["api_secret"].as_str().unwrap().into(),
    }
}

pub fn export_all(url: &str, secret: &str) -> Vec<Value> {
    let resp = reqwest::blocking::Client::new()
        .get(format!(
            "{url}/api/2.0/export?from_date=1971-01-01&to_date=2100-01-01"
        ))
        .basic_auth(secret, Some(""))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.text()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Sends one event (`props` with its distinct_id; token and time are added) to `/track` with
/// extra `headers`, and checks the SDK answer.
pub fn track_event(url: &str, token: &str, event: &str, props: Value, headers: &[(&str, &str)]) {
    let mut props = props;
    props["token"] = json!(token);
    props["time"] = json!(now_s());
    let body = json!([{"event": event, "properties": props}]);
    let mut req = reqwest::blocking::Client::new()
        .post(format!("{url}/track"))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    assert_eq!(req.send().unwrap().text().unwrap(), "1");
}

/// Imports `events` (Mixpanel `/import` objects) strictly, with the API secret.
pub fn import_events(url: &str, secret: &str, events: &[Value]) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/import?strict=1"))
        .basic_auth(secret, Some(""))
        .json(events)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap());
}

/// Reads the project's settings, lets `edit` change them, and puts them back.
pub fn put_settings(
    url: &str,
    secret: &str,
    edit: impl FnOnce(&mut Value),
) -> reqwest::blocking::Response {
    let c = reqwest::blocking::Client::new();
    let mut current: Value = c
        .get(format!("{url}/api/v1/settings"))
        .basic_auth(secret, Some(""))
        .send()
        .unwrap()
        .json()
        .unwrap();
    edit(&mut current["settings"]);
    c.put(format!("{url}/api/v1/settings"))
        .basic_auth(secret, Some(""))
        .json(&current["settings"])
        .send()
        .unwrap()
}

pub fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Every regular file under `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Builds `/import` events with numbered insert ids: `ev(name, time_ms, ids, extra)`, where
/// `ids` holds the identity properties ([`device_ids`], [`user_ids`]) and `extra` the rest.
pub fn numbered_events() -> impl FnMut(&str, i64, Value, Value) -> Value {
    let mut n = 0;
    move |name, t, ids, extra| {
        n += 1;
        let mut props = ids;
        props["time"] = json!(t);
        props["$insert_id"] = json!(format!("i{n}"));
        for (k, v) in extra.as_object().unwrap() {
            props[k] = v.clone();
        }
        json!({"event": name, "properties": props})
    }
}

/// An anonymous device's identity properties (simplified ID merge).
pub fn device_ids(d: &str) -> Value {
    json!({"distinct_id": format!("$device:{d}"), "$device_id": d})
}

/// A logged-in user's identity properties on device `d`.
pub fn user_ids(d: &str, u: &str) -> Value {
    json!({"distinct_id": u, "$device_id": d, "$user_id": u})
}

/// A number from the environment (a test's size knob), or `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A temporary data dir and a config file holding `toml`: (guard, data dir, config path).
pub fn data_dir_with_config(toml: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = dir.path().join("canopy.toml");
    std::fs::write(&config, toml).unwrap();
    (dir, data, config)
}
