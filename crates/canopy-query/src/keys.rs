//! Hands DataFusion's Parquet reader the decryption properties of each segment file, keyed by
//! path. Keys are unwrapped per query and never put into table options (which SQL could read).

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::EncryptionFactoryOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::parquet_encryption::EncryptionFactory;
use object_store::path::Path;
use parquet::encryption::decrypt::FileDecryptionProperties;
use parquet::encryption::encrypt::FileEncryptionProperties;
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) struct SegmentKeys {
    by_path: HashMap<Path, Arc<FileDecryptionProperties>>,
    /// The snapshot's segments: the scan holds these keys until its last file is read, so
    /// holding the segments here keeps compaction and erasure from unlinking a file a running
    /// query has yet to open.
    _pinned: Vec<Arc<canopy_store::SegmentMeta>>,
}

impl std::fmt::Debug for SegmentKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentKeys")
            .field("files", &self.by_path.len())
            .finish()
    }
}

impl SegmentKeys {
    pub(crate) fn new(
        by_path: HashMap<Path, Arc<FileDecryptionProperties>>,
        pinned: Vec<Arc<canopy_store::SegmentMeta>>,
    ) -> Self {
        Self {
            by_path,
            _pinned: pinned,
        }
    }
}

#[async_trait]
impl EncryptionFactory for SegmentKeys {
    async fn get_file_encryption_properties(
        &self,
        _config: &EncryptionFactoryOptions,
        _schema: &SchemaRef,
        _file_path: &Path,
    ) -> Result<Option<Arc<FileEncryptionProperties>>> {
        Err(DataFusionError::NotImplemented(
            "segments are written by the store, not by queries".into(),
        ))
    }

    async fn get_file_decryption_properties(
        &self,
        _config: &EncryptionFactoryOptions,
        file_path: &Path,
    ) -> Result<Option<Arc<FileDecryptionProperties>>> {
        self.by_path
            .get(file_path)
            .cloned()
            .map(Some)
            .ok_or_else(|| DataFusionError::Execution("no data key for a segment file".into()))
    }
}
