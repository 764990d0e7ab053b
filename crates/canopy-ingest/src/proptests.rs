//! Property tests: no input makes a decoder panic, and valid payloads round-trip through every
//! encoding.

use crate::{
    Endpoint, EventContext, Limits, ProfileKind, RequestParts, decode_payload, normalize_event,
    normalize_profile,
};
use base64::Engine;
use proptest::prelude::*;
use serde_json::{Value, json};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(query in ".{0,64}", ct in prop::option::of("[a-z/;=-]{0,40}"),
                                   gz in any::<bool>(), body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_payload(RequestParts {
            query: &query,
            content_type: ct.as_deref(),
            content_encoding: gz.then_some("gzip"),
            body: &body,
        }, &Limits::default());
    }

    #[test]
    fn arbitrary_json_items_never_panic(v in arb_json()) {
        let limits = Limits::default();
        for endpoint in [Endpoint::Track, Endpoint::Import { strict: true }, Endpoint::Import { strict: false }] {
            let ctx = EventContext { endpoint, now_ms: 1_763_800_000_000, track_max_age_ms: 432_000_000, limits: &limits };
            let _ = normalize_event(v.clone(), &ctx);
            let _ = normalize_event(json!({"event": "e", "properties": v.clone()}), &ctx);
        }
        let _ = normalize_profile(v.clone(), ProfileKind::User, 0, &limits);
        let _ = normalize_profile(json!({"$distinct_id": "u", "$set": v}), ProfileKind::Group, 0, &limits);
    }

    #[test]
    fn base64_and_json_encodings_agree(props in prop::collection::btree_map("[a-z]{1,8}", arb_json(), 0..6)) {
        let items = json!([{"event": "e", "properties": props}]);
        let text = items.to_string();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&text);
        let limits = Limits::default();
        let a = decode_payload(RequestParts { query: "", content_type: Some("application/json"), content_encoding: None, body: text.as_bytes() }, &limits);
        let body = format!("data={b64}");
        let b = decode_payload(RequestParts { query: "", content_type: Some("application/x-www-form-urlencoded"), content_encoding: None, body: body.as_bytes() }, &limits);
        prop_assert_eq!(a.items.ok(), b.items.ok());
    }
}
