//! Insights aggregation over segments and tail: typed columns and `props_other` alike,
//! merged identities, profile filters and breakdowns, top-N with "other".

use crate::tests::{append, engine};
use crate::{
    AggregateRequest, AggregateRow, Breakdown, BreakdownBy, EventSelector, FilterOp, Measure,
    PropertyFilter, QueryEngine, Source, Stat,
};
use canopy_types::{
    Event, IdMergeMode, PersonKey, ProfileTarget, ProfileUpdate, ProjectId, Record,
};
use serde_json::{Value, json};
use std::sync::Arc;

const T0: i64 = 1_763_000_000_000;
const HOUR: i64 = 3_600_000;

fn event(name: &str, t_s: i64, props: Value) -> Record {
    Record::Event(Event {
        project: ProjectId(1),
        name: name.into(),
        time_ms: T0 + t_s * 1000,
        distinct_id: String::new(),
        person: PersonKey::NONE,
        insert_id: format!("{name}{t_s}"),
        received_ms: 0,
        properties: props.as_object().cloned().unwrap_or_default(),
        ip: None,
    })
}

/// u1 buys twice (hour 0 and 1) and, as device d1 before logging in, once more; u2's second
/// price is a string (stored in `props_other`); u3 sends no price.
async fn dataset(engine: &QueryEngine, store: &canopy_store::Store) {
    let m = IdMergeMode::Simplified;
    append(
        engine,
        m,
        vec![
            event(
                "Buy",
                0,
                json!({"$user_id": "u1", "price": 10, "plan": "Pro"}),
            ),
            event("View", 0, json!({"$user_id": "u1", "tags": ["a", "b"]})),
            event("Buy", 10, json!({"$user_id": "u2", "price": 5})),
            event("Buy", 20, json!({"$user_id": "u2", "price": "7"})),
            event("Buy", 30, json!({"$user_id": "u3", "plan": "free"})),
            event("Buy", 40, json!({"$device_id": "d1"})),
        ],
    )
    .await;
    store.flush_now().unwrap();
    append(
        engine,
        m,
        vec![
            event("Buy", 50, json!({"$device_id": "d1", "$user_id": "u1"})),
            event("Buy", 3600, json!({"$user_id": "u1", "price": 20})),
            Record::Profile(ProfileUpdate {
                project: ProjectId(1),
                target: ProfileTarget::User {
                    distinct_id: "u1".into(),
                },
                person: PersonKey::NONE,
                operation: "$set".into(),
                value: json!({"tier": "gold"}),
                time_ms: T0,
                received_ms: 0,
                modifiers: Default::default(),
            }),
        ],
    )
    .await;
}

fn request(measure: Measure) -> AggregateRequest {
    AggregateRequest {
        project: ProjectId(1),
        from_ms: T0,
        to_ms: T0 + 2 * HOUR,
        events: vec![EventSelector {
            event: "Buy".into(),
            where_expr: None,
        }],
        where_expr: None,
        filters: vec![],
        persons: None,
        buckets: Some(Arc::from(vec![T0, T0 + HOUR])),
        breakdown: None,
        measure,
    }
}

/// (segment, bucket) → value, sorted.
fn values(rows: Vec<AggregateRow>) -> Vec<(Option<String>, Option<u32>, Option<f64>)> {
    let mut v: Vec<_> = rows
        .into_iter()
        .map(|r| (r.segment, r.bucket, r.value))
        .collect();
    v.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    v
}

fn filter(property: &str, source: Source, op: FilterOp, value: Value) -> PropertyFilter {
    PropertyFilter {
        property: property.into(),
        source,
        op,
        value,
    }
}

async fn whole(engine: &QueryEngine, req: AggregateRequest) -> Option<f64> {
    let rows = engine.aggregate(&req).await.unwrap();
    rows.into_iter()
        .find(|r| r.bucket.is_none())
        .and_then(|r| r.value)
}

#[tokio::test]
async fn totals_uniques_and_per_person_statistics_per_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let (store, engine) = engine(dir.path());
    dataset(&engine, &store).await;
    let rows = engine.aggregate(&request(Measure::Total)).await.unwrap();
    assert_eq!(
        values(rows),
        vec![
            (None, None, Some(7.0)),
            (None, Some(0), Some(6.0)),
            (None, Some(1), Some(1.0)),
        ]
    );
    // d1 merged into u1: three people, not four.
    let rows = engine.aggregate(&request(Measure::Unique)).await.unwrap();
    assert_eq!(
        values(rows),
        vec![
            (None, None, Some(3.0)),
            (None, Some(0), Some(3.0)),
            (None, Some(1), Some(1.0)),
        ]
    );
    let max = whole(&engine, request(Measure::PerPerson(Stat::Max))).await;
    assert_eq!(max, Some(4.0), "u1: two as u1, one as d1, one linking");
    let median = whole(&engine, request(Measure::PerPerson(Stat::Median))).await;
    assert_eq!(median, Some(2.0));
    let price = |stat| Measure::Property {
        property: "price".into(),
        source: Source::Event,
        stat,
    };
    // "7" is text, not a number.
    assert_eq!(whole(&engine, request(price(Stat::Sum))).await, Some(35.0));
    assert_eq!(
        whole(&engine, request(price(Stat::Percentile(0.5)))).await,
        Some(10.0)
    );
    assert_eq!(whole(&engine, request(price(Stat::Min))).await, Some(5.0));
}

#[tokio::test]
async fn filters_read_typed_columns_json_and_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let (store, engine) = engine(dir.path());
    dataset(&engine, &store).await;
    let count = |filters: Vec<PropertyFilter>| {
        let mut req = request(Measure::Total);
        req.filters = filters;
        whole(&engine, req)
    };
    let e = Source::Event;
    assert_eq!(
        count(vec![filter("price", e, FilterOp::Gt, json!(6))]).await,
        Some(2.0)
    );
    assert_eq!(
        count(vec![filter("plan", e, FilterOp::Contains, json!("PR"))]).await,
        Some(1.0),
        "contains ignores case"
    );
    assert_eq!(
        count(vec![filter("plan", e, FilterOp::NotEquals, json!("Pro"))]).await,
        Some(6.0),
        "negations keep events without the property"
    );
    assert_eq!(
        count(vec![filter("price", e, FilterOp::In, json!(["7", 20]))]).await,
        Some(2.0),
        "the string \"7\" from props_other and the number 20"
    );
    assert_eq!(
        count(vec![filter("price", e, FilterOp::Set, Value::Null)]).await,
        Some(4.0)
    );
    assert_eq!(
        count(vec![filter(
            "tier",
            Source::User,
            FilterOp::Equals,
            json!("gold")
        )])
        .await,
        Some(4.0),
        "u1's profile covers the events d1 sent before the merge"
    );
    let mut req = request(Measure::Total);
    req.where_expr = Some(r#"properties["price"] >= 10"#.into());
    assert_eq!(whole(&engine, req).await, Some(2.0));
    let mut req = request(Measure::Total);
    req.filters = vec![filter("price", e, FilterOp::Between, json!([1]))];
    assert!(
        engine.aggregate(&req).await.is_err(),
        "between needs two bounds"
    );
}

#[tokio::test]
async fn breakdowns_keep_the_top_segments_and_fold_the_rest_into_other() {
    let dir = tempfile::tempdir().unwrap();
    let (store, engine) = engine(dir.path());
    dataset(&engine, &store).await;
    let mut req = request(Measure::Total);
    req.buckets = None;
    req.breakdown = Some(Breakdown {
        by: BreakdownBy::Property {
            property: "price".into(),
            source: Source::Event,
        },
        keep: None,
    });
    let rows = values(engine.aggregate(&req).await.unwrap());
    let seg = |s: &str| Some(s.to_string());
    assert_eq!(
        rows,
        vec![
            (None, None, Some(3.0)),
            (seg("10"), None, Some(1.0)),
            (seg("20"), None, Some(1.0)),
            (seg("5"), None, Some(1.0)),
            (seg("7"), None, Some(1.0)),
        ]
    );
    req.breakdown = Some(Breakdown {
        by: BreakdownBy::Property {
            property: "price".into(),
            source: Source::Event,
        },
        keep: Some(vec![seg("10"), None]),
    });
    req.measure = Measure::Unique;
    let rows = values(engine.aggregate(&req).await.unwrap());
    assert_eq!(
        rows,
        vec![
            (None, None, Some(2.0)),
            (seg("$other"), None, Some(2.0)),
            (seg("10"), None, Some(1.0)),
        ]
    );
    req.breakdown = Some(Breakdown {
        by: BreakdownBy::Property {
            property: "tier".into(),
            source: Source::User,
        },
        keep: None,
    });
    req.measure = Measure::Total;
    let rows = values(engine.aggregate(&req).await.unwrap());
    assert_eq!(
        rows,
        vec![(None, None, Some(3.0)), (seg("gold"), None, Some(4.0))]
    );
}

#[tokio::test]
async fn cohorts_of_doers_and_of_profiles_filter_and_split_events() {
    let dir = tempfile::tempdir().unwrap();
    let (store, engine) = engine(dir.path());
    dataset(&engine, &store).await;
    let range = (T0, T0 + 2 * HOUR);
    let p = ProjectId(1);
    // u1 bought 4 times (3 as u1, once as d1 before the merge), u2 twice, u3 once.
    let twice = engine
        .persons_with_events(p, range, "Buy", None, 2)
        .await
        .unwrap();
    assert_eq!(twice.len(), 2);
    let priced = engine
        .persons_with_events(p, range, "Buy", Some(r#"properties["price"] > 6"#), 1)
        .await
        .unwrap();
    assert_eq!(priced.len(), 1, "only u1 paid more than 6");
    let gold = engine
        .persons_with_profile(
            p,
            &[filter(
                "tier",
                Source::User,
                FilterOp::Equals,
                json!("gold"),
            )],
        )
        .await
        .unwrap();
    assert_eq!(gold, priced, "u1 is the gold one");
    let members = Arc::new(twice);
    let mut req = request(Measure::Total);
    req.persons = Some((members.clone(), false));
    assert_eq!(whole(&engine, req.clone()).await, Some(6.0));
    req.persons = Some((members.clone(), true));
    assert_eq!(whole(&engine, req).await, Some(1.0), "u3 alone");
    let mut req = request(Measure::Unique);
    req.buckets = None;
    req.breakdown = Some(Breakdown {
        by: BreakdownBy::Cohort {
            label: "Repeat buyers".into(),
            members,
        },
        keep: None,
    });
    let seg = |s: &str| Some(s.to_string());
    assert_eq!(
        values(engine.aggregate(&req).await.unwrap()),
        vec![
            (seg("Repeat buyers"), None, Some(2.0)),
            (seg("not in Repeat buyers"), None, Some(1.0)),
        ]
    );
}

#[tokio::test]
async fn a_query_over_its_memory_limit_fails_clearly_instead_of_spilling() {
    let dir = tempfile::tempdir().unwrap();
    let (store, engine) = engine(dir.path());
    let engine = engine.with_memory_limit(4 << 20);
    let events: Vec<Record> = (0..60_000)
        .map(|i| {
            event(
                "Buy",
                i,
                json!({"$user_id": format!("u{i}"), "order": format!("order-{i:08}")}),
            )
        })
        .collect();
    append(&engine, IdMergeMode::Simplified, events).await;
    store.flush_now().unwrap();
    let mut req = request(Measure::Unique);
    req.to_ms = T0 + 100 * HOUR;
    req.buckets = None;
    req.breakdown = Some(Breakdown {
        by: BreakdownBy::Property {
            property: "order".into(),
            source: Source::Event,
        },
        keep: None,
    });
    let err = engine.aggregate(&req).await.unwrap_err();
    assert!(matches!(err, crate::QueryError::TooLarge), "{err}");
    let small = request(Measure::Total);
    let small = engine.aggregate(&small).await;
    assert!(small.is_ok(), "small queries still run: {small:?}");
}

#[tokio::test]
async fn regression_an_event_without_rows_has_no_series_even_without_group_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (store, engine) = engine(dir.path());
    dataset(&engine, &store).await;
    for measure in [
        Measure::Total,
        Measure::Unique,
        Measure::PerPerson(Stat::Avg),
    ] {
        let mut req = request(measure);
        req.events[0].event = "Nope".into();
        assert_eq!(engine.aggregate(&req).await.unwrap(), vec![]);
        req.buckets = None;
        assert_eq!(engine.aggregate(&req).await.unwrap(), vec![]);
    }
}

#[tokio::test]
async fn sequence_scans_count_their_rows_against_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (store, engine) = engine(dir.path());
    let events: Vec<Record> = (0..300_000)
        .map(|i| event("Buy", i, json!({"$user_id": format!("u{}", i % 100)})))
        .collect();
    append(&engine, IdMergeMode::Simplified, events).await;
    store.flush_now().unwrap();
    let req = crate::SequenceRequest {
        project: ProjectId(1),
        from_ms: T0,
        to_ms: T0 + 100 * HOUR,
        events: vec!["Buy".into()],
        with_properties: false,
        persons: None,
    };
    let rows: usize = engine.sequences(&req).await.unwrap().rows().len();
    assert_eq!(rows, 300_000);
    // 300,000 rows hold more than 1 MiB on either path (row numbers or copied rows).
    let small = engine.with_memory_limit(1 << 20);
    assert!(matches!(
        small.sequences(&req).await,
        Err(crate::QueryError::TooLarge)
    ));
}
