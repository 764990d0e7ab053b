//! Many clients merging and tracking at once end in the same clusters as one client sending
//! everything in order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use canopy_crypto::MemoryKeyring;
use canopy_identity::{IdentityStore, ResolveOptions};
use canopy_types::{Event, IdMergeMode, PersonKey, ProjectId};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

const CLIENTS: usize = 8;
const USERS: usize = 40;
const P: ProjectId = ProjectId(1);

fn ev(name: &str, distinct_id: &str, props: Value) -> Event {
    Event {
        project: P,
        name: name.into(),
        time_ms: 0,
        distinct_id: distinct_id.into(),
        person: PersonKey::NONE,
        insert_id: String::new(),
        received_ms: 0,
        properties: props.as_object().cloned().unwrap_or_default(),
        ip: None,
    }
}

/// What client `c` sends, in its own order, and every raw id it mentions.
fn script(c: usize, mode: IdMergeMode) -> (Vec<Event>, Vec<String>) {
    let mut out = Vec::new();
    let mut ids = Vec::new();
    for j in 0..USERS {
        let user = format!("user-{c}-{j}");
        let device = format!("{c:08x}-0000-4000-8000-{j:012x}");
        match mode {
            IdMergeMode::Original => {
                let alias = format!("alias-{c}-{j}");
                let next = format!("user-{}-{j}", (c + 1) % CLIENTS);
                out.push(ev("App Open", &device, json!({})));
                out.push(ev("$identify", &user, json!({"$anon_distinct_id": device})));
                out.push(ev("$create_alias", &user, json!({"alias": alias})));
                out.push(ev("Play", &alias, json!({})));
                // Clusters of neighbouring clients join: the order decides nothing.
                if j % 5 == 0 {
                    out.push(ev("$merge", "", json!({"$distinct_ids": [user, next]})));
                }
                ids.extend([user, device, alias]);
            }
            IdMergeMode::Simplified => {
                let second = format!("tablet-{c}-{j}");
                out.push(ev("App Open", "", json!({"$device_id": device})));
                out.push(ev(
                    "Login",
                    "",
                    json!({"$device_id": device, "$user_id": user}),
                ));
                out.push(ev("Play", "", json!({"$device_id": second})));
                out.push(ev(
                    "Login",
                    "",
                    json!({"$device_id": second, "$user_id": user}),
                ));
                ids.extend([
                    user,
                    format!("$device:{device}"),
                    format!("$device:{second}"),
                ]);
            }
        }
    }
    (out, ids)
}

fn clusters(store: &IdentityStore, ids: &[String]) -> BTreeSet<BTreeSet<String>> {
    let mut by_person: HashMap<PersonKey, BTreeSet<String>> = HashMap::new();
    for id in ids {
        let p = store.lookup(P, id).unwrap().expect("every id was seen");
        by_person.entry(p).or_default().insert(id.clone());
    }
    by_person.into_values().collect()
}

fn run(mode: IdMergeMode) {
    let opts = ResolveOptions {
        mode,
        allow_merge: true,
        replay: false,
    };
    let scripts: Vec<(Vec<Event>, Vec<String>)> = (0..CLIENTS).map(|c| script(c, mode)).collect();
    let all_ids: Vec<String> = scripts.iter().flat_map(|(_, ids)| ids.clone()).collect();

    let sequential = IdentityStore::in_memory(Arc::new(MemoryKeyring::default())).unwrap();
    for (events, _) in &scripts {
        for e in events {
            sequential
                .resolve_events(P, opts, &mut [e.clone()], 0)
                .unwrap();
        }
    }
    let concurrent =
        Arc::new(IdentityStore::in_memory(Arc::new(MemoryKeyring::default())).unwrap());
    std::thread::scope(|s| {
        for (events, _) in &scripts {
            let store = concurrent.clone();
            s.spawn(move || {
                // Small batches, as SDKs send them.
                for chunk in events.chunks(3) {
                    let mut batch = chunk.to_vec();
                    store.resolve_events(P, opts, &mut batch, 0).unwrap();
                }
            });
        }
    });
    let expected = clusters(&sequential, &all_ids);
    assert_eq!(clusters(&concurrent, &all_ids), expected);
    // The scenario really merges: fewer clusters than ids.
    assert!(
        expected.len() < all_ids.len() / 2,
        "{} clusters",
        expected.len()
    );
}

#[test]
fn concurrent_original_merges_match_a_sequential_run() {
    run(IdMergeMode::Original);
}

#[test]
fn concurrent_simplified_merges_match_a_sequential_run() {
    run(IdMergeMode::Simplified);
}
