//! Merged identities as queries see them: retroactive, without rewriting segments.

use crate::tests::{append, engine};
use crate::{ExportBackend, ExportRequest};
use arrow::array::{Array, StringArray, UInt64Array};
use canopy_types::{
    Event, IdMergeMode, PersonKey, ProfileTarget, ProfileUpdate, ProjectId, Record,
};
use futures::StreamExt;
use serde_json::{Value, json};

fn event(name: &str, t: i64, props: Value) -> Record {
    Record::Event(Event {
        project: ProjectId(1),
        name: name.into(),
        time_ms: 1_763_000_000_000 + t,
        distinct_id: String::new(),
        person: PersonKey::NONE,
        insert_id: format!("i{t}"),
        received_ms: 0,
        properties: props.as_object().cloned().unwrap_or_default(),
        ip: None,
    })
}

fn set(distinct_id: &str, op: &str, value: Value) -> Record {
    Record::Profile(ProfileUpdate {
        project: ProjectId(1),
        target: ProfileTarget::User {
            distinct_id: distinct_id.into(),
        },
        person: PersonKey::NONE,
        operation: op.into(),
        value,
        time_ms: 1_763_000_000_000,
        received_ms: 0,
        modifiers: Default::default(),
    })
}

#[tokio::test]
async fn a_merge_reattributes_earlier_events_and_keeps_raw_ids_out_of_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (store, engine) = engine(dir.path());
    let anon = |t| event("Play", t, json!({"$device_id": "tablet-1", "level": t}));
    append(&engine, IdMergeMode::Simplified, vec![anon(1), anon(2)]).await;
    append(
        &engine,
        IdMergeMode::Simplified,
        vec![set("$device:tablet-1", "$set", json!({"plan": "trial"}))],
    )
    .await;
    // Flushed under the device's key, before anyone knew who it was.
    store.flush_now().unwrap();
    append(
        &engine,
        IdMergeMode::Simplified,
        vec![
            event(
                "Login",
                3,
                json!({"$device_id": "tablet-1", "$user_id": "parent-7"}),
            ),
            set("parent-7", "$set", json!({"plan": "family"})),
            set("parent-7", "$add", json!({"sessions": 2})),
        ],
    )
    .await;
    let mut s = engine
        .export(ExportRequest {
            project: ProjectId(1),
            from_ms: 0,
            to_ms: i64::MAX,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut rows = Vec::new();
    while let Some(chunk) = s.next().await {
        for line in std::str::from_utf8(&chunk.unwrap()).unwrap().lines() {
            rows.push(serde_json::from_str::<Value>(line).unwrap());
        }
    }
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(r["properties"]["distinct_id"], "parent-7", "{r}");
        assert!(r["properties"].get("$device_id").is_none(), "{r}");
        assert!(r["properties"].get("$user_id").is_none(), "{r}");
    }
    // One person in SQL, too.
    let ctx = engine
        .context_with_profiles(ProjectId(1), None)
        .await
        .unwrap();
    let b = ctx
        .sql("SELECT count(DISTINCT person) AS n FROM events")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let n = b[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n, 1);
    // The user's own profile wins over the device's; properties filter and join.
    let b = ctx
        .sql(
            r#"SELECT p.distinct_id, p."p.s.plan", p."p.n.sessions", count(*) AS events
                FROM events e JOIN profiles p ON e.person = p.person
                GROUP BY 1, 2, 3"#,
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(b[0].num_rows(), 1);
    let who = b[0]
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let plan = b[0]
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!((who.value(0), plan.value(0)), ("parent-7", "family"));
    assert!(!b[0].column(2).is_null(0));
    // No segment column holds a raw id.
    let b = ctx
        .sql("SELECT * FROM events_stored")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    for batch in &b {
        assert!(batch.column_by_name("distinct_id").is_none());
        let _ = batch
            .column_by_name("person")
            .unwrap()
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap();
        for f in batch.schema().fields() {
            assert!(
                !f.name().contains("device_id") && !f.name().contains("user_id"),
                "{f}"
            );
        }
    }
    // The person view: profile and activity through any of the person's ids.
    let person = engine
        .identity()
        .lookup(ProjectId(1), "$device:tablet-1")
        .unwrap()
        .unwrap();
    let (profile, recent) = engine.person_view(ProjectId(1), person, 2).await.unwrap();
    let profile = profile.unwrap();
    assert_eq!(profile.properties["plan"], "family");
    assert_eq!(
        recent.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["Login", "Play"]
    );
}
