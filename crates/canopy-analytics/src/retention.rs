//! Retention over one person's time-ordered events (issue #5; semantics in
//! `docs/query-semantics.md`). Pure: the scan flags birth and return events and gives the
//! cohort bucket function (the project's time zone lives there).
//!
//! Brackets are measured from the birth's exact time, as Mixpanel does: bracket `n` is
//! `[birth + n·unit, birth + (n+1)·unit)`. A return is an event flagged as one that is not the
//! birth event itself and is not before it. *First-time* retention puts a person in the cohort
//! of their first birth event only; *recurring* puts them in the cohort of every bucket in which
//! they were born again, measured from the first birth in that bucket. *Unbounded* counts a
//! person in bracket `n` when they returned in `n` or any later bracket.

use std::collections::BTreeMap;

/// One event of a person, as the scan saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionEvent {
    pub time_ms: i64,
    pub birth: bool,
    pub returned: bool,
}

pub use canopy_report_wire::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSpec {
    pub kind: Kind,
    /// Bracket length (a day, a week, 30 days).
    pub unit_ms: i64,
    /// Brackets reported: 0..brackets.
    pub brackets: usize,
    pub unbounded: bool,
    /// Births before this are not cohorts (but still define "first time").
    pub from_ms: i64,
    /// Births at or after this are not cohorts.
    pub to_ms: i64,
}

/// Cohort bucket → (people born, people retained per bracket).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionTable {
    pub cohorts: BTreeMap<i64, (u64, Vec<u64>)>,
}

impl RetentionSpec {
    /// Adds one person to `table`; `events` in time order, `bucket` maps a time to its cohort.
    pub fn add_person(
        &self,
        events: &[RetentionEvent],
        bucket: &dyn Fn(i64) -> i64,
        table: &mut RetentionTable,
    ) {
        let mut seen_buckets: Vec<i64> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if !e.birth {
                continue;
            }
            let in_range = e.time_ms >= self.from_ms && e.time_ms < self.to_ms;
            if self.kind == Kind::FirstTime {
                if in_range {
                    self.add_cohort(events, i, bucket(e.time_ms), table);
                }
                return;
            }
            let b = bucket(e.time_ms);
            if in_range && !seen_buckets.contains(&b) {
                seen_buckets.push(b);
                self.add_cohort(events, i, b, table);
            }
        }
    }

    fn add_cohort(
        &self,
        events: &[RetentionEvent],
        birth: usize,
        cohort: i64,
        table: &mut RetentionTable,
    ) {
        let born = events[birth].time_ms;
        let mut hit = vec![false; self.brackets];
        for (j, e) in events.iter().enumerate() {
            if j == birth || !e.returned || e.time_ms < born {
                continue;
            }
            let n = ((e.time_ms - born) / self.unit_ms) as usize;
            if n < self.brackets {
                hit[n] = true;
            }
        }
        if self.unbounded {
            for n in (0..self.brackets.saturating_sub(1)).rev() {
                hit[n] |= hit[n + 1];
            }
        }
        let row = table
            .cohorts
            .entry(cohort)
            .or_insert_with(|| (0, vec![0; self.brackets]));
        row.0 += 1;
        for (n, h) in hit.into_iter().enumerate() {
            row.1[n] += u64::from(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn e(t: i64, birth: bool, returned: bool) -> RetentionEvent {
        RetentionEvent {
            time_ms: t,
            birth,
            returned,
        }
    }

    fn spec(kind: Kind, unbounded: bool) -> RetentionSpec {
        RetentionSpec {
            kind,
            unit_ms: DAY,
            brackets: 4,
            unbounded,
            from_ms: 0,
            to_ms: 100 * DAY,
        }
    }

    fn by_day(t: i64) -> i64 {
        t.div_euclid(DAY)
    }

    #[test]
    fn brackets_are_measured_from_the_birth_time() {
        let s = spec(Kind::FirstTime, false);
        let mut t = RetentionTable::default();
        // Born at 20:00 on day 0; back at 10:00 on day 1 (14 h later: bracket 0), and 30 h later.
        let b = 20 * 3_600_000;
        s.add_person(
            &[
                e(b, true, true),
                e(b + 14 * 3_600_000, false, true),
                e(b + 30 * 3_600_000, false, true),
            ],
            &by_day,
            &mut t,
        );
        assert_eq!(t.cohorts[&0], (1, vec![1, 1, 0, 0]));
    }

    #[test]
    fn first_time_uses_the_first_birth_only_and_it_must_be_in_range() {
        let mut s = spec(Kind::FirstTime, false);
        s.from_ms = 5 * DAY;
        let mut t = RetentionTable::default();
        // First birth before the range: not a cohort, even with later births in range.
        s.add_person(
            &[e(DAY, true, false), e(6 * DAY, true, false)],
            &by_day,
            &mut t,
        );
        assert!(t.cohorts.is_empty());
    }

    #[test]
    fn recurring_counts_each_bucket_of_birth() {
        let s = spec(Kind::Recurring, false);
        let mut t = RetentionTable::default();
        s.add_person(
            &[
                e(0, true, true),
                e(DAY / 2, true, true),
                e(DAY, true, true),
                e(2 * DAY + 1, false, true),
            ],
            &by_day,
            &mut t,
        );
        assert_eq!(t.cohorts[&0], (1, vec![1, 1, 1, 0]));
        assert_eq!(t.cohorts[&1], (1, vec![0, 1, 0, 0]));
    }

    #[test]
    fn unbounded_counts_later_returns_in_earlier_brackets() {
        let s = spec(Kind::FirstTime, true);
        let mut t = RetentionTable::default();
        s.add_person(
            &[e(0, true, false), e(3 * DAY, false, true)],
            &by_day,
            &mut t,
        );
        assert_eq!(t.cohorts[&0], (1, vec![1, 1, 1, 1]));
    }

    #[test]
    fn the_birth_event_is_not_its_own_return() {
        let s = spec(Kind::FirstTime, false);
        let mut t = RetentionTable::default();
        s.add_person(&[e(0, true, true)], &by_day, &mut t);
        assert_eq!(t.cohorts[&0], (1, vec![0, 0, 0, 0]));
    }
}
