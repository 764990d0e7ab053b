//! What a funnel report adds up per person (on each shard's thread, then merged): people per
//! step, times between steps, time-to-convert, conversion per entry bucket, and people per
//! breakdown segment.

use crate::funnel::Conversion;
use serde::Serialize;
use std::collections::HashMap;

/// Upper bounds of the time-to-convert histogram (the last bucket is open-ended).
pub const TIME_TO_CONVERT_BOUNDS_MS: [i64; 9] = [
    60_000,
    5 * 60_000,
    15 * 60_000,
    3_600_000,
    6 * 3_600_000,
    86_400_000,
    3 * 86_400_000,
    7 * 86_400_000,
    30 * 86_400_000,
];

#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    pub counts: Vec<u64>,
    pub from_prev: Vec<f64>,
    pub from_start: Vec<f64>,
    /// Entry → last step, per person who completed the funnel.
    pub durations: Vec<i64>,
    /// Per entry bucket: (entered, completed).
    pub over_time: Vec<(u64, u64)>,
    /// Per breakdown segment: people per step.
    pub segments: HashMap<Option<String>, Vec<u64>>,
}

impl Tally {
    pub fn new(steps: usize, buckets: usize) -> Self {
        Self {
            counts: vec![0; steps],
            from_prev: vec![0.0; steps],
            from_start: vec![0.0; steps],
            over_time: vec![(0, 0); buckets],
            ..Self::default()
        }
    }

    /// Adds one person's best attempt; `bucket` is the entry's time bucket, `segment` the
    /// breakdown value of the entering event, `ordered` whether step times are comparable.
    pub fn add(
        &mut self,
        c: &Conversion,
        ordered: bool,
        bucket: Option<usize>,
        segment: Option<Option<String>>,
    ) {
        let steps = self.counts.len();
        for s in 0..c.level {
            self.counts[s] += 1;
            if s > 0 && ordered {
                self.from_prev[s] += (c.times[s] - c.times[s - 1]) as f64;
                self.from_start[s] += (c.times[s] - c.times[0]) as f64;
            }
        }
        if c.level == 0 {
            return;
        }
        let completed = c.level == steps;
        if completed && let (Some(first), Some(last)) = (c.times.first(), c.times.last()) {
            self.durations.push(last - first);
        }
        if let Some(slot) = bucket.and_then(|b| self.over_time.get_mut(b)) {
            slot.0 += 1;
            slot.1 += u64::from(completed);
        }
        if let Some(seg) = segment {
            let row = self.segments.entry(seg).or_insert_with(|| vec![0; steps]);
            for n in row.iter_mut().take(c.level) {
                *n += 1;
            }
        }
    }

    pub fn merge(mut self, other: Tally) -> Tally {
        let add = |a: &mut Vec<u64>, b: &[u64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        add(&mut self.counts, &other.counts);
        self.from_prev
            .iter_mut()
            .zip(&other.from_prev)
            .for_each(|(x, y)| *x += y);
        self.from_start
            .iter_mut()
            .zip(&other.from_start)
            .for_each(|(x, y)| *x += y);
        self.durations.extend(other.durations);
        self.over_time
            .iter_mut()
            .zip(&other.over_time)
            .for_each(|(x, y)| {
                x.0 += y.0;
                x.1 += y.1;
            });
        for (seg, row) in other.segments {
            match self.segments.get_mut(&seg) {
                Some(r) => add(r, &row),
                None => {
                    self.segments.insert(seg, row);
                }
            }
        }
        self
    }
}

/// How long converting people took from entering to the last step.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimeToConvert {
    /// People per bucket; bucket `i` is `(bounds[i-1], bounds[i]]`, the last is beyond.
    pub counts: Vec<u64>,
    pub bounds_ms: Vec<i64>,
    pub median_ms: Option<i64>,
    pub p90_ms: Option<i64>,
}

impl TimeToConvert {
    pub fn from_durations(mut d: Vec<i64>) -> Self {
        let mut counts = vec![0u64; TIME_TO_CONVERT_BOUNDS_MS.len() + 1];
        for x in &d {
            let i = TIME_TO_CONVERT_BOUNDS_MS.partition_point(|b| b < x);
            counts[i] += 1;
        }
        d.sort_unstable();
        // Nearest-rank percentiles: an actual person's time.
        let pct = |p: f64| -> Option<i64> {
            let n = d.len();
            (n > 0).then(|| d[((p * n as f64).ceil() as usize).clamp(1, n) - 1])
        };
        Self {
            counts,
            bounds_ms: TIME_TO_CONVERT_BOUNDS_MS.to_vec(),
            median_ms: pct(0.5),
            p90_ms: pct(0.9),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_to_convert_buckets_are_closed_above_and_percentiles_are_real_times() {
        let t = TimeToConvert::from_durations(vec![60_000, 60_001, 3_600_000, 40 * 86_400_000]);
        assert_eq!(t.counts[0], 1, "exactly a minute is in the first bucket");
        assert_eq!(t.counts[1], 1);
        assert_eq!(t.counts[3], 1);
        assert_eq!(t.counts[9], 1, "beyond 30 days");
        assert_eq!(t.median_ms, Some(60_001));
        assert_eq!(t.p90_ms, Some(40 * 86_400_000));
        assert_eq!(TimeToConvert::from_durations(vec![]).median_ms, None);
    }
}
