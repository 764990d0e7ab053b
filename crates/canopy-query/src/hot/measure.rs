//! The end of a cached insights aggregation: the cores' partial groups merged by (event,
//! segment text), and each output row measured — its count, or its distinct persons.

use super::aggregate::{Group, Partial};
use crate::segmentation::AggregateRow;
use std::collections::HashMap;

/// Merges the cores' partial groups by (event, segment text) and measures each slot.
pub(super) fn finish(
    lists: usize,
    partials: Vec<Partial>,
    names: &[&str],
    people: bool,
    bucketed: bool,
    slots: usize,
) -> Vec<AggregateRow> {
    let mut merged: HashMap<(u16, Option<String>), Group> = HashMap::new();
    for partial in partials {
        for ((ev, label), group) in partial.groups {
            let text = partial.labels[label as usize].clone();
            let into = merged.entry((ev, text)).or_default();
            if into.counts.is_empty() {
                *into = group;
                continue;
            }
            for (a, b) in into.counts.iter_mut().zip(&group.counts) {
                *a += b;
            }
            for (a, b) in into.persons.iter_mut().zip(group.persons) {
                a.extend(b);
            }
        }
    }
    // One job per (group, slot) that has events, largest person lists first, taken from a
    // shared queue: the whole range's list is by far the largest and sorts while the other
    // cores measure the buckets.
    let whole = slots - 1;
    let mut jobs: Vec<Job> = Vec::new();
    for ((ev, segment), mut group) in merged {
        for slot in 0..slots {
            if group.counts[slot] == 0 || (slot != whole && !bucketed) {
                continue;
            }
            jobs.push(Job {
                row: AggregateRow {
                    event: names[usize::from(ev)].to_string(),
                    segment: segment.clone(),
                    bucket: (slot != whole).then_some(slot as u32),
                    value: Some(group.counts[slot] as f64),
                },
                persons: people.then(|| {
                    group.persons[slot * lists..(slot + 1) * lists]
                        .iter_mut()
                        .map(std::mem::take)
                        .collect()
                }),
            });
        }
    }
    jobs.sort_by_key(|j| {
        std::cmp::Reverse(j.persons.iter().flatten().map(Vec::len).sum::<usize>())
    });
    let queue = std::sync::Mutex::new(jobs.into_iter());
    let queue = &queue;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cores)
            .map(|_| {
                scope.spawn(move || {
                    let mut rows = Vec::new();
                    while let Some(mut job) = queue.lock().ok().and_then(|mut q| q.next()) {
                        if let Some(lists) = job.persons.take() {
                            let mut distinct = 0;
                            for mut persons in lists {
                                // A few sorted runs, which the stable sort merges.
                                persons.sort();
                                persons.dedup();
                                distinct += persons.len();
                            }
                            job.row.value = Some(distinct as f64);
                        }
                        rows.push(job.row);
                    }
                    rows
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// One output row to measure: its count, or the persons to count.
struct Job {
    row: AggregateRow,
    /// Per person bucket (disjoint sets of persons).
    persons: Option<Vec<Vec<u64>>>,
}
