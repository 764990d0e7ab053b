//! Unwrapped project keys, cached in memory for the life of the process.

use crate::sqlite::unwrap_project_key;
use crate::{ControlPlane, SqliteControl};
use canopy_crypto::{CryptoError, Key, ProjectKeyring};
use canopy_types::ProjectId;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Debug)]
pub struct ControlKeyring {
    control: Arc<SqliteControl>,
    cache: RwLock<HashMap<u64, Key>>,
}

impl ControlKeyring {
    pub fn new(control: Arc<SqliteControl>) -> Self {
        Self {
            control,
            cache: RwLock::new(HashMap::new()),
        }
    }
}

impl ProjectKeyring for ControlKeyring {
    fn project_key(&self, project: u64) -> Result<Key, CryptoError> {
        if let Some(k) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&project)
        {
            return Ok(k.clone());
        }
        let wrapped = self
            .control
            .wrapped_project_key(ProjectId(project))
            .map_err(|e| CryptoError::MasterKey(format!("project {project} key: {e}")))?;
        let key = unwrap_project_key(self.control.master(), project, &wrapped)
            .map_err(|e| CryptoError::MasterKey(format!("project {project} key: {e}")))?;
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(project, key.clone());
        Ok(key)
    }
}
