//! Insights from cached columns, for the shapes product teams run most: events by name in a
//! range, totals or unique persons, per time bucket, optionally broken down by an event
//! property (top N plus `$other`) and narrowed to a cohort. Everything else — `where`,
//! property filters, profile properties, per-person and property statistics — goes through
//! DataFusion (`segmentation.rs`); both give the same rows (tested side by side).

use super::columns::ColumnKey;
use super::measure::finish;
use super::sources::{PersonCursor, person_buckets};
use crate::bucket_udf::BucketLookup;
use crate::filters::Source as PropertySource;
use crate::segmentation::{
    AggregateRequest, AggregateRow, Breakdown, BreakdownBy, Measure, OTHER_SEGMENT,
};
use crate::table::QueryEngine;
use crate::{QueryError, Result};
use arrow::array::Array;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Rough fixed cost of one group (entries in two maps, the group's vectors, its label).
const GROUP_BYTES: usize = 160;

/// Events (and persons) of one (event, segment) group, per bucket; the last slot is the
/// whole range.
#[derive(Debug, Default)]
pub(super) struct Group {
    pub counts: Vec<u64>,
    /// Persons per (slot, person bucket) — `slot * lists + bucket` — consecutive repeats
    /// dropped. Buckets hold disjoint persons, and each list is a few sorted runs (one per
    /// source of that bucket), so counting distinct persons merges little.
    pub persons: Vec<Vec<u64>>,
}

#[derive(Debug, Default)]
pub(super) struct Partial {
    pub labels: Vec<Option<String>>,
    label_index: HashMap<Option<String>, u32>,
    /// Groups by (event, label), and where each is in `groups`.
    pub groups: Vec<((u16, u32), Group)>,
    group_index: HashMap<(u16, u32), usize>,
}

impl Partial {
    fn label(&mut self, text: Option<&str>) -> u32 {
        if let Some(i) = self.label_index.get(&text.map(str::to_string)) {
            return *i;
        }
        self.labels.push(text.map(str::to_string));
        let i = (self.labels.len() - 1) as u32;
        self.label_index.insert(text.map(str::to_string), i);
        i
    }

    fn group(&mut self, key: (u16, u32), slots: usize, person_lists: usize) -> usize {
        if let Some(i) = self.group_index.get(&key) {
            return *i;
        }
        self.groups.push((
            key,
            Group {
                counts: vec![0; slots],
                persons: vec![Vec::new(); person_lists],
            },
        ));
        self.group_index.insert(key, self.groups.len() - 1);
        self.groups.len() - 1
    }
}

fn blank(w: &Option<String>) -> bool {
    w.as_deref().is_none_or(|w| w.trim().is_empty())
}

/// The segment a breakdown value lands in, as `keep_top` maps it on the DataFusion path.
fn kept<'a>(value: Option<&'a str>, keep: Option<&[Option<String>]>) -> Option<&'a str> {
    let Some(keep) = keep else { return value };
    match value {
        None if keep.iter().any(Option::is_none) => None,
        Some(v) if keep.iter().flatten().any(|k| k == v) => Some(v),
        _ => Some(OTHER_SEGMENT),
    }
}

impl QueryEngine {
    /// `None` when the request has a shape only the DataFusion path answers.
    pub(crate) fn cached_aggregate(
        &self,
        req: &AggregateRequest,
    ) -> Result<Option<Vec<AggregateRow>>> {
        let people = match req.measure {
            Measure::Total => false,
            Measure::Unique => true,
            _ => return Ok(None),
        };
        if !blank(&req.where_expr)
            || req.events.iter().any(|e| !blank(&e.where_expr))
            || !req.filters.is_empty()
        {
            return Ok(None);
        }
        let breakdown = match &req.breakdown {
            None => None,
            Some(Breakdown {
                by:
                    BreakdownBy::Property {
                        property,
                        source: PropertySource::Event,
                    },
                keep,
            }) => Some((ColumnKey::PropertyText(property.clone()), keep.as_deref())),
            Some(_) => return Ok(None),
        };
        let mut names: Vec<&str> = Vec::new();
        for e in &req.events {
            if !names.contains(&e.event.as_str()) {
                names.push(&e.event);
            }
        }
        let mut keys = vec![ColumnKey::Event, ColumnKey::Time];
        if people || req.persons.is_some() {
            keys.push(ColumnKey::Person);
        }
        if let Some((k, _)) = &breakdown {
            keys.push(k.clone());
        }
        let buckets = req.buckets.as_deref();
        let slots = buckets.map_or(0, <[i64]>::len) + 1;
        let whole = slots - 1;
        let aliases = self.identity().aliases(req.project)?;
        let sources = self.hot_sources(req.project, req.from_ms, req.to_ms)?;
        let lookup = buckets.map(|b| BucketLookup::new(b, req.to_ms));
        let lists = person_buckets(&sources, 1);
        // Groups and person lists count against the query's memory limit.
        let held = AtomicUsize::new(0);
        let partials =
            self.fold_sources(&sources, &keys, Partial::default, |acc, source, cols| {
                // A segment wholly inside the range needs no per-row time check.
                let inside = sources[source].within(req.from_ms, req.to_ms);
                let mut added = 0usize;
                let events = cols.text(&ColumnKey::Event)?;
                let wanted: Vec<Option<u16>> = events.translate(|name| {
                    let name = name?;
                    names.iter().position(|n| *n == name).map(|i| i as u16)
                });
                let segments: Option<(&[u32], Vec<u32>)> = match &breakdown {
                    Some((key, keep)) => {
                        let codes = cols.text(key)?;
                        Some((&codes.codes, codes.translate(|v| acc.label(kept(v, *keep)))))
                    }
                    None => None,
                };
                let none_label = if segments.is_none() {
                    acc.label(None)
                } else {
                    0
                };
                let time = cols.times(&ColumnKey::Time)?;
                let persons = if keys.contains(&ColumnKey::Person) {
                    Some(cols.persons()?)
                } else {
                    None
                };
                let mut cursor = PersonCursor::new(&aliases, lists);
                // Group of (event, local segment code): looked up once per source, not per row.
                let width = segments.as_ref().map_or(1, |(_, t)| t.len().max(1));
                let mut local: Vec<Option<usize>> = vec![None; names.len() * width];
                // Only the wanted events' rows, from the event column's postings.
                let matched = wanted
                    .iter()
                    .enumerate()
                    .filter_map(|(code, ev)| Some((code, (*ev)?)))
                    .map(|(code, ev)| Ok((ev, events.rows_of(code).ok_or_else(no_postings)?)))
                    .collect::<Result<Vec<_>>>()?;
                // Totals need no person: a histogram per (segment code, slot) per event, folded
                // into the groups once per source; the row loop below is for people.
                let matched = if people || req.persons.is_some() {
                    matched
                } else {
                    for (ev, rows) in matched {
                        let hist = histogram(
                            rows,
                            time,
                            inside,
                            req,
                            lookup.as_ref(),
                            &segments,
                            width,
                            slots,
                        );
                        for (seg, counts) in hist.chunks(slots).enumerate() {
                            if counts[whole] == 0 {
                                continue;
                            }
                            let label = segments.as_ref().map_or(none_label, |(_, t)| t[seg]);
                            let i = acc.group((ev, label), slots, 0);
                            added += GROUP_BYTES + slots * 8;
                            for (into, n) in acc.groups[i].1.counts.iter_mut().zip(counts) {
                                *into += n;
                            }
                        }
                    }
                    Vec::new()
                };
                for (ev, row) in matched
                    .into_iter()
                    .flat_map(|(ev, rows)| rows.iter().map(move |r| (ev, *r as usize)))
                {
                    let t = time[row];
                    if !inside && (t < req.from_ms || t >= req.to_ms) {
                        continue;
                    }
                    let (person, list) = match persons {
                        Some(p) if !p.is_null(row) => {
                            let (resolved, list) = cursor.resolve(p.value(row));
                            (Some(resolved), list)
                        }
                        _ => (None, 0),
                    };
                    if let Some((members, negate)) = &req.persons
                        && person.is_some_and(|p| members.contains(&p)) == *negate
                    {
                        continue;
                    }
                    let seg_code = segments.as_ref().map_or(0, |(c, _)| c[row] as usize);
                    let slot_key = usize::from(ev) * width + seg_code;
                    let index = match local[slot_key] {
                        Some(i) => i,
                        None => {
                            let label = segments.as_ref().map_or(none_label, |(_, t)| t[seg_code]);
                            let i = acc.group(
                                (ev, label),
                                slots,
                                if people { slots * lists } else { 0 },
                            );
                            added += GROUP_BYTES
                                + slots * 8
                                + slots * lists * 24 * usize::from(people)
                                + acc.labels[label as usize].as_ref().map_or(0, String::len);
                            local[slot_key] = Some(i);
                            i
                        }
                    };
                    let group = &mut acc.groups[index].1;
                    let bucket = lookup.as_ref().and_then(|l| l.index(t));
                    for slot in bucket.into_iter().chain([whole]) {
                        group.counts[slot] += 1;
                        let persons = group.persons.get_mut(slot * lists + list);
                        if let (Some(persons), Some(p)) = (persons, person)
                            && persons.last() != Some(&p)
                        {
                            persons.push(p);
                            added += 8;
                        }
                    }
                }
                if held.fetch_add(added, Ordering::Relaxed) + added > self.memory_limit() {
                    return Err(QueryError::TooLarge);
                }
                Ok(())
            })?;
        Ok(Some(finish(
            lists,
            partials,
            &names,
            people,
            buckets.is_some(),
            slots,
        )))
    }
}

/// Events per (segment code, slot) among `rows` (the last slot of each code: the range).
#[allow(clippy::too_many_arguments)]
fn histogram(
    rows: &[u32],
    time: &[i64],
    inside: bool,
    req: &AggregateRequest,
    lookup: Option<&BucketLookup<'_>>,
    segments: &Option<(&[u32], Vec<u32>)>,
    width: usize,
    slots: usize,
) -> Vec<u64> {
    let whole = slots - 1;
    let mut hist = vec![0u64; width * slots];
    for row in rows {
        let row = *row as usize;
        let t = time[row];
        if !inside && (t < req.from_ms || t >= req.to_ms) {
            continue;
        }
        let base = segments.as_ref().map_or(0, |(c, _)| c[row] as usize) * slots;
        if let Some(b) = lookup.and_then(|l| l.index(t)) {
            hist[base + b] += 1;
        }
        hist[base + whole] += 1;
    }
    hist
}

fn no_postings() -> QueryError {
    QueryError::Invalid("the event column has no postings".into())
}
