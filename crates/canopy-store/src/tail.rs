//! The in-memory tail: records that are durable in the WAL but not yet in segments. Appends
//! arrive on the WAL writer thread; queries take cheap snapshots (sealed chunks are shared,
//! only the open chunk is copied).

use canopy_types::{Event, ProfileUpdate, ProjectId, Record};
use canopy_wal::WalFileId;
use std::collections::HashMap;
use std::sync::Arc;

/// Records per chunk before it is sealed and shared.
const CHUNK_ROWS: usize = 4096;

/// An immutable run of tail records of one project.
#[derive(Debug, Default)]
pub struct TailChunk {
    pub events: Vec<Event>,
    pub profiles: Vec<ProfileUpdate>,
}

#[derive(Debug, Default)]
pub(crate) struct ProjectTail {
    sealed: Vec<Arc<TailChunk>>,
    open: TailChunk,
}

impl ProjectTail {
    fn push(&mut self, r: Record) {
        match r {
            Record::Event(e) => self.open.events.push(e),
            Record::Profile(p) => self.open.profiles.push(p),
        }
        if self.open.events.len() + self.open.profiles.len() >= CHUNK_ROWS {
            self.sealed.push(Arc::new(std::mem::take(&mut self.open)));
        }
    }

    fn snapshot(&self, out: &mut Vec<Arc<TailChunk>>) {
        out.extend(self.sealed.iter().cloned());
        if !self.open.events.is_empty() || !self.open.profiles.is_empty() {
            out.push(Arc::new(TailChunk {
                events: self.open.events.clone(),
                profiles: self.open.profiles.clone(),
            }));
        }
    }

    pub(crate) fn chunks(&self) -> impl Iterator<Item = &TailChunk> {
        self.sealed
            .iter()
            .map(|c| c.as_ref())
            .chain(std::iter::once(&self.open))
    }
}

/// One generation of the tail: everything appended between two WAL rotations.
#[derive(Debug, Default)]
pub(crate) struct Generation {
    pub projects: HashMap<ProjectId, ProjectTail>,
    pub rows: usize,
    /// Set when frozen: every record of this generation is in WAL files ≤ this.
    pub wal_upto: WalFileId,
}

#[derive(Debug, Default)]
pub(crate) struct Tail {
    pub active: Generation,
    /// Oldest first; waiting to be written as segments.
    pub frozen: Vec<Arc<Generation>>,
}

impl Tail {
    pub(crate) fn apply(&mut self, records: Vec<Record>) {
        self.active.rows += records.len();
        for r in records {
            self.active.projects.entry(r.project()).or_default().push(r);
        }
    }

    /// Freezes the active generation (even when empty, so the checkpoint can advance).
    pub(crate) fn rotate(&mut self, closed: WalFileId) {
        let mut g = std::mem::take(&mut self.active);
        g.wal_upto = closed;
        self.frozen.push(Arc::new(g));
    }

    pub(crate) fn rows(&self) -> usize {
        self.active.rows + self.frozen.iter().map(|g| g.rows).sum::<usize>()
    }

    pub(crate) fn snapshot(&self, project: ProjectId) -> Vec<Arc<TailChunk>> {
        let mut out = Vec::new();
        for g in &self.frozen {
            if let Some(p) = g.projects.get(&project) {
                p.snapshot(&mut out);
            }
        }
        if let Some(p) = self.active.projects.get(&project) {
            p.snapshot(&mut out);
        }
        out
    }
}
