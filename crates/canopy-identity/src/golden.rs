//! Golden tests for the merge rules: each `tests/golden/*.json` holds a sequence of events and
//! the clusters, displayed distinct_ids (after every merge — merges are retroactive) and
//! refusals Mixpanel's documented rules give. On a mismatch the actual outcome is printed.

use crate::{IdentityStore, ResolveOptions};
use canopy_crypto::MemoryKeyring;
use canopy_types::{Event, IdMergeMode, PersonKey, ProjectId};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Deserialize)]
struct Scenario {
    mode: IdMergeMode,
    events: Vec<Step>,
    expect: Expect,
}

#[derive(Deserialize)]
struct Step {
    event: String,
    #[serde(default)]
    distinct_id: String,
    #[serde(default)]
    properties: Map<String, Value>,
    /// Sent through authenticated `/import`.
    #[serde(default)]
    import: bool,
    /// Expand into this many steps, `{i}` replaced by 0, 1, …
    #[serde(default)]
    repeat: Option<usize>,
}

#[derive(Deserialize, PartialEq, Debug)]
struct Expect {
    #[serde(default)]
    clusters: Option<Vec<Vec<String>>>,
    #[serde(default)]
    cluster_sizes: Option<BTreeMap<String, usize>>,
    #[serde(default)]
    event_distinct_ids: Option<Vec<String>>,
    refused: usize,
}

fn expand(steps: Vec<Step>) -> Vec<Step> {
    let mut out = Vec::new();
    for s in steps {
        let n = s.repeat.unwrap_or(1);
        for i in 0..n {
            let sub = |v: &str| {
                if s.repeat.is_some() {
                    v.replace("{i}", &i.to_string())
                } else {
                    v.to_string()
                }
            };
            let props: Value =
                serde_json::from_str(&sub(&Value::Object(s.properties.clone()).to_string()))
                    .unwrap_or_default();
            out.push(Step {
                event: sub(&s.event),
                distinct_id: sub(&s.distinct_id),
                properties: props.as_object().cloned().unwrap_or_default(),
                import: s.import,
                repeat: None,
            });
        }
    }
    out
}

fn run(name: &str, text: &str) {
    let sc: Scenario = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let store = IdentityStore::in_memory(Arc::new(MemoryKeyring::default())).unwrap();
    let project = ProjectId(1);
    let mut persons = Vec::new();
    let mut refused = 0;
    for step in expand(sc.events) {
        let mut events = vec![Event {
            project,
            name: step.event,
            time_ms: 0,
            distinct_id: step.distinct_id,
            person: PersonKey::NONE,
            insert_id: String::new(),
            received_ms: 0,
            properties: step.properties,
            ip: None,
        }];
        let opts = ResolveOptions {
            mode: sc.mode,
            allow_merge: step.import,
            replay: false,
        };
        refused += store
            .resolve_events(project, opts, &mut events, 0)
            .unwrap()
            .refused;
        persons.push(events[0].person.0);
    }
    let aliases = store.aliases(project).unwrap();
    let now: Vec<u64> = persons
        .iter()
        .map(|p| *aliases.get(p).unwrap_or(p))
        .collect();
    let display = store.display_ids(project, &now).unwrap();
    let mut clusters: Vec<Vec<String>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in &now {
        if *p == 0 || !seen.insert(*p) {
            continue;
        }
        let mut ids = store.cluster_ids(project, PersonKey(*p)).unwrap();
        ids[1..].sort();
        clusters.push(ids);
    }
    clusters.sort();
    let actual = Expect {
        event_distinct_ids: sc
            .expect
            .event_distinct_ids
            .as_ref()
            .map(|_| now.iter().map(|p| display[p].to_string()).collect()),
        cluster_sizes: sc
            .expect
            .cluster_sizes
            .as_ref()
            .map(|_| clusters.iter().map(|c| (c[0].clone(), c.len())).collect()),
        clusters: sc.expect.clusters.as_ref().map(|_| clusters.clone()),
        refused,
    };
    let mut expected = sc.expect;
    if let Some(c) = expected.clusters.as_mut() {
        for ids in c.iter_mut() {
            ids[1..].sort();
        }
        c.sort();
    }
    assert_eq!(
        actual,
        expected,
        "{name}: actual outcome:\n{}",
        json!({"clusters": actual.clusters, "cluster_sizes": actual.cluster_sizes,
               "event_distinct_ids": actual.event_distinct_ids, "refused": actual.refused})
    );
}

#[test]
fn merge_rules_match_the_golden_files() {
    let dir = canopy_types::crate_dir!().join("tests/golden");
    let mut n = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    files.sort_by_key(|f| f.path());
    for f in files {
        let path = f.path();
        if path.extension().and_then(|e| e.to_str()) == Some("json") {
            run(
                &path.display().to_string(),
                &std::fs::read_to_string(&path).unwrap(),
            );
            n += 1;
        }
    }
    assert!(n >= 8, "expected the golden scenarios, found {n}");
}
