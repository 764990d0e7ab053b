use super::*;
use crate::posthog_event::{check_token, normalize_posthog};
use canopy_types::{ProfileTarget, Record};
use flate2::{Compression as Level, write::GzEncoder};
use std::io::Write;

const NOW: i64 = 1_763_000_000_000;

fn decode(query: &str, ct: Option<&str>, body: &[u8]) -> Result<PosthogRequest, Reason> {
    let parts = PosthogParts {
        query,
        content_type: ct,
        content_encoding: None,
        body,
        engage: false,
    };
    decode_posthog(parts, &Limits::default()).map_err(|r| r.reason)
}

fn gz(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Level::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn every_encoding_the_sdks_use_decodes_to_the_same_events() {
    let batch = json!({"api_key": "phc_x", "sent_at": "2025-11-13T02:13:20Z",
                       "batch": [{"event": "e", "distinct_id": "d"}]});
    let text = batch.to_string();
    let want = decode("", Some("application/json"), text.as_bytes()).unwrap();
    assert_eq!(want.token.as_deref(), Some("phc_x"));
    assert_eq!(want.sent_at_ms, Some(NOW));
    // gzip without a hint (magic bytes), gzip-js with one, base64, form data (`+` lost to a
    // space), lz64 form data, `?data=` and base64 of gzip.
    assert_eq!(
        decode("", Some("text/plain"), &gz(text.as_bytes())).unwrap(),
        want
    );
    assert_eq!(
        decode("compression=gzip-js&ver=1.2", None, &gz(text.as_bytes())).unwrap(),
        want
    );
    assert_eq!(
        decode("", None, b64(text.as_bytes()).as_bytes()).unwrap(),
        want
    );
    let form = format!("data={}", b64(text.as_bytes()).replace('+', " "));
    assert_eq!(
        decode(
            "",
            Some("application/x-www-form-urlencoded"),
            form.as_bytes()
        )
        .unwrap(),
        want
    );
    let lz = lz_str::compress_to_base64(&text);
    let form = format!("data={}&compression=lz64", lz.replace('+', "%2B"));
    assert_eq!(
        decode(
            "",
            Some("application/x-www-form-urlencoded"),
            form.as_bytes()
        )
        .unwrap(),
        want
    );
    let q = format!("data={}", b64(text.as_bytes()).replace('+', "%2B"));
    assert_eq!(decode(&q, None, b"").unwrap(), want);
    assert_eq!(
        decode("", None, b64(&gz(text.as_bytes())).as_bytes()).unwrap(),
        want
    );
}

#[test]
fn the_four_shapes() {
    let arr = decode(
        "",
        None,
        br#"[{"event":"a","properties":{"distinct_id":"d","token":"t"}}]"#,
    )
    .unwrap();
    assert_eq!((arr.token, arr.events.len()), (None, 1));
    let one = decode(
        "",
        None,
        br#"{"event":"a","distinct_id":"d","api_key":"t"}"#,
    )
    .unwrap();
    assert_eq!(one.events.len(), 1);
    let parts = PosthogParts {
        query: "",
        content_type: None,
        content_encoding: None,
        body: br#"{"distinct_id":"d","$set":{"a":1}}"#,
        engage: true,
    };
    let engage = decode_posthog(parts, &Limits::default()).unwrap();
    assert_eq!(engage.events[0]["event"], "$identify");
    assert_eq!(decode("", None, b"").unwrap_err(), Reason::NoData);
    assert_eq!(
        decode("", None, br#"{"batch":[]}"#).unwrap_err(),
        Reason::NoData
    );
    assert_eq!(decode("", None, b"{not json").unwrap_err(), Reason::BadJson);
    assert_eq!(
        decode("", None, b"\"text\"").unwrap_err(),
        Reason::NotAnObject
    );
    assert_eq!(
        decode("", None, &[0x1f, 0x8b, 0x08, 1, 2]).unwrap_err(),
        Reason::BadGzip
    );
}

#[test]
fn events_become_records_with_posthog_rules() {
    let ev = json!({"event": "$identify", "distinct_id": 42, "uuid": "0190-aa",
                    "timestamp": "2025-11-13T02:13:19Z",
                    "properties": {"$anon_distinct_id": "anon", "$device_id": "anon", "$ip": "1.2.3.4",
                                   "$groups": {"school": "oak"}, "token": "t"},
                    "$set": {"plan": "family"}, "$set_once": {}});
    let recs = normalize_posthog(ev, Some(NOW), NOW + 10_000, &Limits::default()).unwrap();
    let Record::Event(e) = &recs[0] else { panic!() };
    assert_eq!(e.distinct_id, "42");
    assert_eq!(e.insert_id, "0190-aa");
    assert_eq!(e.time_ms, NOW + 10_000 - 1000);
    assert_eq!(e.properties["school"], "oak");
    assert_eq!(e.properties["$anon_distinct_id"], "anon");
    for gone in ["$device_id", "$ip", "token"] {
        assert!(!e.properties.contains_key(gone), "{gone}");
    }
    let Record::Profile(p) = &recs[1] else {
        panic!()
    };
    assert_eq!(
        (p.operation.as_str(), &p.value),
        ("$set", &json!({"plan": "family"}))
    );
    assert_eq!(recs.len(), 2);
    // offset wins; the far future is clamped to now.
    let r = normalize_posthog(
        json!({"event": "x", "distinct_id": "d", "offset": 500}),
        None,
        NOW,
        &Limits::default(),
    )
    .unwrap();
    let Record::Event(e) = &r[0] else { panic!() };
    assert_eq!(e.time_ms, NOW - 500);
    let r = normalize_posthog(
        json!({"event": "x", "distinct_id": "d", "timestamp": "2099-01-01T00:00:00Z"}),
        None,
        NOW,
        &Limits::default(),
    )
    .unwrap();
    let Record::Event(e) = &r[0] else { panic!() };
    assert_eq!(e.time_ms, NOW);
    let g = normalize_posthog(
        json!({"event": "$groupidentify", "distinct_id": "d",
        "properties": {"$group_type": "school", "$group_key": "oak", "$group_set": {"size": 30}}}),
        None,
        NOW,
        &Limits::default(),
    )
    .unwrap();
    let [Record::Profile(g)] = g.as_slice() else {
        panic!()
    };
    assert_eq!(
        g.target,
        ProfileTarget::Group {
            group_key: "school".into(),
            group_id: "oak".into()
        }
    );
    assert!(
        normalize_posthog(
            json!({"event": "$performance_event", "distinct_id": "d"}),
            None,
            NOW,
            &Limits::default()
        )
        .unwrap()
        .is_empty()
    );
}

#[test]
fn bad_events_and_keys_are_refused() {
    let l = Limits::default();
    let reason = |v: Value| normalize_posthog(v, None, NOW, &l).unwrap_err().reason;
    assert_eq!(
        reason(json!({"distinct_id": "d"})),
        Reason::MissingEventName
    );
    assert_eq!(
        reason(json!({"event": "e", "distinct_id": ""})),
        Reason::MissingDistinctId
    );
    assert_eq!(reason(json!({"event": "e"})), Reason::MissingDistinctId);
    assert_eq!(reason(json!([1])), Reason::NotAnObject);
    assert_eq!(
        check_token("phx_personal").unwrap_err().reason,
        Reason::InvalidToken
    );
    assert_eq!(
        check_token(&"x".repeat(65)).unwrap_err().reason,
        Reason::InvalidToken
    );
    assert_eq!(check_token(" phc_ok ").unwrap(), "phc_ok");
}

proptest::proptest! {
    #[test]
    fn any_bytes_decode_without_panicking(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
                                          form in proptest::bool::ANY) {
        let ct = form.then_some("application/x-www-form-urlencoded");
        if let Ok(req) = decode("compression=lz64", ct, &body) {
            for e in req.events {
                let _ = normalize_posthog(e, req.sent_at_ms, NOW, &Limits::default());
            }
        }
        let _ = decode("", ct, &body);
    }
}
