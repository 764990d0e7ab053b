use super::*;
use canopy_types::{ProfileTarget, Record};
use serde_json::json;

const NOW: i64 = 1_763_000_000_000;

fn run(msg: Value, mode: IdMergeMode) -> Result<Vec<Record>, Reason> {
    normalize_segment(msg, mode, None, NOW, &Limits::default()).map_err(|r| r.reason)
}

#[test]
fn a_python_batch_becomes_events_with_context_defaults() {
    let body = json!({
        "writeKey": "wk", "sentAt": "2025-11-13T02:13:20.000Z",
        "context": {"library": {"name": "analytics-python", "version": "2.3.4"}},
        "batch": [{"type": "track", "event": "Lesson Done", "anonymousId": "a-1",
                   "messageId": "m-1", "timestamp": "2025-11-13T02:13:19.000Z",
                   "properties": {"lesson": 3}}]
    });
    let req = decode_segment(body.to_string().as_bytes(), None, &Limits::default()).unwrap();
    assert_eq!(req.write_key.as_deref(), Some("wk"));
    assert_eq!(req.sent_at_ms, Some(NOW));
    let msg = req.messages.into_iter().next().unwrap();
    let recs = normalize_segment(
        msg,
        IdMergeMode::Simplified,
        req.sent_at_ms,
        NOW + 5000,
        &Limits::default(),
    )
    .unwrap();
    let [Record::Event(e)] = recs.as_slice() else {
        panic!("{recs:?}")
    };
    assert_eq!(e.name, "Lesson Done");
    assert_eq!(e.distinct_id, "$device:a-1");
    assert_eq!(e.insert_id, "m-1");
    // Sent one second after it happened, received five seconds after sentAt: skew corrected.
    assert_eq!(e.time_ms, NOW + 5000 - 1000);
    assert_eq!(e.properties["mp_lib"], "analytics-python");
    assert_eq!(e.properties["$device_id"], "a-1");
    assert_eq!(e.properties["lesson"], 3);
}

#[test]
fn identify_merges_and_sets_traits_per_mode() {
    let msg = json!({"type": "identify", "userId": "u1", "anonymousId": "0b8f7c2e-6f7b-4a43-9d1e-3a2f1c0d9e8b",
                     "traits": {"email": "p@example.com", "plan": "family"}});
    let recs = run(msg.clone(), IdMergeMode::Original).unwrap();
    let Record::Event(e) = &recs[0] else { panic!() };
    assert_eq!(
        (e.name.as_str(), e.distinct_id.as_str()),
        ("$identify", "u1")
    );
    assert_eq!(
        e.properties["$anon_distinct_id"],
        "0b8f7c2e-6f7b-4a43-9d1e-3a2f1c0d9e8b"
    );
    let Record::Profile(p) = &recs[1] else {
        panic!()
    };
    assert_eq!(p.operation, "$set");
    assert_eq!(
        p.value,
        json!({"$email": "p@example.com", "plan": "family"})
    );
    let recs = run(msg, IdMergeMode::Simplified).unwrap();
    let Record::Event(e) = &recs[0] else { panic!() };
    assert_eq!(e.properties["$user_id"], "u1");
    assert!(e.properties.contains_key("$device_id"));
    // Server-side identify without an anonymous id: traits only.
    let recs = run(
        json!({"type": "identify", "userId": "u1", "traits": {"a": 1}}),
        IdMergeMode::Original,
    )
    .unwrap();
    assert!(matches!(recs.as_slice(), [Record::Profile(_)]));
}

#[test]
fn alias_and_group_map_onto_mixpanel_calls() {
    let alias = json!({"type": "alias", "previousId": "anon-9", "userId": "u9"});
    let recs = run(alias.clone(), IdMergeMode::Original).unwrap();
    let Record::Event(e) = &recs[0] else { panic!() };
    assert_eq!(
        (e.name.as_str(), e.distinct_id.as_str()),
        ("$create_alias", "anon-9")
    );
    assert_eq!(e.properties["alias"], "u9");
    let recs = run(alias, IdMergeMode::Simplified).unwrap();
    let Record::Event(e) = &recs[0] else { panic!() };
    assert_eq!(e.name, "$identify");
    let recs = run(
        json!({"type": "group", "userId": "u9", "groupId": "school-4", "traits": {"name": "Oak"}}),
        IdMergeMode::Simplified,
    )
    .unwrap();
    let [Record::Profile(g), Record::Profile(u)] = recs.as_slice() else {
        panic!("{recs:?}")
    };
    assert_eq!(
        g.target,
        ProfileTarget::Group {
            group_key: "group_id".into(),
            group_id: "school-4".into()
        }
    );
    assert_eq!(u.operation, "$union");
}

#[test]
fn bad_messages_are_refused_with_their_reason() {
    let m = IdMergeMode::Simplified;
    assert_eq!(
        run(json!({"type": "track", "event": "x"}), m).unwrap_err(),
        Reason::MissingDistinctId
    );
    assert_eq!(
        run(json!({"type": "track", "userId": "u"}), m).unwrap_err(),
        Reason::MissingEventName
    );
    assert_eq!(
        run(json!({"type": "explode", "userId": "u"}), m).unwrap_err(),
        Reason::UnsupportedType
    );
    assert_eq!(
        run(json!({"type": "group", "userId": "u"}), m).unwrap_err(),
        Reason::MissingGroup
    );
    assert_eq!(
        run(json!({"type": "alias", "userId": "u"}), m).unwrap_err(),
        Reason::MissingDistinctId
    );
    assert_eq!(run(json!(7), m).unwrap_err(), Reason::NotAnObject);
    let long = "x".repeat(101);
    assert_eq!(
        run(
            json!({"type": "track", "event": "e", "userId": "u", "messageId": long}),
            m
        )
        .unwrap_err(),
        Reason::InvalidInsertId
    );
    let l = Limits::default();
    let big = json!({"type": "track", "userId": "u", "event": "e", "properties": {"p": "x".repeat(40_000)}});
    assert_eq!(
        decode_segment(big.to_string().as_bytes(), Some("track"), &l)
            .unwrap_err()
            .reason,
        Reason::BodyTooLarge
    );
    let many = json!({"batch": vec![json!({}); 2501]});
    assert_eq!(
        decode_segment(many.to_string().as_bytes(), None, &l)
            .unwrap_err()
            .reason,
        Reason::TooManyItems
    );
    assert_eq!(
        decode_segment(b"{nope", None, &l).unwrap_err().reason,
        Reason::BadJson
    );
    assert_eq!(
        decode_segment(b"{}", None, &l).unwrap_err().reason,
        Reason::NoData
    );
}

proptest::proptest! {
    #[test]
    fn any_bytes_decode_without_panicking(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let l = Limits::default();
        if let Ok(req) = decode_segment(&body, None, &l) {
            for m in req.messages {
                let _ = normalize_segment(m, IdMergeMode::Original, req.sent_at_ms, NOW, &l);
            }
        }
    }

    #[test]
    fn any_message_normalizes_or_is_refused(user in ".{0,12}", event in ".{0,12}", t in proptest::option::of(0i64..4_000_000_000_000)) {
        let msg = json!({"type": "track", "userId": user, "event": event, "timestamp": t, "properties": {"k": event}});
        let _ = run(msg, IdMergeMode::Simplified);
    }
}
