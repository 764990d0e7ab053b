//! Arbitrary sequences of identity events in both ID-merge modes: no panic, and every id keeps
//! resolving to a person whose own key resolves to itself (clusters stay well-formed).
#![no_main]
use canopy_identity::{IdentityStore, ResolveOptions};
use canopy_types::{Event, IdMergeMode, PersonKey, ProjectId};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let store = IdentityStore::in_memory(Arc::new(canopy_crypto::MemoryKeyring::default())).unwrap();
    let id = |b: u8| format!("id{}", b % 8);
    let mode = if data.first().is_some_and(|b| b & 1 == 1) { IdMergeMode::Original } else { IdMergeMode::Simplified };
    let mut seen = Vec::new();
    for c in data.chunks(3) {
        let [op, a, b] = c else { break };
        let (name, props) = match op % 6 {
            0 => ("$identify", json!({"$anon_distinct_id": format!("$device:{}", id(*b))})),
            1 => ("$create_alias", json!({"alias": id(*b)})),
            2 => ("$merge", json!({"$distinct_ids": [id(*a), id(*b)]})),
            3 => ("Play", json!({"$device_id": id(*b), "$user_id": id(*a)})),
            4 => ("Play", json!({"$device_id": id(*b)})),
            _ => ("Play", json!({})),
        };
        let mut events = vec![Event {
            project: ProjectId(1), name: name.into(), time_ms: 0, distinct_id: id(*a),
            person: PersonKey::NONE, insert_id: String::new(), received_ms: 0, ip: None,
            properties: props.as_object().cloned().unwrap_or_default(),
        }];
        let opts = ResolveOptions { mode, allow_merge: true, replay: false };
        store.resolve_events(ProjectId(1), opts, &mut events, 0).unwrap();
        seen.push(events[0].distinct_id.clone());
    }
    for raw in seen {
        let Some(p) = store.lookup(ProjectId(1), &raw).unwrap() else { continue };
        let ids = store.cluster_ids(ProjectId(1), p).unwrap();
        assert!(ids.len() <= canopy_identity::MAX_CLUSTER_IDS || mode == IdMergeMode::Simplified);
        for other in ids {
            assert_eq!(store.lookup(ProjectId(1), &other).unwrap(), Some(p));
        }
    }
});
