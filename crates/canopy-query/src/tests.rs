use crate::{ExportBackend, ExportRequest, QueryEngine};
use canopy_crypto::MemoryKeyring as Keys;
use canopy_identity::{IdentityStore, ResolveOptions};
use canopy_store::{Store, StoreConfig};
use canopy_types::{Event, IdMergeMode, PersonKey, ProjectId, Record, SystemClock};
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;

const T0: i64 = 1_763_000_000_000;

fn ev(i: i64, props: Value) -> Record {
    Record::Event(Event {
        project: ProjectId(1),
        name: if i % 2 == 0 {
            "Play".into()
        } else {
            "Pause".into()
        },
        time_ms: T0 + i * 1000,
        distinct_id: format!("kid-{}", i % 7),
        person: PersonKey((i % 7 + 1) as u64),
        insert_id: format!("ins{i}"),
        received_ms: T0,
        properties: props.as_object().cloned().unwrap_or_default(),
        ip: None,
    })
}

/// A store and an engine sharing one keyring and identity store.
pub(crate) fn engine(dir: &std::path::Path) -> (Store, QueryEngine) {
    let mut c = StoreConfig::new(dir);
    c.background = false;
    let keys = Arc::new(Keys::default());
    let store = Store::open(c, keys.clone(), Arc::new(SystemClock))
        .unwrap()
        .0;
    let identity = Arc::new(IdentityStore::in_memory(keys).unwrap());
    (store.clone(), QueryEngine::new(store, identity))
}

/// What the server does: identity first, then the store.
pub(crate) async fn append(engine: &QueryEngine, mode: IdMergeMode, mut recs: Vec<Record>) {
    let opts = ResolveOptions {
        mode,
        allow_merge: true,
        replay: false,
    };
    for r in recs.iter_mut() {
        match r {
            Record::Event(e) => {
                engine
                    .identity()
                    .resolve_events(ProjectId(1), opts, std::slice::from_mut(e), 0)
                    .unwrap();
            }
            Record::Profile(u) => {
                engine
                    .identity()
                    .resolve_profiles(ProjectId(1), std::slice::from_mut(u), 0)
                    .unwrap();
            }
        }
    }
    engine.store().append(ProjectId(1), recs).await.unwrap();
}

async fn export(engine: &QueryEngine, req: ExportRequest) -> Vec<Value> {
    let mut s = engine.export(req).await.unwrap();
    let mut out: Vec<Value> = Vec::new();
    while let Some(chunk) = s.next().await {
        for line in std::str::from_utf8(&chunk.unwrap()).unwrap().lines() {
            out.push(serde_json::from_str(line).unwrap());
        }
    }
    out.sort_by_key(|v| {
        v["properties"]["$insert_id"]
            .as_str()
            .unwrap()
            .trim_start_matches("ins")
            .parse::<i64>()
            .unwrap()
    });
    out
}

fn all() -> ExportRequest {
    ExportRequest {
        project: ProjectId(1),
        from_ms: 0,
        to_ms: i64::MAX,
        ..Default::default()
    }
}

#[tokio::test]
async fn export_covers_segments_and_tail_with_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let (store, engine) = engine(dir.path());
    let recs: Vec<Record> = (0..50)
        .map(|i| ev(i, json!({"level": i, "screen": "home", "tags": ["a"]})))
        .collect();
    append(&engine, IdMergeMode::Simplified, recs).await;
    store.flush_now().unwrap();
    // Mixed types for one property across segment and tail: read back as sent.
    let recs: Vec<Record> = (50..60)
        .map(|i| ev(i, json!({"level": format!("L{i}"), "ok": true})))
        .collect();
    append(&engine, IdMergeMode::Simplified, recs).await;
    let rows = export(&engine, all()).await;
    assert_eq!(rows.len(), 60);
    assert_eq!(
        rows[3],
        json!({"event":"Pause","properties":{"time": (T0 + 3000) / 1000, "distinct_id":"kid-3",
        "$insert_id":"ins3","mp_processing_time_ms": T0, "level": 3, "screen":"home","tags":["a"]}})
    );
    assert_eq!(rows[55]["properties"]["level"], "L55");
    assert_eq!(rows[55]["properties"]["ok"], true);
}

#[tokio::test]
async fn export_filters_by_time_event_where_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (store, engine) = engine(dir.path());
    let recs: Vec<Record> = (0..100).map(|i| ev(i, json!({"n": i}))).collect();
    append(&engine, IdMergeMode::Simplified, recs).await;
    store.flush_now().unwrap();
    let r = export(
        &engine,
        ExportRequest {
            from_ms: T0 + 10_000,
            to_ms: T0 + 20_000,
            ..all()
        },
    )
    .await;
    assert_eq!(r.len(), 10);
    let r = export(
        &engine,
        ExportRequest {
            events: vec!["Play".into()],
            ..all()
        },
    )
    .await;
    assert_eq!(r.len(), 50);
    let r = export(
        &engine,
        ExportRequest {
            where_expr: Some(r#"properties["n"] >= 90"#.into()),
            ..all()
        },
    )
    .await;
    assert_eq!(r.len(), 10);
    let r = export(
        &engine,
        ExportRequest {
            limit: Some(7),
            time_in_ms: true,
            ..all()
        },
    )
    .await;
    assert_eq!(r.len(), 7);
    assert!(r[0]["properties"]["time"].as_i64().unwrap() > 1_000_000_000_000);
    assert!(
        engine
            .export(ExportRequest {
                where_expr: Some("((".into()),
                ..all()
            })
            .await
            .is_err()
    );
}

#[tokio::test]
async fn sql_sees_tail_immediately() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, engine) = engine(dir.path());
    append(&engine, IdMergeMode::Simplified, vec![ev(1, json!({}))]).await;
    let ctx = engine.context(ProjectId(1), None).unwrap();
    let batches = ctx
        .sql("SELECT count(*) AS n FROM events")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let n = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n, 1);
    // Another project sees nothing.
    let ctx = engine.context(ProjectId(2), None).unwrap();
    let batches = ctx
        .sql("SELECT count(*) FROM events")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let n = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n, 0);
}

/// Regression: a query's plan held only the paths of its snapshot's segments, so an erasure
/// (or a compaction) replacing them could unlink files a running export had yet to open, and
/// the stream failed with "not found" (seen in the erasure crash test). The scan now pins its
/// segments until the plan is dropped.
#[tokio::test]
async fn regression_a_plan_made_before_an_erasure_still_reads_its_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (store, engine) = engine(dir.path());
    let recs: Vec<Record> = (0..70).map(|i| ev(i, json!({"n": i}))).collect();
    store.append(ProjectId(1), recs).await.unwrap();
    store.flush_now().unwrap();
    let ctx = engine.context(ProjectId(1), None).unwrap();
    let plan = ctx
        .table("events_stored")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    drop(ctx);
    let erased: std::collections::HashSet<u64> = (1..=7).collect();
    let report = store
        .erase_persons(ProjectId(1), &erased, std::time::Duration::from_millis(50))
        .unwrap();
    assert_eq!(report.event_rows, 70);
    assert!(!report.old_files_unlinked, "the plan still holds them");
    let batches = datafusion::physical_plan::collect(plan.clone(), Arc::new(Default::default()))
        .await
        .unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 70, "the plan reads the snapshot it was made on");
    drop(plan);
    assert!(export(&engine, all()).await.is_empty());
    assert_eq!(store.compact_now().unwrap(), 0);
    let files = std::fs::read_dir(dir.path().join("segments"))
        .map(|_| walk_parquet(dir.path()))
        .unwrap_or_default();
    assert_eq!(files, 0, "released files are unlinked");
}

fn walk_parquet(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            n += walk_parquet(&p);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            n += 1;
        }
    }
    n
}
