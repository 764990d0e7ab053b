//! Property tests: report definitions from arbitrary client bytes never panic, and time
//! buckets tile any range in any zone.

use crate::cohorts::CohortDefinition;
use crate::time_buckets::{MAX_BUCKETS, Unit, buckets};
use crate::{FlowsRequest, FunnelRequest, InsightsRequest, RetentionRequest};
use proptest::prelude::*;

const ZONES: [&str; 6] = [
    "UTC",
    "Asia/Kolkata",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Chatham",
];

proptest! {
    #[test]
    fn buckets_tile_the_range_in_order(
        zone in 0..ZONES.len(),
        unit in prop::sample::select(vec![Unit::Hour, Unit::Day, Unit::Week, Unit::Month]),
        from in 0i64..4_000_000_000_000,
        span in 1i64..(400 * 86_400_000),
    ) {
        let tz: chrono_tz::Tz = ZONES[zone].parse().unwrap();
        let to = from + span;
        match buckets(&tz, unit, from, to) {
            Ok((starts, labels)) => {
                prop_assert!(!starts.is_empty());
                prop_assert!(starts[0] <= from, "the first bucket holds `from`");
                prop_assert!(starts.windows(2).all(|w| w[0] < w[1]));
                prop_assert!(*starts.last().unwrap() < to);
                prop_assert_eq!(starts.len(), labels.len());
                let mut unique = labels.clone();
                unique.dedup();
                // A repeated local hour (DST fall-back) is the only repeated label.
                prop_assert!(unit == Unit::Hour || unique.len() == labels.len());
            }
            Err(_) => prop_assert!(unit == Unit::Hour && span / 3_600_000 >= MAX_BUCKETS as i64),
        }
    }

    #[test]
    fn report_definitions_from_arbitrary_json_never_panic(body in any::<String>(), json in arbitrary_json()) {
        for text in [body.as_str(), json.as_str()] {
            let _ = serde_json::from_str::<InsightsRequest>(text);
            let _ = serde_json::from_str::<FunnelRequest>(text);
            let _ = serde_json::from_str::<RetentionRequest>(text);
            let _ = serde_json::from_str::<FlowsRequest>(text);
            if let Ok(c) = serde_json::from_str::<CohortDefinition>(text) {
                let _ = c.validate();
            }
            let _ = CohortDefinition::from_stored(text);
            let _ = canopy_query::parse_time_ms(text);
            let _ = Unit::parse(text);
        }
    }
}

/// JSON objects shaped like report requests, with random values where fields go.
fn arbitrary_json() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("null".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| serde_json::to_string(&f).unwrap_or_default()),
        "[a-z_]{0,12}".prop_map(|s| format!("{s:?}")),
        Just("[]".to_string()),
        Just("{}".to_string()),
    ];
    let key = prop::sample::select(vec![
        "from_ms",
        "to_ms",
        "events",
        "steps",
        "window_ms",
        "measure",
        "unit",
        "filters",
        "breakdown",
        "cohort",
        "kind",
        "event",
        "min_count",
        "window_days",
        "brackets",
        "born",
        "limit",
        "where",
        "order",
        "exclusions",
        "op",
        "value",
        "property",
    ]);
    prop::collection::vec((key, value), 0..8).prop_map(|kv| {
        let body: Vec<String> = kv.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
        format!("{{{}}}", body.join(", "))
    })
}
