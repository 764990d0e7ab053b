//! The manifest: which segments are live, their wrapped data keys, and the WAL checkpoint.
//! Persisted as versioned JSON (`ManifestOnDisk`, version 2), separate from the in-memory [`SegmentMeta`], and
//! replaced atomically: write a temporary file, fsync, rename over, fsync the directory.

use crate::layout::{Month, Partition, Table};
use crate::{Result, StoreError, io_err};
use arrow::datatypes::SchemaRef;
use canopy_crypto::WrappedKey;
use canopy_types::ProjectId;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// A live segment, as the rest of the system sees it.
#[derive(Debug, Clone)]
pub struct SegmentMeta {
    pub id: u64,
    pub partition: Partition,
    /// Path relative to the data dir.
    pub file: PathBuf,
    pub rows: u64,
    pub bytes: u64,
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    pub wrapped_key: WrappedKey,
    /// The Arrow schema, known after writing or after the first footer read (not persisted:
    /// the footer is the source of truth).
    pub schema: Arc<OnceLock<SchemaRef>>,
    /// Which persons the segment holds (set when written, or at the first verification scan
    /// after a start; not persisted: the file is the source of truth).
    pub(crate) persons: Arc<OnceLock<crate::person_filter::PersonFilter>>,
    /// The smallest and largest person key the segment holds (`None`: not recorded, as in a
    /// version 1 manifest). A person outside it has no row here.
    pub person_range: Option<(u64, u64)>,
    /// Part of its partition's sorted run (whose segments' person ranges never overlap), as
    /// opposed to a segment added since the run was last cut.
    pub in_run: bool,
}

/// The whole manifest, in memory.
#[derive(Debug, Clone, Default)]
pub(crate) struct Manifest {
    pub generation: u64,
    pub buckets: u32,
    pub next_segment_id: u64,
    pub wal_checkpoint: u64,
    pub segments: Vec<SegmentMeta>,
}

const FORMAT: &str = "canopy-manifest";
/// Version 2 added each segment's `person_range` and `run`; version 1 manifests are still read.
const VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestOnDisk {
    format: String,
    version: u32,
    generation: u64,
    buckets: u32,
    next_segment_id: u64,
    wal_checkpoint: u64,
    segments: Vec<SegmentOnDisk>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentOnDisk {
    id: u64,
    project: u64,
    table: Table,
    month: String,
    bucket: u32,
    file: String,
    rows: u64,
    bytes: u64,
    min_time_ms: i64,
    max_time_ms: i64,
    wrapped_key: String,
    /// Added in version 2 (absent in version 1 manifests: no segment was in a sorted run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    person_range: Option<[u64; 2]>,
    /// Added in version 2: the segment is part of its partition's sorted run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    run: bool,
}

pub(crate) fn manifest_path(data_dir: &Path) -> PathBuf {
    data_dir.join("manifest.json")
}

impl Manifest {
    pub(crate) fn load(data_dir: &Path) -> Result<Option<Manifest>> {
        let path = manifest_path(data_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let v: ManifestOnDisk = serde_json::from_str(&text)
            .map_err(|e| StoreError::Manifest(format!("{}: {e}", path.display())))?;
        if v.format != FORMAT || !(1..=VERSION).contains(&v.version) {
            return Err(StoreError::Manifest(format!(
                "{}: unsupported manifest version {}",
                path.display(),
                v.version
            )));
        }
        let mut segments = Vec::with_capacity(v.segments.len());
        for s in v.segments {
            let month = Month::parse(&s.month)
                .ok_or_else(|| StoreError::Manifest(format!("bad month {}", s.month)))?;
            segments.push(SegmentMeta {
                id: s.id,
                partition: Partition {
                    project: ProjectId(s.project),
                    table: s.table,
                    month,
                    bucket: s.bucket,
                },
                file: PathBuf::from(s.file),
                rows: s.rows,
                bytes: s.bytes,
                min_time_ms: s.min_time_ms,
                max_time_ms: s.max_time_ms,
                wrapped_key: WrappedKey::from_hex(&s.wrapped_key)?,
                schema: Arc::default(),
                persons: Arc::default(),
                person_range: s.person_range.map(|[a, b]| (a, b)),
                in_run: s.run,
            });
        }
        Ok(Some(Manifest {
            generation: v.generation,
            buckets: v.buckets,
            next_segment_id: v.next_segment_id,
            wal_checkpoint: v.wal_checkpoint,
            segments,
        }))
    }

    /// Persists the manifest atomically, bumping its generation.
    pub(crate) fn store(&mut self, data_dir: &Path) -> Result<()> {
        self.generation += 1;
        let v = ManifestOnDisk {
            format: FORMAT.into(),
            version: VERSION,
            generation: self.generation,
            buckets: self.buckets,
            next_segment_id: self.next_segment_id,
            wal_checkpoint: self.wal_checkpoint,
            segments: self
                .segments
                .iter()
                .map(|s| SegmentOnDisk {
                    id: s.id,
                    project: s.partition.project.0,
                    table: s.partition.table,
                    month: s.partition.month.to_string(),
                    bucket: s.partition.bucket,
                    file: s.file.to_string_lossy().into_owned(),
                    rows: s.rows,
                    bytes: s.bytes,
                    min_time_ms: s.min_time_ms,
                    max_time_ms: s.max_time_ms,
                    wrapped_key: s.wrapped_key.to_hex(),
                    person_range: s.person_range.map(|(a, b)| [a, b]),
                    run: s.in_run,
                })
                .collect(),
        };
        let json =
            serde_json::to_vec_pretty(&v).map_err(|e| StoreError::Manifest(e.to_string()))?;
        let path = manifest_path(data_dir);
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(&json).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        std::fs::File::open(data_dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(data_dir))?;
        Ok(())
    }
}
