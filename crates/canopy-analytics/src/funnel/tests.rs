use super::*;

const MIN: i64 = 60_000;

fn ev(t: i64, steps: u32) -> StepEvent {
    StepEvent {
        time_ms: t * MIN,
        steps,
        excludes: 0,
        constant: None,
    }
}

fn spec(steps: usize, window_min: i64) -> FunnelSpec {
    FunnelSpec {
        steps,
        window_ms: window_min * MIN,
        order: Order::Specific,
        hold_constant: false,
    }
}

#[test]
fn steps_in_order_with_other_events_between() {
    let f = spec(3, 60);
    let c = f.evaluate(&[ev(0, 1), ev(1, 0), ev(2, 2), ev(3, 0), ev(9, 4)]);
    assert_eq!(c.level, 3);
    assert_eq!(c.times, [0, 2 * MIN, 9 * MIN]);
    // Out of order: step 3 before step 2 does not count.
    assert_eq!(f.evaluate(&[ev(0, 1), ev(1, 4), ev(2, 2)]).level, 2);
    assert_eq!(f.evaluate(&[ev(0, 2), ev(1, 4)]).level, 0, "no step 1");
}

#[test]
fn the_window_is_inclusive_and_measured_from_the_attempts_start() {
    let f = spec(2, 10);
    assert_eq!(
        f.evaluate(&[ev(0, 1), ev(10, 2)]).level,
        2,
        "exactly at the edge"
    );
    assert_eq!(
        f.evaluate(&[ev(0, 1), ev(11, 2)]).level,
        1,
        "one minute late"
    );
    // A later step 1 starts a new attempt that converts.
    let c = f.evaluate(&[ev(0, 1), ev(5, 1), ev(14, 2)]);
    assert_eq!((c.level, c.times[0]), (2, 5 * MIN));
}

#[test]
fn equal_timestamps_and_repeated_steps() {
    // Same time: both steps count, in stored order.
    assert_eq!(spec(2, 10).evaluate(&[ev(3, 1), ev(3, 2)]).level, 2);
    // The same event name as steps 1 and 2: one event fills one step.
    let f = spec(2, 10);
    assert_eq!(f.evaluate(&[ev(0, 0b11)]).level, 1);
    assert_eq!(f.evaluate(&[ev(0, 0b11), ev(1, 0b11)]).level, 2);
}

#[test]
fn exclusions_end_an_attempt_between_their_steps() {
    let f = spec(3, 60);
    let mut x = ev(2, 0);
    x.excludes = 0b10; // between step 2 and step 3
    assert_eq!(
        f.evaluate(&[ev(0, 1), ev(1, 2), x.clone(), ev(3, 4)]).level,
        2
    );
    // Before step 2 it does not apply.
    assert_eq!(f.evaluate(&[ev(0, 1), x, ev(1, 2), ev(3, 4)]).level, 3);
}

#[test]
fn a_held_constant_property_must_match_the_start() {
    let mut f = spec(2, 60);
    f.hold_constant = true;
    let with = |t, s, v: &str| StepEvent {
        constant: Some(v.into()),
        ..ev(t, s)
    };
    assert_eq!(f.evaluate(&[with(0, 1, "a"), with(1, 2, "b")]).level, 1);
    let c = f.evaluate(&[with(0, 1, "a"), with(1, 2, "b"), with(2, 2, "a")]);
    assert_eq!((c.level, c.constant.as_deref()), (2, Some("a")));
}

#[test]
fn any_order_counts_distinct_steps_within_the_window() {
    let mut f = spec(3, 10);
    f.order = Order::Any;
    assert_eq!(f.evaluate(&[ev(0, 4), ev(1, 1), ev(2, 2)]).level, 3);
    assert_eq!(f.evaluate(&[ev(0, 4), ev(1, 4), ev(20, 1)]).level, 1);
}

#[test]
fn the_furthest_attempt_wins_and_the_earliest_among_equals() {
    let f = spec(3, 10);
    let c = f.evaluate(&[ev(0, 1), ev(1, 2), ev(30, 1), ev(31, 2), ev(32, 4)]);
    assert_eq!((c.level, c.times[0]), (3, 30 * MIN));
    let c = f.evaluate(&[ev(0, 1), ev(1, 2), ev(30, 1), ev(31, 2)]);
    assert_eq!((c.level, c.times[0]), (2, 0));
}

/// The furthest level by brute force: any increasing chain of events filling steps 1..L in
/// order within the window (no exclusions, no constant).
fn reference(events: &[StepEvent], steps: usize, window: i64) -> usize {
    let mut best = 0;
    fn extend(
        events: &[StepEvent],
        from: usize,
        level: usize,
        start: i64,
        steps: usize,
        window: i64,
        best: &mut usize,
    ) {
        *best = (*best).max(level);
        if level == steps {
            return;
        }
        for (j, e) in events.iter().enumerate().skip(from) {
            if e.time_ms - start <= window && e.steps & (1 << level) != 0 {
                extend(events, j + 1, level + 1, start, steps, window, best);
            }
        }
    }
    for (i, e) in events.iter().enumerate() {
        if e.steps & 1 != 0 {
            extend(events, i + 1, 1, e.time_ms, steps, window, &mut best);
        }
    }
    best
}

proptest::proptest! {
    #[test]
    fn specific_order_matches_brute_force(
        raw in proptest::collection::vec((0i64..30, 0u32..16), 0..12),
        steps in 2usize..5,
        window in 0i64..20,
    ) {
        let mut raw = raw;
        raw.sort_by_key(|r| r.0);
        let events: Vec<StepEvent> = raw.iter().map(|(t, s)| ev(*t, *s)).collect();
        let f = spec(steps, window);
        proptest::prop_assert_eq!(f.evaluate(&events).level, reference(&events, steps, window * MIN));
    }
}
