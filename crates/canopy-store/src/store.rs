//! The store handle: open (recover), append, snapshot, flush, shut down.

use crate::background;
use crate::dedup::{DedupWindow, dedup_key};
use crate::flush::flush_frozen;
use crate::layout::{Table, segment_key_purpose, segments_root};
use crate::manifest::{Manifest, SegmentMeta};
use crate::tail::{Tail, TailChunk};
use crate::{Result, StoreError, io_err};
use canopy_crypto::{Key, ProjectKeyring};
use canopy_types::{Clock, ProjectId, Record};
use canopy_wal::{RecoveryReport, Wal, WalConfig, WalFileId, WalSink};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    /// Person buckets per month partition; fixed when the store is created.
    pub buckets: u32,
    /// Flush the tail to segments once it holds this many records…
    pub flush_rows: usize,
    /// …or this long after the last flush, whichever comes first.
    pub flush_interval: Duration,
    /// Refuse appends (503, retry later) when the tail exceeds this many records.
    pub max_tail_rows: usize,
    /// Merge a partition's segments once it has this many.
    pub compaction_min_segments: usize,
    /// A partition's sorted run is cut into segments of at most this many rows (erasing one
    /// person rewrites about one such segment per month).
    pub max_segment_rows: u64,
    pub dedup_window: Duration,
    pub dedup_capacity: usize,
    /// fsync before acknowledging (tests that measure the cost may turn it off).
    pub fsync: bool,
    /// Run the background flush/compaction thread.
    pub background: bool,
    /// Runs before a flush advances the WAL checkpoint (after which WAL files are deleted).
    pub checkpoint_barrier: Option<CheckpointBarrier>,
}

/// What must be durable before the WAL checkpoint moves: state derived elsewhere from the
/// records being flushed (the identity store), which could otherwise no longer be replayed.
#[derive(Clone)]
pub struct CheckpointBarrier(pub Arc<dyn Fn() -> std::result::Result<(), String> + Send + Sync>);

impl std::fmt::Debug for CheckpointBarrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointBarrier")
    }
}

impl StoreConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            buckets: 16,
            flush_rows: 200_000,
            flush_interval: Duration::from_secs(10),
            max_tail_rows: 1_000_000,
            compaction_min_segments: 4,
            max_segment_rows: 131_072,
            dedup_window: Duration::from_secs(24 * 3600),
            dedup_capacity: 2_000_000,
            fsync: true,
            background: true,
            checkpoint_barrier: None,
        }
    }
}

/// State shared with the WAL writer thread.
pub(crate) struct Shared {
    pub tail: RwLock<Tail>,
    pub dedup: Mutex<DedupWindow>,
    pub clock: Arc<dyn Clock>,
    pub wake: Condvar,
    pub wake_flag: Mutex<bool>,
    pub flush_rows: usize,
}

struct TailSink(Arc<Shared>);

impl WalSink for TailSink {
    fn apply(&mut self, records: Vec<Record>, _wal_file: WalFileId) {
        let rows = {
            let mut tail = self.0.tail.write();
            tail.apply(records);
            tail.active.rows
        };
        if rows >= self.0.flush_rows {
            *self.0.wake_flag.lock() = true;
            self.0.wake.notify_one();
        }
    }
    fn rotated(&mut self, closed: WalFileId) {
        self.0.tail.write().rotate(closed);
    }
}

pub(crate) struct Inner {
    pub config: StoreConfig,
    pub keyring: Arc<dyn ProjectKeyring>,
    pub shared: Arc<Shared>,
    pub wal: Wal,
    /// The persisted manifest; held by whoever changes the set of segments.
    pub manifest: Mutex<Manifest>,
    /// The segments queries see (mirrors the manifest).
    pub segments: RwLock<Vec<Arc<SegmentMeta>>>,
    /// Replaced segments, unlinked once no snapshot holds them.
    pub graveyard: Mutex<Vec<Arc<SegmentMeta>>>,
    pub flush_lock: Mutex<()>,
    pub stop: AtomicBool,
    pub flushes: AtomicU64,
    pub compactions: AtomicU64,
    pub background: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.inner.config.data_dir)
            .finish()
    }
}

/// What an append did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub stored: usize,
    pub duplicates: usize,
}

/// A consistent view of one project: segments plus the tail, never both for one record.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub segments: Vec<Arc<SegmentMeta>>,
    pub tail: Vec<Arc<TailChunk>>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StoreStats {
    pub segments: usize,
    pub segment_rows: u64,
    pub segment_bytes: u64,
    pub tail_rows: usize,
    pub flushes: u64,
    pub compactions: u64,
    pub dedup_entries: usize,
}

impl Store {
    /// Opens (or creates) the store in `config.data_dir`, replaying the WAL.
    pub fn open(
        config: StoreConfig,
        keyring: Arc<dyn ProjectKeyring>,
        clock: Arc<dyn Clock>,
    ) -> Result<(Store, RecoveryReport)> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut manifest = match Manifest::load(&dir)? {
            Some(m) => m,
            None => {
                let mut m = Manifest {
                    buckets: config.buckets.max(1),
                    next_segment_id: 1,
                    ..Default::default()
                };
                m.store(&dir)?;
                m
            }
        };
        if manifest.buckets == 0 {
            manifest.buckets = 1;
        }
        remove_orphans(&dir, &manifest)?;
        let mut dedup = DedupWindow::new(
            config.dedup_window.as_millis() as i64,
            config.dedup_capacity,
        );
        dedup.load(&crate::dedup::dedup_path(&dir), clock.now_ms());
        let shared = Arc::new(Shared {
            tail: RwLock::new(Tail::default()),
            dedup: Mutex::new(dedup),
            clock,
            wake: Condvar::new(),
            wake_flag: Mutex::new(false),
            flush_rows: config.flush_rows,
        });
        let mut wal_config = WalConfig::new(dir.join("wal"));
        wal_config.fsync = config.fsync;
        // Rebuild the dedup window from what is replayed.
        let replay_sink = RecoveringSink {
            shared: shared.clone(),
            recovering: true,
        };
        let (wal, report) = Wal::open(
            wal_config,
            keyring.clone(),
            manifest.wal_checkpoint,
            Box::new(replay_sink),
        )?;
        let segments = manifest.segments.iter().cloned().map(Arc::new).collect();
        let inner = Arc::new(Inner {
            config,
            keyring,
            shared,
            wal,
            manifest: Mutex::new(manifest),
            segments: RwLock::new(segments),
            graveyard: Mutex::new(Vec::new()),
            flush_lock: Mutex::new(()),
            stop: AtomicBool::new(false),
            flushes: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            background: Mutex::new(None),
        });
        let store = Store { inner };
        if store.inner.config.background {
            let handle = background::spawn(store.inner.clone())?;
            *store.inner.background.lock() = Some(handle);
        }
        Ok((store, report))
    }

    /// Makes `records` durable; returns once they are fsync'd and queryable. Events whose
    /// dedup key was seen inside the window are dropped (and counted).
    pub async fn append(&self, project: ProjectId, records: Vec<Record>) -> Result<AppendOutcome> {
        let (records, keys, outcome) = self.admit(records)?;
        if records.is_empty() {
            return Ok(outcome);
        }
        let written = self.inner.wal.append(project, records).await;
        self.settle(written, &keys, outcome)
    }

    /// Blocking [`Store::append`], for callers outside a runtime.
    pub fn append_blocking(
        &self,
        project: ProjectId,
        records: Vec<Record>,
    ) -> Result<AppendOutcome> {
        let (records, keys, outcome) = self.admit(records)?;
        if records.is_empty() {
            return Ok(outcome);
        }
        let written = self.inner.wal.append_blocking(project, records);
        self.settle(written, &keys, outcome)
    }

    /// A failed write un-remembers its dedup keys, so the client's retry is not a "duplicate".
    fn settle(
        &self,
        written: canopy_wal::Result<()>,
        keys: &[u64],
        outcome: AppendOutcome,
    ) -> Result<AppendOutcome> {
        written.map(|()| outcome).map_err(|e| {
            self.forget(keys);
            e.into()
        })
    }

    fn admit(&self, records: Vec<Record>) -> Result<(Vec<Record>, Vec<u64>, AppendOutcome)> {
        if self.inner.shared.tail.read().rows() >= self.inner.config.max_tail_rows {
            return Err(StoreError::Overloaded);
        }
        let now = self.inner.shared.clock.now_ms();
        let mut dedup = self.inner.shared.dedup.lock();
        let mut keys = Vec::new();
        let mut kept = Vec::with_capacity(records.len());
        let mut duplicates = 0;
        for r in records {
            if let Some(k) = record_dedup_key(&r) {
                if !dedup.insert(k, now) {
                    duplicates += 1;
                    continue;
                }
                keys.push(k);
            }
            kept.push(r);
        }
        let outcome = AppendOutcome {
            stored: kept.len(),
            duplicates,
        };
        Ok((kept, keys, outcome))
    }

    fn forget(&self, keys: &[u64]) {
        let mut dedup = self.inner.shared.dedup.lock();
        for k in keys {
            dedup.forget(*k);
        }
    }

    /// Everything of `project` that queries should see right now.
    pub fn snapshot(&self, project: ProjectId) -> Snapshot {
        let segments = self.inner.segments.read();
        let tail = self.inner.shared.tail.read();
        Snapshot {
            segments: segments
                .iter()
                .filter(|s| s.partition.project == project)
                .cloned()
                .collect(),
            tail: tail.snapshot(project),
        }
    }

    /// The data key of a segment, unwrapped.
    pub fn segment_key(&self, segment: &SegmentMeta) -> Result<Key> {
        let pk = self
            .inner
            .keyring
            .project_key(segment.partition.project.0)?;
        Ok(pk.unwrap_key(&segment.wrapped_key, &segment_key_purpose(segment.id))?)
    }

    /// A segment's Arrow schema (from memory, or from its footer the first time).
    pub fn segment_schema(&self, segment: &SegmentMeta) -> Result<arrow::datatypes::SchemaRef> {
        if let Some(s) = segment.schema.get() {
            return Ok(s.clone());
        }
        let key = self.segment_key(segment)?;
        let schema =
            crate::segment::read_segment_schema(&self.segment_path(segment), &key, segment.id)?;
        let _ = segment.schema.set(schema.clone());
        Ok(schema)
    }

    pub fn segment_path(&self, segment: &SegmentMeta) -> PathBuf {
        self.inner.config.data_dir.join(&segment.file)
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.config.data_dir
    }

    /// Writes the whole tail to segments now.
    pub fn flush_now(&self) -> Result<usize> {
        let _guard = self.inner.flush_lock.lock();
        self.inner.wal.rotate_blocking()?;
        let n = flush_frozen(&self.inner)?;
        Ok(n)
    }

    /// Runs compaction until nothing is left to merge.
    pub fn compact_now(&self) -> Result<usize> {
        let _guard = self.inner.flush_lock.lock();
        let mut total = 0;
        loop {
            let n = crate::compaction::compact_once(&self.inner)?;
            total += n;
            if n == 0 {
                break;
            }
        }
        crate::compaction::sweep_graveyard(&self.inner);
        Ok(total)
    }

    pub fn stats(&self) -> StoreStats {
        let segments = self.inner.segments.read();
        StoreStats {
            segments: segments.len(),
            segment_rows: segments.iter().map(|s| s.rows).sum(),
            segment_bytes: segments.iter().map(|s| s.bytes).sum(),
            tail_rows: self.inner.shared.tail.read().rows(),
            flushes: self.inner.flushes.load(Ordering::Relaxed),
            compactions: self.inner.compactions.load(Ordering::Relaxed),
            dedup_entries: self.inner.shared.dedup.lock().len(),
        }
    }

    /// Stops the background worker and flushes the tail, so a restart replays nothing.
    pub fn shutdown(&self) -> Result<()> {
        self.inner.stop.store(true, Ordering::SeqCst);
        *self.inner.shared.wake_flag.lock() = true;
        self.inner.shared.wake.notify_all();
        if let Some(h) = self.inner.background.lock().take() {
            let _ = h.join();
        }
        self.flush_now()?;
        Ok(())
    }

    /// Which tables exist; queries on profile updates and events share the same machinery.
    pub fn tables() -> [Table; 2] {
        [Table::Events, Table::ProfileUpdates]
    }
}

pub(crate) fn record_dedup_key(r: &Record) -> Option<u64> {
    match r {
        Record::Event(e) if !e.insert_id.is_empty() => Some(dedup_key(
            e.project.0,
            &e.name,
            &e.distinct_id,
            e.time_ms,
            &e.insert_id,
        )),
        _ => None,
    }
}

/// During recovery the sink also refills the dedup window, so a client retrying an event that
/// was acknowledged just before a crash is still recognised.
struct RecoveringSink {
    shared: Arc<Shared>,
    recovering: bool,
}

impl WalSink for RecoveringSink {
    fn apply(&mut self, records: Vec<Record>, wal_file: WalFileId) {
        if self.recovering {
            let now = self.shared.clock.now_ms();
            let mut dedup = self.shared.dedup.lock();
            for r in &records {
                if let Some(k) = record_dedup_key(r) {
                    dedup.insert(k, now);
                }
            }
        }
        TailSink(self.shared.clone()).apply(records, wal_file);
    }
    fn rotated(&mut self, closed: WalFileId) {
        // The first rotation is the end of replay.
        self.recovering = false;
        TailSink(self.shared.clone()).rotated(closed);
    }
}

/// Deletes segment files the manifest does not list (left by a crash mid-flush).
fn remove_orphans(dir: &Path, manifest: &Manifest) -> Result<()> {
    let live: HashSet<PathBuf> = manifest
        .segments
        .iter()
        .map(|s| dir.join(&s.file))
        .collect();
    let root = segments_root(dir);
    if !root.exists() {
        return Ok(());
    }
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io_err(&d))? {
            let path = entry.map_err(io_err(&d))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if !live.contains(&path) {
                tracing::info!(file = %path.display(), "removing orphaned segment file");
                std::fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
    }
    Ok(())
}
