//! The group-commit writer thread.

use crate::codec::encode_records;
use crate::file::{
    FRAME_HEADER_LEN, KeysFile, WalFileId, frame_aad, frame_nonce, header, sync_dir, wal_file_path,
    wal_keys_path,
};
use crate::recovery::{RecoveryReport, list_files, replay_file};
use crate::{Result, WalError, io_err};
use canopy_crypto::{ProjectKeyring, seal};
use canopy_types::{ProjectId, Record};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Instant;
use tokio::sync::oneshot;

/// Where durable records go: the store's in-memory tail. Called on the writer thread, after the
/// fsync and before the acknowledgement, so the tail and the WAL never disagree.
pub trait WalSink: Send + 'static {
    fn apply(&mut self, records: Vec<Record>, wal_file: WalFileId);
    /// The writer closed `closed` and now writes to `closed + 1`: every record in files up to
    /// `closed` has been applied.
    fn rotated(&mut self, closed: WalFileId);
}

#[derive(Debug, Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    /// Waiting appends beyond this are refused with [`WalError::Overloaded`].
    pub queue_depth: usize,
    /// Upper bound of bytes gathered into one group commit.
    pub max_group_bytes: usize,
    /// Rotate to a new file after this many bytes.
    pub max_file_bytes: u64,
    /// fsync before acknowledging. Only tests and benchmarks that say so turn this off.
    pub fsync: bool,
}

impl WalConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            queue_depth: 8192,
            max_group_bytes: 16 << 20,
            max_file_bytes: 256 << 20,
            fsync: true,
        }
    }
}

/// How the writer reports back: to an async task, or to a thread that blocks (which works
/// from inside a runtime too, unlike `blocking_recv`).
enum Ack<T> {
    Async(oneshot::Sender<Result<T>>),
    Sync(std::sync::mpsc::SyncSender<Result<T>>),
}

impl<T> Ack<T> {
    fn send(self, v: Result<T>) {
        match self {
            Ack::Async(tx) => {
                let _ = tx.send(v);
            }
            Ack::Sync(tx) => {
                let _ = tx.send(v);
            }
        }
    }
}

fn sync_ack<T>() -> (Ack<T>, std::sync::mpsc::Receiver<Result<T>>) {
    let (tx, rx) = sync_channel(1);
    (Ack::Sync(tx), rx)
}

enum Command {
    Append {
        project: ProjectId,
        records: Vec<Record>,
        done: Ack<()>,
    },
    Rotate {
        done: Ack<WalFileId>,
    },
}

/// Handle to the WAL. Cloning is cheap; dropping the last handle stops the writer.
#[derive(Clone)]
pub struct Wal {
    tx: SyncSender<Command>,
    dir: PathBuf,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.dir).finish()
    }
}

impl Wal {
    /// Replays files newer than `checkpoint` into `sink`, removes files at or below it, and
    /// starts the writer on a fresh file.
    pub fn open(
        config: WalConfig,
        keyring: Arc<dyn ProjectKeyring>,
        checkpoint: WalFileId,
        mut sink: Box<dyn WalSink>,
    ) -> Result<(Self, RecoveryReport)> {
        std::fs::create_dir_all(&config.dir).map_err(io_err(&config.dir))?;
        let mut report = RecoveryReport::default();
        let mut last = checkpoint;
        for seq in list_files(&config.dir)? {
            if seq <= checkpoint {
                remove_file_pair(&config.dir, seq)?;
                report.files_removed_as_flushed += 1;
                continue;
            }
            replay_file(
                &config.dir,
                seq,
                keyring.as_ref(),
                &mut report,
                &mut |records| sink.apply(records, seq),
            )?;
            last = last.max(seq);
        }
        sync_dir(&config.dir)?;
        let seq = last + 1;
        // Everything replayed lives in files up to `last`; tell the sink so a flush can cover it.
        sink.rotated(last);
        let current = CurrentFile::create(&config.dir, seq)?;
        let (tx, rx) = sync_channel(config.queue_depth);
        let dir = config.dir.clone();
        std::thread::Builder::new()
            .name("canopy-wal".into())
            .spawn(move || writer_loop(config, keyring, current, sink, rx))
            .map_err(io_err(&dir))?;
        Ok((Self { tx, dir }, report))
    }

    /// Appends `records` of one project; resolves once they are durable and in the sink.
    pub async fn append(&self, project: ProjectId, records: Vec<Record>) -> Result<()> {
        let (done, rx) = oneshot::channel();
        let done = Ack::Async(done);
        match self.tx.try_send(Command::Append {
            project,
            records,
            done,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(WalError::Overloaded),
            Err(TrySendError::Disconnected(_)) => return Err(WalError::Stopped),
        }
        rx.await.map_err(|_| WalError::Stopped)?
    }

    /// Blocking form of [`Wal::append`] for callers outside an async runtime; waits for queue
    /// space instead of failing when the queue is full.
    pub fn append_blocking(&self, project: ProjectId, records: Vec<Record>) -> Result<()> {
        let (done, rx) = sync_ack();
        self.tx
            .send(Command::Append {
                project,
                records,
                done,
            })
            .map_err(|_| WalError::Stopped)?;
        rx.recv().map_err(|_| WalError::Stopped)?
    }

    /// Closes the current file and starts the next; returns the closed file's sequence.
    pub fn rotate_blocking(&self) -> Result<WalFileId> {
        let (done, rx) = sync_ack();
        self.tx
            .send(Command::Rotate { done })
            .map_err(|_| WalError::Stopped)?;
        rx.recv().map_err(|_| WalError::Stopped)?
    }

    /// Deletes WAL files whose records are all in segments (sequence ≤ `upto`).
    pub fn remove_flushed(&self, upto: WalFileId) -> Result<usize> {
        let mut n = 0;
        for seq in list_files(&self.dir)? {
            if seq <= upto {
                remove_file_pair(&self.dir, seq)?;
                n += 1;
            }
        }
        if n > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(n)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn remove_file_pair(dir: &Path, seq: WalFileId) -> Result<()> {
    for p in [wal_file_path(dir, seq), wal_keys_path(dir, seq)] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&p)(e)),
        }
    }
    Ok(())
}

struct CurrentFile {
    seq: WalFileId,
    path: PathBuf,
    file: File,
    keys: KeysFile,
    frames: u64,
    bytes: u64,
}

impl CurrentFile {
    fn create(dir: &Path, seq: WalFileId) -> Result<Self> {
        let path = wal_file_path(dir, seq);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let h = header(seq);
        file.write_all(&h).map_err(io_err(&path))?;
        file.sync_all().map_err(io_err(&path))?;
        sync_dir(dir)?;
        Ok(Self {
            seq,
            path,
            file,
            keys: KeysFile::create(dir, seq),
            frames: 0,
            bytes: h.len() as u64,
        })
    }
}

struct Pending {
    records: Vec<Record>,
    done: Ack<()>,
}

fn writer_loop(
    config: WalConfig,
    keyring: Arc<dyn ProjectKeyring>,
    mut current: CurrentFile,
    mut sink: Box<dyn WalSink>,
    rx: Receiver<Command>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut batch: Vec<Pending> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        let mut rotate: Option<Ack<WalFileId>> = None;
        buf.clear();
        let mut new_keys = false;
        // Gather everything that is already waiting: one fsync for all of it.
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Append {
                    project,
                    records,
                    done,
                } => {
                    match encode_frame(&mut current, keyring.as_ref(), project, &records, &mut buf)
                    {
                        Ok(created_key) => {
                            new_keys |= created_key;
                            batch.push(Pending { records, done });
                        }
                        Err(e) => done.send(Err(e)),
                    }
                }
                Command::Rotate { done } => {
                    rotate = Some(done);
                    break;
                }
            }
            if buf.len() >= config.max_group_bytes {
                break;
            }
            next = rx.try_recv().ok();
        }
        let outcome = commit(&config, &mut current, &buf, new_keys);
        match outcome {
            Ok(()) => {
                for p in batch.drain(..) {
                    sink.apply(p.records, current.seq);
                    p.done.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "WAL write failed; refusing the batch");
                for p in batch.drain(..) {
                    p.done
                        .send(Err(WalError::Format(format!("WAL write failed: {e}"))));
                }
            }
        }
        let size_rotate = current.bytes >= config.max_file_bytes;
        if rotate.is_some() || size_rotate {
            let result = CurrentFile::create(&config.dir, current.seq + 1).map(|next| {
                let closed = current.seq;
                current = next;
                sink.rotated(closed);
                closed
            });
            if let Some(done) = rotate {
                done.send(result);
            } else if let Err(e) = result {
                tracing::error!(error = %e, "WAL rotation failed");
            }
        }
    }
    tracing::debug!("WAL writer stopped");
}

fn encode_frame(
    current: &mut CurrentFile,
    keyring: &dyn ProjectKeyring,
    project: ProjectId,
    records: &[Record],
    buf: &mut Vec<u8>,
) -> Result<bool> {
    let (key, created) = current.keys.get_or_create(project.0, keyring)?;
    let frame = current.frames;
    let plain = encode_records(records);
    let ct = seal(
        &key,
        &frame_nonce(frame),
        &frame_aad(current.seq, project.0, frame),
        &plain,
    )?;
    let body_len = 16 + ct.len();
    let mut body = Vec::with_capacity(body_len);
    body.extend_from_slice(&project.0.to_le_bytes());
    body.extend_from_slice(&frame.to_le_bytes());
    body.extend_from_slice(&ct);
    buf.extend_from_slice(&(body_len as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    buf.extend_from_slice(&body);
    current.frames += 1;
    const { assert!(FRAME_HEADER_LEN == 8) };
    Ok(created)
}

fn commit(config: &WalConfig, current: &mut CurrentFile, buf: &[u8], new_keys: bool) -> Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    if new_keys {
        current.keys.sync()?;
    }
    let path = current.path.clone();
    let written = current.file.write_all(buf).and_then(|()| {
        if config.fsync {
            let started = Instant::now();
            current.file.sync_data()?;
            metrics::histogram!("canopy_wal_fsync_seconds").record(started.elapsed().as_secs_f64());
        }
        Ok(())
    });
    if let Err(e) = written {
        // Cut the partial write off so that later frames are not stranded behind garbage.
        let _ = current.file.set_len(current.bytes);
        let _ = current.file.seek(SeekFrom::Start(current.bytes));
        return Err(io_err(&path)(e));
    }
    current.bytes += buf.len() as u64;
    metrics::counter!("canopy_wal_bytes_total").increment(buf.len() as u64);
    metrics::counter!("canopy_wal_group_commits_total").increment(1);
    Ok(())
}
