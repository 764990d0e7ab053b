//! Properties of the three parsers: valid bodies mean what they say, nothing panics, and no
//! error message repeats anything the body held.
#![allow(clippy::unwrap_used)]

use crate::{Kind, mixpanel_gdpr, native, opendsr};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Identifier-like strings, marked so a leak into a message is recognisable.
fn canary() -> impl Strategy<Value = String> {
    "[a-z0-9@._+-]{1,12}".prop_map(|s| format!("cnry{s}"))
}

/// Keys a body may carry: every field the parsers know, and others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("distinct_ids".to_string()),
        Just("regulation".to_string()),
        Just("suppress".to_string()),
        Just("submitted_time".to_string()),
        Just("request_id".to_string()),
        Just("compliance_type".to_string()),
        Just("subject_request_id".to_string()),
        Just("subject_request_type".to_string()),
        Just("subject_identities".to_string()),
        Just("identity_type".to_string()),
        Just("identity_value".to_string()),
        Just("identity_format".to_string()),
        Just("status_callback_urls".to_string()),
        canary(),
    ]
}

/// Any JSON whose strings are all canaries (keys too, sometimes).
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        canary().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_parser_panics_or_repeats_the_body_in_an_error(body in any_json()) {
        let bytes = serde_json::to_vec(&body).unwrap();
        let results = [
            native(&bytes, Kind::Erasure),
            native(&bytes, Kind::Access),
            mixpanel_gdpr(&bytes),
            opendsr(&bytes),
        ];
        for r in results {
            if let Err(e) = r {
                prop_assert!(!e.message.contains("cnry"), "{}", e.message);
                prop_assert!(!e.reason.is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_are_refused_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = native(&bytes, Kind::Erasure);
        let _ = mixpanel_gdpr(&bytes);
        let _ = opendsr(&bytes);
    }

    #[test]
    fn a_valid_native_body_means_what_it_says(
        ids in prop::collection::vec(canary(), 0..5),
        regulation in prop::option::of(prop_oneof![Just("gdpr"), Just("ccpa"), Just("dpdp")]),
        suppress in prop::option::of(any::<bool>()),
        request_id in prop::option::of(canary()),
        secs in prop::option::of(0i64..4_000_000_000),
    ) {
        let mut body = json!({"distinct_ids": ids});
        if let Some(r) = regulation { body["regulation"] = json!(r); }
        if let Some(s) = suppress { body["suppress"] = json!(s); }
        if let Some(id) = &request_id { body["request_id"] = json!(id); }
        if let Some(s) = secs {
            let t = chrono::DateTime::<chrono::Utc>::from_timestamp(s, 0).unwrap();
            body["submitted_time"] = json!(t.to_rfc3339());
        }
        let bytes = serde_json::to_vec(&body).unwrap();
        let w = native(&bytes, Kind::Erasure).unwrap();
        prop_assert_eq!(&w.raw_ids, &ids);
        prop_assert_eq!(w.regulation.as_deref(), regulation);
        prop_assert_eq!(w.suppress, suppress);
        prop_assert_eq!(&w.request_id, &request_id);
        prop_assert_eq!(w.submitted_ms, secs.map(|s| s * 1000));
        // Access requests take everything but `suppress`.
        prop_assert_eq!(native(&bytes, Kind::Access).is_ok(), suppress.is_none());
    }

    #[test]
    fn a_valid_opendsr_body_means_what_it_says(
        raw in prop::collection::vec(canary(), 0..3),
        digests in prop::collection::vec("[0-9a-fA-F]{64}", 0..3),
        kind in prop_oneof![Just("erasure"), Just("access"), Just("portability")],
        ccpa in any::<bool>(),
        callbacks in prop::collection::vec("https://[a-z]{1,8}\\.example/cb", 0..3),
    ) {
        prop_assume!(!raw.is_empty() || !digests.is_empty());
        let mut identities: Vec<Value> = raw.iter().map(|v| json!({
            "identity_type": "controller_customer_id", "identity_value": v, "identity_format": "raw"})).collect();
        identities.extend(digests.iter().map(|d| json!({
            "identity_type": "controller_customer_id", "identity_value": d, "identity_format": "sha256"})));
        let id = "A0B1C2D3-E4F5-4A6B-8C7D-9E0F1A2B3C4D";
        let body = json!({
            "subject_request_id": id, "subject_request_type": kind,
            "regulation": if ccpa { "ccpa" } else { "gdpr" },
            "submitted_time": "2026-11-20T10:00:00Z", "subject_identities": identities,
            "status_callback_urls": callbacks,
        });
        let w = opendsr(&serde_json::to_vec(&body).unwrap()).unwrap();
        prop_assert_eq!(w.kind, Some(if kind == "erasure" { Kind::Erasure } else { Kind::Access }));
        let lower_id = id.to_ascii_lowercase();
        prop_assert_eq!(w.request_id.as_deref(), Some(lower_id.as_str()));
        prop_assert_eq!(&w.raw_ids, &raw);
        let lower: Vec<String> = digests.iter().map(|d| d.to_ascii_lowercase()).collect();
        prop_assert_eq!(&w.sha256_ids, &lower);
        prop_assert_eq!(&w.callbacks, &callbacks);
        prop_assert_eq!(w.submitted_ms, Some(1_795_168_800_000));
        prop_assert_eq!(w.suppress, Some(kind == "erasure"));
    }
}

#[test]
fn mixpanel_bodies_and_their_mistakes() {
    let w = mixpanel_gdpr(br#"{"distinct_ids": ["a", "b"], "compliance_type": "Ccpa", "x": 1}"#)
        .unwrap();
    assert_eq!(w.raw_ids, ["a", "b"]);
    assert_eq!(w.regulation.as_deref(), Some("ccpa"));
    assert_eq!(
        mixpanel_gdpr(br#"{"distinct_ids": ["a"]}"#)
            .unwrap()
            .regulation
            .as_deref(),
        Some("gdpr")
    );
    for (body, reason) in [
        (&br#"{"distinct_ids": "a"}"#[..], "invalid_distinct_ids"),
        (br#"{"distinct_ids": [1]}"#, "invalid_distinct_ids"),
        (br#"{}"#, "invalid_distinct_ids"),
        (
            br#"{"distinct_ids": ["a"], "compliance_type": "LGPD"}"#,
            "invalid_regulation",
        ),
        (br#"[1]"#, "invalid_json"),
        (br#"{"#, "invalid_json"),
    ] {
        assert_eq!(mixpanel_gdpr(body).unwrap_err().reason, reason);
    }
}

#[test]
fn regression_a_refused_native_body_never_quotes_a_value() {
    let e = native(
        br#"{"distinct_ids": ["a"], "alice@example.com": 1}"#,
        Kind::Erasure,
    )
    .unwrap_err();
    assert!(!e.message.contains("alice"), "{}", e.message);
    assert!(e.message.contains("distinct_ids, regulation"));
    let e = native(
        br#"{"distinct_ids": ["a"], "suppress": "alice@example.com"}"#,
        Kind::Erasure,
    )
    .unwrap_err();
    assert_eq!(e.message, "suppress must be true or false");
    let e = native(br#"{"regulation": "gdpr"}"#, Kind::Erasure).unwrap_err();
    assert_eq!(e.message, "distinct_ids is required");
    let e = native(
        br#"{"distinct_ids": ["a"], "submitted_time": "yesterday"}"#,
        Kind::Access,
    )
    .unwrap_err();
    assert_eq!(e.message, "submitted_time must be an RFC 3339 time");
}
