//! The sources of a cached-column query — a project's event segments overlapping the range
//! plus the tail's chunks — and a runner that loads each source's columns and folds it on
//! every core. Segment columns come from the cache, or are read (only the inputs missing),
//! derived and cached; tail chunks are derived per query (they change with every append).

use super::cache::ColumnCache;
use super::columns::{Codes, ColumnKey, HotColumn};
use crate::table::QueryEngine;
use crate::tail::chunk_batch;
use crate::{QueryError, Result};
use arrow::array::{RecordBatch, UInt64Array};
use arrow::buffer::ScalarBuffer;
use canopy_store::{SegmentMeta, Store, Table};
use canopy_types::ProjectId;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub(crate) enum Source {
    Segment(Arc<SegmentMeta>),
    Tail(RecordBatch),
}

impl Source {
    pub fn rows(&self) -> u64 {
        match self {
            Source::Segment(m) => m.rows,
            Source::Tail(b) => b.num_rows() as u64,
        }
    }

    /// Whether every row of the source is known to lie in `[from_ms, to_ms)`.
    pub fn within(&self, from_ms: i64, to_ms: i64) -> bool {
        matches!(self, Source::Segment(m) if m.min_time_ms >= from_ms && m.max_time_ms < to_ms)
    }
}

/// How many person buckets the sources' segments span (at least `at_least`): sharding rows
/// by the store's own bucket function keeps each shard's rows in few sorted segments.
pub(crate) fn person_buckets(sources: &[Source], at_least: usize) -> usize {
    sources
        .iter()
        .filter_map(|s| match s {
            Source::Segment(m) => Some(m.partition.bucket as usize + 1),
            Source::Tail(_) => None,
        })
        .max()
        .unwrap_or(1)
        .max(at_least)
}

/// Resolves stored person keys to persons (identity merges) and their bucket among
/// `buckets`, remembering the previous key: a person's rows are consecutive in a source, so
/// the lookup and the bucket are computed once per person.
pub(crate) struct PersonCursor<'a> {
    aliases: &'a HashMap<u64, u64>,
    buckets: u32,
    last: Option<(u64, u64, usize)>,
}

impl<'a> PersonCursor<'a> {
    pub fn new(aliases: &'a HashMap<u64, u64>, buckets: usize) -> Self {
        Self {
            aliases,
            buckets: buckets.max(1) as u32,
            last: None,
        }
    }

    /// (person, bucket) of a stored key.
    pub fn resolve(&mut self, raw: u64) -> (u64, usize) {
        if let Some((r, person, bucket)) = self.last
            && r == raw
        {
            return (person, bucket);
        }
        let person = if self.aliases.is_empty() {
            raw
        } else {
            self.aliases.get(&raw).copied().unwrap_or(raw)
        };
        let bucket = canopy_types::PersonKey(person).bucket(self.buckets) as usize;
        self.last = Some((raw, person, bucket));
        (person, bucket)
    }
}

/// The loaded columns of one source.
#[derive(Debug, Default, Clone)]
pub(crate) struct Loaded {
    columns: HashMap<ColumnKey, Arc<HotColumn>>,
}

fn absent(what: &str) -> QueryError {
    QueryError::Invalid(format!("the column cache lacks {what}"))
}

impl Loaded {
    pub fn persons(&self) -> Result<&UInt64Array> {
        match self.columns.get(&ColumnKey::Person).map(|c| c.as_ref()) {
            Some(HotColumn::Persons(p)) => Ok(p),
            _ => Err(absent("person")),
        }
    }
    pub fn times(&self, key: &ColumnKey) -> Result<&ScalarBuffer<i64>> {
        match self.columns.get(key).map(|c| c.as_ref()) {
            Some(HotColumn::Times(t)) => Ok(t),
            _ => Err(absent("a time column")),
        }
    }
    pub fn text(&self, key: &ColumnKey) -> Result<&Codes> {
        match self.columns.get(key).map(|c| c.as_ref()) {
            Some(HotColumn::Text(c)) => Ok(c),
            _ => Err(absent("a text column")),
        }
    }
    pub fn ranks(&self) -> Result<&[u32]> {
        match self.columns.get(&ColumnKey::Tie).map(|c| c.as_ref()) {
            Some(HotColumn::Ranks(r)) => Ok(r),
            _ => Err(absent("the tie ranks")),
        }
    }
}

/// Loads `keys` of a segment through the cache: only the inputs of missing columns are read.
fn load_segment(
    store: &Store,
    cache: &ColumnCache,
    generation: u64,
    segment: &SegmentMeta,
    keys: &[ColumnKey],
) -> Result<Loaded> {
    let mut loaded = Loaded::default();
    let mut missing = Vec::new();
    for key in keys {
        match cache.get(segment.id, key) {
            Some(c) => {
                loaded.columns.insert(key.clone(), c);
            }
            None => missing.push(key.clone()),
        }
    }
    if missing.is_empty() {
        return Ok(loaded);
    }
    let mut inputs: Vec<String> = missing.iter().flat_map(ColumnKey::inputs).collect();
    inputs.sort();
    inputs.dedup();
    let names: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let key = store.segment_key(segment)?;
    let batches =
        canopy_store::read_segment_columns(&store.segment_path(segment), &key, segment.id, &names)?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| absent("a segment's batches"))?;
    let batch = arrow::compute::concat_batches(&schema, &batches)?;
    for key in missing {
        let column = Arc::new(key.derive(&batch)?);
        cache.insert(generation, segment.id, key.clone(), column.clone());
        loaded.columns.insert(key, column);
    }
    Ok(loaded)
}

/// The insert ids of a source's rows, read only when ties need them (never cached).
pub(crate) fn source_insert_ids(store: &Store, source: &Source) -> Result<arrow::array::ArrayRef> {
    let column = match source {
        Source::Segment(meta) => {
            let key = store.segment_key(meta)?;
            let path = store.segment_path(meta);
            let batches = canopy_store::read_segment_columns(&path, &key, meta.id, &["insert_id"])?;
            let arrays: Vec<&dyn arrow::array::Array> = batches
                .iter()
                .filter_map(|b| b.column_by_name("insert_id"))
                .map(|c| c.as_ref())
                .collect();
            arrow::compute::concat(&arrays)?
        }
        Source::Tail(batch) => batch
            .column_by_name("insert_id")
            .cloned()
            .ok_or_else(|| absent("insert_id"))?,
    };
    Ok(column)
}

impl QueryEngine {
    /// The event sources of `project` that may hold rows in `[from_ms, to_ms)`.
    pub(crate) fn hot_sources(
        &self,
        project: ProjectId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Source>> {
        let snapshot = self.store().snapshot(project);
        let mut sources: Vec<Source> = snapshot
            .segments
            .into_iter()
            .filter(|s| {
                s.partition.table == Table::Events
                    && s.max_time_ms >= from_ms
                    && s.min_time_ms < to_ms
            })
            .map(Source::Segment)
            .collect();
        let mut seq = canopy_store::TAIL_SEQ_BASE;
        for chunk in &snapshot.tail {
            if let Some(b) = chunk_batch(chunk, Table::Events, &mut seq)? {
                sources.push(Source::Tail(b));
            }
        }
        // Largest first, so the last source a core picks up is a small one.
        sources.sort_by_key(|s| std::cmp::Reverse(s.rows()));
        Ok(sources)
    }

    /// The columns `keys` of one source (through the cache for a segment).
    pub(crate) fn load_source(
        &self,
        source: &Source,
        keys: &[ColumnKey],
        cache: &ColumnCache,
        generation: u64,
    ) -> Result<Loaded> {
        Ok(match source {
            Source::Segment(meta) => load_segment(self.store(), cache, generation, meta, keys)?,
            Source::Tail(batch) => {
                let mut loaded = Loaded::default();
                for key in keys {
                    loaded
                        .columns
                        .insert(key.clone(), Arc::new(key.derive(batch)?));
                }
                loaded
            }
        })
    }

    /// Loads `keys` of every source and folds them into one accumulator per core (`f` gets
    /// the source's index and its columns). Cores take sources from a shared queue.
    pub(crate) fn fold_sources<A: Send>(
        &self,
        sources: &[Source],
        keys: &[ColumnKey],
        init: impl Fn() -> A + Sync,
        f: impl Fn(&mut A, usize, &Loaded) -> Result<()> + Sync,
    ) -> Result<Vec<A>> {
        let cache = self.column_cache();
        let generation = cache.generation();
        let next = AtomicUsize::new(0);
        let (init, f, next, cache) = (&init, &f, &next, &cache);
        let work = move || -> Result<A> {
            let mut acc = init();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(source) = sources.get(i) else {
                    return Ok(acc);
                };
                let loaded = self.load_source(source, keys, cache, generation)?;
                f(&mut acc, i, &loaded)?;
            }
        };
        on_cores(
            self.target_partitions().clamp(1, sources.len().max(1)),
            work,
        )
    }
}

/// Runs `work` on `cores` threads (each takes its items from a shared queue) and collects
/// each thread's result; a failed thread fails the query.
pub(crate) fn on_cores<A: Send>(
    cores: usize,
    work: impl Fn() -> Result<A> + Sync,
) -> Result<Vec<A>> {
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cores.max(1)).map(|_| scope.spawn(work)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| QueryError::Invalid("a query worker failed".into()))?
            })
            .collect()
    })
}
