//! Per-project state loaded from the control plane on first use and then kept in memory (the
//! sticky tiers, the consent decisions). Writers update the control plane first, then the
//! cached value.

use crate::ApiError;
use canopy_types::ProjectId;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

pub struct ProjectCache<V> {
    projects: RwLock<HashMap<ProjectId, Arc<RwLock<V>>>>,
}

impl<V> Default for ProjectCache<V> {
    fn default() -> Self {
        Self {
            projects: RwLock::default(),
        }
    }
}

impl<V> ProjectCache<V> {
    /// The project's value, loaded with `load` the first time.
    pub fn get(
        &self,
        id: ProjectId,
        load: impl FnOnce() -> Result<V, ApiError>,
    ) -> Result<Arc<RwLock<V>>, ApiError> {
        if let Some(v) = self.projects.read().get(&id) {
            return Ok(v.clone());
        }
        let loaded = load()?;
        Ok(self
            .projects
            .write()
            .entry(id)
            .or_insert_with(|| Arc::new(RwLock::new(loaded)))
            .clone())
    }

    /// Drops the project's value; the next use reloads it from the control plane.
    pub fn forget(&self, id: ProjectId) {
        self.projects.write().remove(&id);
    }
}
