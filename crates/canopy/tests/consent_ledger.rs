//! The consent ledger end to end: an opt-in jurisdiction keeps nothing until the SDK records a
//! grant with the reserved `$consent` event; a withdrawal through the API stops the next
//! request; the ledger keeps every row, without the raw id.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, create_project, export_all, put_settings, track_event};
use serde_json::{Value, json};

fn track(url: &str, token: &str, event: &str, props: Value) {
    let mut props = props;
    props["distinct_id"] = json!("berlin-kid");
    props["mp_country_code"] = json!("DE");
    track_event(url, token, event, props, &[]);
}

fn events(url: &str, secret: &str) -> Vec<String> {
    export_all(url, secret)
        .iter()
        .map(|r| r["event"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn consent_gates_opt_in_jurisdictions_and_withdrawal_stops_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let p = create_project(&data, "kids");
    let server = Server::start(&data);
    let u = server.url.clone();
    let c = reqwest::blocking::Client::new();
    let r = put_settings(&u, &p.secret, |s| {
        s["privacy"]["consent_required"] = json!({"DE": ["analytics"]});
    });
    assert!(r.status().is_success());

    track(&u, &p.token, "Before Consent", json!({}));
    assert!(events(&u, &p.secret).is_empty());
    track(
        &u,
        &p.token,
        "$consent",
        json!({"scope": "analytics", "granted": true,
        "method": "email_plus", "notice_version": "2026-11", "evidence_hash": "sha256:ab12"}),
    );
    track(&u, &p.token, "After Consent", json!({}));
    assert_eq!(
        events(&u, &p.secret),
        ["After Consent"],
        "the $consent record is not an event"
    );

    let r = c
        .post(format!("{u}/api/v1/consent"))
        .basic_auth(&p.secret, Some(""))
        .json(&json!({"distinct_id": "berlin-kid", "scopes": ["analytics"], "granted": false, "method": "settings_page"}))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    track(&u, &p.token, "After Withdrawal", json!({}));
    assert_eq!(events(&u, &p.secret), ["After Consent"]);

    let ledger: Value = c
        .get(format!("{u}/api/v1/consent?distinct_id=berlin-kid"))
        .basic_auth(&p.secret, Some(""))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let rows = ledger["records"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0]["granted"].as_bool(), rows[0]["source"].as_str()),
        (Some(true), Some("event"))
    );
    assert_eq!(
        (rows[1]["granted"].as_bool(), rows[1]["method"].as_str()),
        (Some(false), Some("settings_page"))
    );
    assert!(!ledger.to_string().contains("berlin-kid"));
    assert_eq!(rows[1]["verifiable_parental_consent"], false);

    // Verifiable parental consent (COPPA 312.5(b)(2)) is marked; unknown methods are refused.
    let post = |method: &str| {
        c.post(format!("{u}/api/v1/consent"))
            .basic_auth(&p.secret, Some(""))
            .json(&json!({"distinct_id": "kid-9", "scopes": ["analytics"], "granted": true, "method": method}))
            .send()
            .unwrap()
    };
    let bad = post("a wink");
    assert_eq!(bad.status(), 400);
    assert!(bad.text().unwrap().contains("signed_form"));
    assert!(post("signed_form").status().is_success());
    let ledger: Value = c
        .get(format!("{u}/api/v1/consent?distinct_id=kid-9"))
        .basic_auth(&p.secret, Some(""))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ledger["records"][0]["verifiable_parental_consent"], true);
    server.stop();
}
