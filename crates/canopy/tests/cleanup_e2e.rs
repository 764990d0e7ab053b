//! Data clean-up against the real binary: a dry run counts, the deletion removes exactly those
//! events (by name, date range and `where`), from segments and the WAL tail alike; bad requests
//! get a clear 400.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, create_project, export_all, import_events};
use serde_json::{Value, json};

const DAY: i64 = 86_400;
const T0: i64 = 1_785_542_400; // 2026-08-01

#[test]
fn clean_up_dry_run_then_delete_by_name_dates_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data, "cleanup");
    let server = Server::start(&data);
    let url = server.url.clone();
    let event = |name: &str, day: i64, i: i64, amount: i64| {
        json!({"event": name, "properties": {"distinct_id": format!("u{}", i % 5), "time": T0 + day * DAY + i,
            "$insert_id": format!("{}-{day}-{i}", name.replace(' ', "-")), "amount": amount}})
    };
    let mut batch = Vec::new();
    for day in 0..4 {
        for i in 0..10 {
            batch.push(event("Purchase", day, i, i * 10));
            batch.push(event("Test Event", day, i, 0));
        }
    }
    import_events(&url, &p.secret, &batch[..40]);
    server.stop();
    let server = Server::start(&data); // the first half is now in segments
    let url = server.url.clone();
    import_events(&url, &p.secret, &batch[40..]);

    let c = reqwest::blocking::Client::new();
    let post = |body: Value| {
        let r = c
            .post(format!("{url}/api/v1/data/deletions"))
            .basic_auth(&p.secret, Some(""))
            .json(&body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    // Every "Test Event", plus purchases of 50 or more on days 1–2.
    let (s, dry) =
        post(json!({"events": ["Test Event"], "from_date": "2026-08-01", "to_date": "2026-08-04"}));
    assert_eq!(
        (s, dry["dry_run"].clone(), dry["matching_events"].clone()),
        (200, json!(true), json!(40))
    );
    assert_eq!(
        export_all(&url, &p.secret).len(),
        80,
        "a dry run deletes nothing"
    );
    let (s, done) = post(
        json!({"events": ["Test Event"], "from_date": "2026-08-01", "to_date": "2026-08-04", "dry_run": false}),
    );
    assert_eq!((s, done["deleted_events"].clone()), (200, json!(40)));
    let (_, dry) = post(
        json!({"events": ["Purchase"], "from_date": "2026-08-02", "to_date": "2026-08-03",
                               "where": "properties[\"amount\"] >= 50"}),
    );
    assert_eq!(dry["matching_events"], 10);
    let (_, done) = post(
        json!({"events": ["Purchase"], "from_date": "2026-08-02", "to_date": "2026-08-03",
                                "where": "properties[\"amount\"] >= 50", "dry_run": false}),
    );
    assert_eq!(done["deleted_events"], 10);
    let left = export_all(&url, &p.secret);
    assert_eq!(left.len(), 30);
    assert!(left.iter().all(|r| r["event"] == "Purchase"));
    // Bad requests: no filter at all, a bad expression, reversed dates, an unknown field.
    for body in [
        json!({"from_date": "2026-08-01", "to_date": "2026-08-04"}),
        json!({"where": "properties[\"amount\" >=", "from_date": "2026-08-01", "to_date": "2026-08-04"}),
        json!({"events": ["Purchase"], "from_date": "2026-08-04", "to_date": "2026-08-01"}),
        json!({"events": ["Purchase"], "from_date": "2026-08-01", "to_date": "2026-08-04", "everything": true}),
    ] {
        let (s, e) = post(body);
        assert_eq!(s, 400, "{e}");
        assert!(e["error"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(export_all(&url, &p.secret).len(), 30);
    server.stop();
}
