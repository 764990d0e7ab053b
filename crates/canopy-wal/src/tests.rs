use crate::{Wal, WalConfig, WalSink, wal_file_path};
use canopy_crypto::MemoryKeyring as Keys;
use canopy_types::{Event, PersonKey, ProjectId, Record};
use parking_lot::Mutex;
use std::sync::Arc;

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Record>>>, Arc<Mutex<Vec<u64>>>);
impl WalSink for Collect {
    fn apply(&mut self, records: Vec<Record>, _wal_file: u64) {
        self.0.lock().extend(records);
    }
    fn rotated(&mut self, closed: u64) {
        self.1.lock().push(closed);
    }
}

fn ev(i: i64) -> Record {
    Record::Event(Event {
        project: ProjectId(1),
        name: "e".into(),
        time_ms: i,
        distinct_id: format!("user-{i}"),
        person: PersonKey(i as u64),
        insert_id: String::new(),
        received_ms: i,
        properties: Default::default(),
        ip: None,
    })
}

fn open(
    dir: &std::path::Path,
    keys: Arc<Keys>,
    checkpoint: u64,
) -> (Wal, Collect, crate::RecoveryReport) {
    let sink = Collect::default();
    let (wal, report) = Wal::open(
        WalConfig::new(dir),
        keys,
        checkpoint,
        Box::new(sink.clone()),
    )
    .unwrap();
    (wal, sink, report)
}

#[test]
fn acknowledged_records_are_replayed_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(Keys::default());
    {
        let (wal, sink, _) = open(dir.path(), keys.clone(), 0);
        for i in 0..10 {
            wal.append_blocking(ProjectId(1), vec![ev(i), ev(i + 100)])
                .unwrap();
        }
        assert_eq!(sink.0.lock().len(), 20);
    }
    let (_wal, sink, report) = open(dir.path(), keys, 0);
    assert_eq!(report.records_replayed, 20);
    assert_eq!(sink.0.lock().len(), 20);
}

#[test]
fn torn_tail_is_truncated_and_earlier_frames_survive() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(Keys::default());
    {
        let (wal, _, _) = open(dir.path(), keys.clone(), 0);
        for i in 0..5 {
            wal.append_blocking(ProjectId(1), vec![ev(i)]).unwrap();
        }
    }
    let path = wal_file_path(dir.path(), 1);
    let len = std::fs::metadata(&path).unwrap().len();
    // Simulate a crash mid-write: chop the last frame in half, then add garbage.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 20).unwrap();
    drop(f);
    let (_wal, sink, report) = open(dir.path(), keys, 0);
    assert_eq!(sink.0.lock().len(), 4);
    assert!(report.bytes_truncated > 0);
}

#[test]
fn files_at_or_below_the_checkpoint_are_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(Keys::default());
    {
        let (wal, _, _) = open(dir.path(), keys.clone(), 0);
        wal.append_blocking(ProjectId(1), vec![ev(1)]).unwrap();
        let closed = wal.rotate_blocking().unwrap();
        assert_eq!(closed, 1);
        wal.append_blocking(ProjectId(1), vec![ev(2)]).unwrap();
    }
    let (_wal, sink, report) = open(dir.path(), keys, 1);
    assert_eq!(report.files_removed_as_flushed, 1);
    assert_eq!(*sink.0.lock(), vec![ev(2)]);
}

#[test]
fn wal_bytes_do_not_contain_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(Keys::default());
    let (wal, _, _) = open(dir.path(), keys, 0);
    wal.append_blocking(ProjectId(1), vec![ev(424242)]).unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(11).any(|w| w == b"user-424242"));
    }
}

#[test]
fn losing_the_project_key_makes_frames_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, _, _) = open(dir.path(), Arc::new(Keys::default()), 0);
        wal.append_blocking(ProjectId(1), vec![ev(1)]).unwrap();
    }
    let sink = Collect::default();
    let err = Wal::open(
        WalConfig::new(dir.path()),
        Arc::new(Keys::default()),
        0,
        Box::new(sink),
    );
    assert!(err.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_all_acknowledged_once() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(Keys::default());
    let (wal, sink, _) = open(dir.path(), keys, 0);
    let mut tasks = Vec::new();
    for t in 0..16 {
        let wal = wal.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                wal.append(ProjectId(1), vec![ev(t * 1000 + i)])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(sink.0.lock().len(), 800);
}
