//! The background worker: flushes the tail when it is large or old, then compacts.

use crate::compaction::{compact_once, sweep_graveyard};
use crate::flush::flush_frozen;
use crate::store::Inner;
use crate::{Result, io_err};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

pub(crate) fn spawn(inner: Arc<Inner>) -> Result<std::thread::JoinHandle<()>> {
    let dir = inner.config.data_dir.clone();
    std::thread::Builder::new()
        .name("canopy-store-bg".into())
        .spawn(move || run(inner))
        .map_err(io_err(&dir))
}

fn run(inner: Arc<Inner>) {
    let mut last_flush = Instant::now();
    loop {
        {
            let mut flag = inner.shared.wake_flag.lock();
            if !*flag {
                let _ = inner
                    .shared
                    .wake
                    .wait_for(&mut flag, std::time::Duration::from_millis(500));
            }
            *flag = false;
        }
        if inner.stop.load(Ordering::SeqCst) {
            return;
        }
        let active_rows = inner.shared.tail.read().active.rows;
        let due = last_flush.elapsed() >= inner.config.flush_interval;
        if active_rows >= inner.config.flush_rows || (due && active_rows > 0) {
            let _guard = inner.flush_lock.lock();
            let outcome = inner
                .wal
                .rotate_blocking()
                .map_err(Into::into)
                .and_then(|_| flush_frozen(&inner));
            if let Err(e) = outcome {
                tracing::error!(error = %e, "flush failed; will retry");
            }
            last_flush = Instant::now();
        }
        // Flushing has priority: merge only while the tail is small, so sustained ingestion is
        // not throttled by rewrites that can wait for a quieter moment.
        if inner.shared.tail.read().rows() >= inner.config.flush_rows {
            continue;
        }
        let _guard = inner.flush_lock.lock();
        if let Err(e) = compact_once(&inner) {
            tracing::error!(error = %e, "compaction failed; will retry");
        }
        sweep_graveyard(&inner);
    }
}
