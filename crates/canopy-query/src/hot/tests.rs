//! The cached-column engine against the DataFusion path on the same store: random datasets
//! (merged identities, equal timestamps, rows in segments and in the tail, a property set,
//! unset and sent as a number) and every shape the cached path covers must answer alike.

use crate::tests::{append, engine};
use crate::{
    AggregateRequest, AggregateRow, Breakdown, BreakdownBy, EventSelector, Measure, PersonSet,
    QueryEngine, SequenceRequest, Source,
};
use canopy_types::{Event, IdMergeMode, PersonKey, ProjectId, Record};
use proptest::prelude::*;
use serde_json::{Map, json};
use std::sync::Arc;

const T0: i64 = 1_763_000_000_000;
const NAMES: [&str; 4] = ["Open", "View", "Buy", "Share"];

/// (person, merge device into user, event, second, country (3 = unset, 4 = a number)).
type Row = (u8, bool, u8, u16, u8);

fn record(i: usize, (person, merge, event, second, country): Row, received: i64) -> Record {
    let mut props = Map::new();
    props.insert("$device_id".into(), json!(format!("d{person}")));
    if merge || person % 3 == 0 {
        props.insert("$user_id".into(), json!(format!("u{person}")));
    }
    match country {
        0..=2 => {
            props.insert(
                "country".into(),
                json!(["IN", "US", "DE"][country as usize]),
            );
        }
        3 => {}
        _ => {
            props.insert("country".into(), json!(7));
        }
    }
    Record::Event(Event {
        project: ProjectId(1),
        name: NAMES[event as usize % NAMES.len()].into(),
        time_ms: T0 + i64::from(second) * 1000,
        distinct_id: String::new(),
        person: PersonKey::NONE,
        // Not in time order, so ties are broken by something the data does not sort by.
        insert_id: format!("i{:04}", (i * 7919) % 10_000),
        received_ms: received,
        properties: props,
        ip: None,
    })
}

/// Loads `rows` in `chunks` appends: each chunk one arrival time, all but the last flushed.
async fn load(rows: &[Row], chunks: usize, dir: &std::path::Path) -> (QueryEngine, QueryEngine) {
    let (store, cached) = engine(dir);
    let size = rows.len().div_ceil(chunks.max(1)).max(1);
    for (c, part) in rows.chunks(size).enumerate() {
        let records = part
            .iter()
            .enumerate()
            .map(|(j, r)| record(c * size + j, *r, T0 + c as i64 * 60_000))
            .collect();
        append(&cached, IdMergeMode::Simplified, records).await;
        if (c + 1) * size < rows.len() {
            store.flush_now().unwrap();
        }
    }
    let plain = cached.clone().with_column_cache(0);
    (cached, plain)
}

fn sorted(mut rows: Vec<AggregateRow>) -> Vec<String> {
    rows.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    rows.into_iter().map(|r| format!("{r:?}")).collect()
}

fn aggregates(persons: &PersonSet) -> Vec<AggregateRequest> {
    let base = AggregateRequest {
        project: ProjectId(1),
        from_ms: T0 + 5_000,
        to_ms: T0 + 250_000,
        events: vec![EventSelector {
            event: "Open".into(),
            where_expr: None,
        }],
        where_expr: None,
        filters: vec![],
        persons: None,
        buckets: Some(Arc::from(vec![T0, T0 + 60_000, T0 + 120_000])),
        breakdown: None,
        measure: Measure::Total,
    };
    let country = |keep: Option<Vec<Option<String>>>| Breakdown {
        by: BreakdownBy::Property {
            property: "country".into(),
            source: Source::Event,
        },
        keep,
    };
    let mut out = Vec::new();
    for measure in [Measure::Total, Measure::Unique] {
        let mut r = AggregateRequest {
            measure,
            ..base.clone()
        };
        out.push(r.clone());
        r.events = ["Buy", "View", "Buy"]
            .map(|e| EventSelector {
                event: e.into(),
                where_expr: None,
            })
            .to_vec();
        out.push(r.clone());
        r.breakdown = Some(country(None));
        out.push(r.clone());
        r.breakdown = Some(country(Some(vec![Some("IN".into()), None])));
        out.push(r.clone());
        r.breakdown = Some(country(Some(vec![Some("7".into())])));
        r.buckets = None;
        out.push(r.clone());
        r.persons = Some((persons.clone(), false));
        out.push(r.clone());
        r.persons = Some((persons.clone(), true));
        out.push(r);
    }
    out
}

fn sequence_requests(persons: &PersonSet) -> Vec<SequenceRequest> {
    let r = SequenceRequest {
        project: ProjectId(1),
        from_ms: T0,
        to_ms: T0 + 200_000,
        events: vec!["Open".into(), "Buy".into()],
        with_properties: false,
        persons: None,
    };
    vec![
        r.clone(),
        SequenceRequest {
            events: NAMES.map(String::from).to_vec(),
            from_ms: T0 + 30_000,
            ..r.clone()
        },
        SequenceRequest {
            persons: Some((persons.clone(), true)),
            ..r
        },
    ]
}

async fn compare(rows: Vec<Row>, chunks: usize) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let (cached, plain) = load(&rows, chunks, dir.path()).await;
    let persons: PersonSet = Arc::new(
        cached
            .sequences(&sequence_requests(&Arc::default())[0])
            .await
            .unwrap()
            .rows()
            .into_iter()
            .map(|r| r.person)
            .filter(|p| p % 2 == 0)
            .collect(),
    );
    for req in aggregates(&persons) {
        let a = sorted(cached.aggregate(&req).await.unwrap());
        let b = sorted(plain.aggregate(&req).await.unwrap());
        prop_assert_eq!(a, b, "{:?}", req);
    }
    for req in sequence_requests(&persons) {
        // Shards differ between the paths; each person's rows, in order, must not.
        let key = |s: crate::Sequences| -> Vec<(u64, i64, u16)> {
            let mut rows: Vec<_> = s
                .rows()
                .into_iter()
                .map(|r| (r.person, r.time_ms, r.event))
                .collect();
            rows.sort_by_key(|r| r.0);
            rows
        };
        let a = key(cached.sequences(&req).await.unwrap());
        let b = key(plain.sequences(&req).await.unwrap());
        prop_assert_eq!(a, b, "{:?}", req);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn cached_columns_answer_as_datafusion_does(
        rows in prop::collection::vec((0u8..12, any::<bool>(), 0u8..4, 0u16..240, 0u8..5), 1..160),
        chunks in 1usize..5,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(compare(rows, chunks))?;
    }
}

#[tokio::test]
async fn ties_within_a_source_and_across_sources_are_ordered_by_insert_id() {
    // One person, two events at the same second and arrival, in one append: their source's
    // ranks order them.
    let one: Vec<Row> = vec![
        (3, true, 0, 10, 0),
        (3, true, 2, 10, 1),
        (3, true, 1, 20, 2),
    ];
    let dir = tempfile::tempdir().unwrap();
    let (cached, plain) = load(&one, 1, dir.path()).await;
    let req = &sequence_requests(&Arc::default())[0];
    let events =
        |s: crate::Sequences| -> Vec<u16> { s.rows().into_iter().map(|r| r.event).collect() };
    let got = events(cached.cached_sequences(req).unwrap());
    assert_eq!(got.len(), 2);
    assert_eq!(got, events(plain.sequences(req).await.unwrap()));
    // The same events in two appends with one arrival time, so in two segments, in both
    // orders of appending: their insert ids are read to order them.
    for order in [[0, 1], [1, 0]] {
        let dir = tempfile::tempdir().unwrap();
        let (store, cached) = engine(dir.path());
        for i in order {
            append(
                &cached,
                IdMergeMode::Simplified,
                vec![record(i, one[i], T0)],
            )
            .await;
            store.flush_now().unwrap();
        }
        let plain = cached.clone().with_column_cache(0);
        let got = events(cached.cached_sequences(req).unwrap());
        assert_eq!(got, events(plain.sequences(req).await.unwrap()));
        // i0000 (the Open) before i7919 (the Buy), whichever segment holds which.
        assert_eq!(got, vec![0, 1]);
    }
}

#[tokio::test]
async fn clearing_the_caches_drops_every_decoded_column_and_answers_stay_the_same() {
    let rows: Vec<Row> = (0..40)
        .map(|i| (i % 7, i % 2 == 0, i % 4, u16::from(i) * 5, i % 5))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (cached, _) = load(&rows, 3, dir.path()).await;
    let req = &aggregates(&Arc::default())[3];
    let before = sorted(cached.aggregate(req).await.unwrap());
    assert!(
        cached.column_cache_bytes() > 0,
        "the segments' columns are cached"
    );
    cached.clear_caches();
    assert_eq!(cached.column_cache_bytes(), 0);
    assert_eq!(sorted(cached.aggregate(req).await.unwrap()), before);
    let off = cached.clone().with_column_cache(0);
    assert_eq!(sorted(off.aggregate(req).await.unwrap()), before);
    assert_eq!(off.column_cache_bytes(), 0);
}
