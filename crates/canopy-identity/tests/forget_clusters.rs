//! Erasure of identities: a whole cluster (anonymous devices, the user id) is forgotten in
//! memory and on disk, and other people are untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_crypto::{MemoryKeyring, ProjectKeyring};
use canopy_identity::{IdentityStore, ResolveOptions};
use canopy_types::{Event, IdMergeMode, PersonKey, ProjectId};
use serde_json::json;
use std::sync::Arc;

const P: ProjectId = ProjectId(1);

fn ev(props: serde_json::Value) -> Event {
    Event {
        project: P,
        name: "Open".into(),
        time_ms: 0,
        distinct_id: String::new(),
        person: PersonKey::NONE,
        insert_id: String::new(),
        received_ms: 0,
        properties: props.as_object().cloned().unwrap_or_default(),
        ip: None,
    }
}

fn opts() -> ResolveOptions {
    ResolveOptions {
        mode: IdMergeMode::Simplified,
        allow_merge: false,
        replay: false,
    }
}

#[test]
fn a_forgotten_cluster_is_gone_after_reopen_and_others_stay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.db");
    let keys: Arc<dyn ProjectKeyring> = Arc::new(MemoryKeyring::default());
    let store = IdentityStore::open(&path, keys.clone()).unwrap();
    let mut events = vec![
        ev(json!({"$device_id": "dev-a"})),
        ev(json!({"$device_id": "dev-a", "$user_id": "erase-me"})),
        ev(json!({"$device_id": "dev-b", "$user_id": "erase-me"})),
        ev(json!({"$device_id": "dev-c", "$user_id": "keep-me"})),
    ];
    store.resolve_events(P, opts(), &mut events, 1).unwrap();
    let person = store.lookup(P, "erase-me").unwrap().unwrap();
    let kept = store.lookup(P, "keep-me").unwrap().unwrap();
    assert_eq!(store.cluster_keys(P, person).unwrap().len(), 3);
    assert_eq!(store.cluster_ids(P, person).unwrap()[0], "erase-me");

    let erased = store.forget_clusters(P, &[person.0]).unwrap();
    assert_eq!(erased.len(), 3);
    for id in ["erase-me", "$device:dev-a", "$device:dev-b"] {
        assert_eq!(store.lookup(P, id).unwrap(), None, "{id}");
    }
    assert_eq!(store.lookup(P, "keep-me").unwrap(), Some(kept));
    assert!(
        store
            .aliases(P)
            .unwrap()
            .keys()
            .all(|k| !erased.contains(k))
    );
    assert!(store.display_ids(P, &[person.0]).unwrap()[&person.0].is_empty());
    drop(store);

    let store = IdentityStore::open(&path, keys).unwrap();
    assert_eq!(store.lookup(P, "erase-me").unwrap(), None);
    assert_eq!(store.lookup(P, "$device:dev-b").unwrap(), None);
    assert_eq!(
        store.cluster_ids(P, kept).unwrap(),
        vec!["keep-me".to_string(), "$device:dev-c".to_string()]
    );
    // Forgetting an unknown person is a no-op.
    assert!(store.forget_clusters(P, &[person.0]).unwrap().is_empty());
}
