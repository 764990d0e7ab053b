//! A synthetic but realistic event stream for a kids & family app: families in the US, India
//! and the EU; parents and children on iOS, Android and the web; sessions of screens and
//! actions; ~50 event names whose frequencies follow a Zipf-like law. Deterministic per seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Event names, most frequent first (frequency ∝ 1/rank).
pub const EVENTS: [&str; 50] = [
    "Screen Viewed",
    "Video Played",
    "Video Paused",
    "Story Page Turned",
    "Game Level Started",
    "Game Level Completed",
    "Button Tapped",
    "Song Played",
    "Drawing Saved",
    "Puzzle Piece Placed",
    "Reward Earned",
    "Sticker Collected",
    "Story Started",
    "Story Finished",
    "Quiz Answered",
    "Avatar Customized",
    "Search Performed",
    "Video Completed",
    "Game Level Failed",
    "Badge Unlocked",
    "Bedtime Mode On",
    "Bedtime Mode Off",
    "Parental Gate Opened",
    "Parental Gate Passed",
    "Settings Changed",
    "Profile Switched",
    "Download Started",
    "Download Finished",
    "Offline Mode Used",
    "Timer Set",
    "Timer Finished",
    "Reading Streak Extended",
    "Favorite Added",
    "Favorite Removed",
    "Share Tapped",
    "Subscription Viewed",
    "Trial Started",
    "Subscription Started",
    "Subscription Cancelled",
    "Notification Opened",
    "App Rated",
    "Help Opened",
    "Child Profile Created",
    "Language Changed",
    "Audio Muted",
    "Audio Unmuted",
    "Screen Time Limit Reached",
    "Achievement Shared",
    "Feedback Sent",
    "Account Deleted",
];

const SCREENS: [&str; 12] = [
    "Home",
    "Stories",
    "Games",
    "Videos",
    "Music",
    "Drawing",
    "Rewards",
    "Profile",
    "Parents Area",
    "Settings",
    "Search",
    "Bedtime",
];
const REGIONS: [(&str, f64); 9] = [
    ("US", 0.45),
    ("IN", 0.35),
    ("DE", 0.05),
    ("FR", 0.04),
    ("ES", 0.03),
    ("IT", 0.03),
    ("NL", 0.02),
    ("IE", 0.015),
    ("PL", 0.015),
];
const PLATFORMS: [(&str, &str, f64); 3] = [
    ("iOS", "swift", 0.45),
    ("Android", "android", 0.45),
    ("Web", "web", 0.10),
];
const LANGS: [&str; 6] = ["en", "hi", "de", "fr", "es", "ta"];

struct User {
    id: String,
    device: String,
    country: &'static str,
    os: &'static str,
    lib: &'static str,
    app_version: &'static str,
    role: &'static str,
    activity: f64,
}

/// Generates `n` events over the `days` days before `now_ms`, in import format.
pub struct Generator {
    rng: StdRng,
    users: Vec<User>,
    weights: Vec<f64>,
    now_ms: i64,
    span_ms: i64,
    produced: u64,
    total: u64,
    session: Vec<Value>,
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [(T, f64)]) -> &'a T {
    let mut x = rng.random::<f64>() * items.iter().map(|i| i.1).sum::<f64>();
    for (v, w) in items {
        if x < *w {
            return v;
        }
        x -= w;
    }
    &items[items.len() - 1].0
}

impl Generator {
    pub fn new(seed: u64, total: u64, now_ms: i64, days: i64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let n_users = (total / 40).clamp(10, 2_000_000);
        let users = (0..n_users)
            .map(|i| {
                let (os, lib, _) = *pick(&mut rng, &PLATFORMS.map(|p| ((p.0, p.1, 0.0), p.2)));
                User {
                    id: format!("family-{i:07}"),
                    device: format!("{:016x}", rng.random::<u64>()),
                    country: pick::<&str>(&mut rng, &REGIONS),
                    os,
                    lib,
                    app_version: ["3.2.0", "3.3.1", "3.4.0"][rng.random_range(0..3)],
                    role: if rng.random_bool(0.7) {
                        "child"
                    } else {
                        "parent"
                    },
                    // Heavy-tailed activity: a few families use the app a lot.
                    activity: 1.0 / (1.0 - rng.random::<f64>() * 0.98),
                }
            })
            .collect();
        let weights = (1..=EVENTS.len()).map(|r| 1.0 / r as f64).collect();
        Self {
            rng,
            users,
            weights,
            now_ms,
            span_ms: days * 86_400_000,
            produced: 0,
            total,
            session: Vec::new(),
        }
    }

    fn pick_user(&mut self) -> usize {
        // Rejection-sample by activity so busy families produce more sessions.
        loop {
            let i = self.rng.random_range(0..self.users.len());
            if self.rng.random::<f64>() * 50.0 < self.users[i].activity {
                return i;
            }
        }
    }

    fn pick_event(&mut self) -> &'static str {
        let total: f64 = self.weights.iter().sum();
        let mut x = self.rng.random::<f64>() * total;
        for (i, w) in self.weights.iter().enumerate() {
            if x < *w {
                return EVENTS[i];
            }
            x -= w;
        }
        EVENTS[0]
    }

    fn make_session(&mut self) {
        let u = self.pick_user();
        let len = 3 + (self.rng.random::<f64>().powi(2) * 40.0) as usize;
        let start = self.now_ms - self.rng.random_range(0..self.span_ms.max(1));
        let session_id = format!("{:012x}", self.rng.random::<u64>() & 0xffff_ffff_ffff);
        let mut t = start;
        let mut screen = "Home";
        let mut out = Vec::with_capacity(len + 1);
        let user = &self.users[u];
        let base = json!({
            "distinct_id": user.id, "$device_id": user.device, "$user_id": user.id,
            "$os": user.os, "mp_lib": user.lib,
            "$app_version_string": user.app_version, "mp_country_code": user.country,
            "user_role": user.role, "session_id": session_id,
        });
        let (id, country) = (user.id.clone(), user.country);
        out.push(with(&base, "App Opened", t, &id, json!({"screen": "Home"})));
        for step in 0..len {
            t += self.rng.random_range(2_000..90_000);
            let name = self.pick_event();
            if name == "Screen Viewed" {
                screen = SCREENS[self.rng.random_range(0..SCREENS.len())];
            }
            let mut extra = json!({"screen": screen, "step": step});
            match name {
                "Video Played" | "Video Completed" | "Video Paused" => {
                    extra["video_id"] = json!(format!("v{}", self.rng.random_range(0..400)));
                    extra["duration_s"] = json!(self.rng.random_range(30..900));
                }
                "Game Level Started" | "Game Level Completed" | "Game Level Failed" => {
                    extra["level"] = json!(self.rng.random_range(1..60));
                    extra["score"] = json!(self.rng.random_range(0..10_000));
                }
                "Quiz Answered" => extra["correct"] = json!(self.rng.random_bool(0.7)),
                "Subscription Started" => {
                    extra["plan"] = json!(if country == "IN" {
                        "family_inr"
                    } else {
                        "family_usd"
                    });
                    extra["price"] = json!(if country == "IN" { 299.0 } else { 7.99 });
                }
                "Language Changed" => {
                    extra["language"] = json!(LANGS[self.rng.random_range(0..LANGS.len())])
                }
                _ => {}
            }
            out.push(with(&base, name, t.min(self.now_ms), &id, extra));
        }
        out.reverse();
        self.session = out;
    }
}

fn with(base: &Value, name: &str, t: i64, id: &str, extra: Value) -> Value {
    let mut p = base.clone();
    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            p.insert(k.clone(), v.clone());
        }
        p.insert("time".into(), json!(t));
        p.insert(
            "$insert_id".into(),
            json!(format!("{:x}-{}", t, id.len() + e.len())),
        );
    }
    json!({"event": name, "properties": p})
}

impl Generator {
    /// One `/engage` `$set` per user: plan, role, country, platform — what a kids & family
    /// app keeps on its profiles, so reports can break down by profile properties.
    pub fn profile_updates(&self, token: &str) -> Vec<Value> {
        self.users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let plan = match i % 10 {
                    0..=1 => "family",
                    2..=4 => "premium",
                    _ => "free",
                };
                json!({"$token": token, "$distinct_id": u.id, "$set": {
                    "plan": plan, "user_role": u.role, "country": u.country, "$os": u.os,
                    "app_version": u.app_version, "kids": 1 + (i % 3),
                }})
            })
            .collect()
    }
}

impl Iterator for Generator {
    type Item = Value;
    fn next(&mut self) -> Option<Value> {
        if self.produced >= self.total {
            return None;
        }
        if self.session.is_empty() {
            self.make_session();
        }
        self.produced += 1;
        let mut v = self.session.pop()?;
        // Make every insert id unique within the run.
        v["properties"]["$insert_id"] = json!(format!("g{}", self.produced));
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_zipf_like_and_international() {
        let a: Vec<Value> = Generator::new(7, 20_000, 1_763_000_000_000, 30).collect();
        let b: Vec<Value> = Generator::new(7, 20_000, 1_763_000_000_000, 30).collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 20_000);
        let count = |name: &str| a.iter().filter(|e| e["event"] == name).count();
        assert!(count("Screen Viewed") > count("Button Tapped") * 3);
        let names: std::collections::HashSet<_> =
            a.iter().map(|e| e["event"].as_str().unwrap()).collect();
        assert!(names.len() >= 45, "{}", names.len());
        for c in ["US", "IN", "DE"] {
            assert!(a.iter().any(|e| e["properties"]["mp_country_code"] == c));
        }
        assert!(
            a.iter()
                .all(|e| e["properties"]["time"].as_i64().unwrap() <= 1_763_000_000_000)
        );
    }
}
