//! Funnels over one person's time-ordered events (issue #5; semantics in
//! `docs/query-semantics.md`). Pure: the scan decides which steps each event matches; this
//! module decides how far the person got, when, and how long it took.
//!
//! An *attempt* starts at an event matching step 1. In `Order::Specific` each later step is
//! the earliest following event matching it (other events may come between), within the
//! conversion window measured from the attempt's start (inclusive). In `Order::Any` the
//! attempt counts every distinct step matched within the window. One event fills at most one
//! step of an attempt; events with equal times count in the order the scan gives them (stored
//! order). An exclusion event after a step is reached and before the next one ends the attempt
//! at that step. With a constant property, every step of an attempt must carry the value the
//! start carried. The person's result is the attempt that got furthest, the earliest among
//! equals — what Mixpanel reports for unique users and what ClickHouse's `windowFunnel` gives.

/// One event of a person, as the scan saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepEvent {
    pub time_ms: i64,
    /// Bit `i` set: the event matches step `i` (its name and filters).
    pub steps: u32,
    /// Bit `i` set: the event is an exclusion between step `i` and step `i + 1`.
    pub excludes: u32,
    /// The held-constant property's value, when the funnel holds one.
    pub constant: Option<String>,
}

pub use canopy_report_wire::Order;

/// A funnel's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelSpec {
    pub steps: usize,
    pub window_ms: i64,
    pub order: Order,
    pub hold_constant: bool,
}

/// How far one person got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// Index (in the person's events) of the attempt's first event.
    pub start: usize,
    /// Steps reached (1..=steps); 0 when the person never did step 1.
    pub level: usize,
    /// Time of each reached step, from the start of the attempt.
    pub times: Vec<i64>,
    /// The held-constant value of the attempt (for breakdowns by it).
    pub constant: Option<String>,
}

impl FunnelSpec {
    /// Evaluates one person; `events` in time order.
    pub fn evaluate(&self, events: &[StepEvent]) -> Conversion {
        let mut best = Conversion {
            start: 0,
            level: 0,
            times: Vec::new(),
            constant: None,
        };
        for (start, e) in events.iter().enumerate() {
            let begins = match self.order {
                Order::Specific => e.steps & 1 != 0,
                Order::Any => e.steps != 0,
            };
            if !begins {
                continue;
            }
            let attempt = match self.order {
                Order::Specific => self.specific(events, start),
                Order::Any => self.any(events, start),
            };
            if attempt.level > best.level {
                best = attempt;
                if best.level == self.steps {
                    break;
                }
            }
        }
        best
    }

    fn same_constant(&self, start: &StepEvent, e: &StepEvent) -> bool {
        !self.hold_constant || (start.constant.is_some() && start.constant == e.constant)
    }

    fn specific(&self, events: &[StepEvent], start: usize) -> Conversion {
        let first = &events[start];
        let mut times = vec![first.time_ms];
        let mut next = 1;
        for e in &events[start + 1..] {
            if next == self.steps || e.time_ms - first.time_ms > self.window_ms {
                break;
            }
            if !self.same_constant(first, e) {
                continue;
            }
            if e.steps & (1 << next) != 0 {
                times.push(e.time_ms);
                next += 1;
            } else if e.excludes & (1 << (next - 1)) != 0 {
                break;
            }
        }
        Conversion {
            start,
            level: next,
            times,
            constant: first.constant.clone(),
        }
    }

    fn any(&self, events: &[StepEvent], start: usize) -> Conversion {
        let first = &events[start];
        let all = if self.steps >= 32 {
            u32::MAX
        } else {
            (1u32 << self.steps) - 1
        };
        let mut done = 0u32;
        let mut times = Vec::new();
        for e in &events[start..] {
            if e.time_ms - first.time_ms > self.window_ms || done == all {
                break;
            }
            if !self.same_constant(first, e) {
                continue;
            }
            // One event fills one step: the lowest it matches that is still open.
            let open = e.steps & all & !done;
            if open != 0 {
                done |= open & open.wrapping_neg();
                times.push(e.time_ms);
            }
        }
        Conversion {
            start,
            level: done.count_ones() as usize,
            times,
            constant: first.constant.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
