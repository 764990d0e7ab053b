//! Property tests: time buckets tile any range in any zone. (Report definitions from client
//! bytes are property-tested and fuzzed in `canopy-report-wire`.)

use crate::time_buckets::{MAX_BUCKETS, Unit, buckets};
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
}
