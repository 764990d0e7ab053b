//! Saved cohorts (issue #5): a name, a description and a definition, per project. The
//! definition is opaque JSON here (its versioned format belongs to `canopy-analytics`), so
//! the control plane never needs to understand a report to store one.

use crate::Result;
use crate::sqlite::SqliteControl;
use canopy_types::ProjectId;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

pub(crate) const MIGRATION_6: &str = "
CREATE TABLE cohorts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id    INTEGER NOT NULL REFERENCES projects(id),
    name          TEXT NOT NULL,
    description   TEXT NOT NULL,
    definition    TEXT NOT NULL,
    created_ms    INTEGER NOT NULL
);
CREATE INDEX cohorts_by_project ON cohorts (project_id);
";

/// A stored cohort.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CohortRow {
    pub id: u64,
    pub name: String,
    pub description: String,
    /// The definition's JSON, as `canopy-analytics` wrote it.
    pub definition: String,
    pub created_ms: i64,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CohortRow> {
    Ok(CohortRow {
        id: r.get::<_, i64>(0)? as u64,
        name: r.get(1)?,
        description: r.get(2)?,
        definition: r.get(3)?,
        created_ms: r.get(4)?,
    })
}

impl SqliteControl {
    pub(crate) fn insert_cohort(
        &self,
        id: ProjectId,
        name: &str,
        description: &str,
        definition: &str,
        now_ms: i64,
    ) -> Result<u64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO cohorts (project_id, name, description, definition, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id.0 as i64, name, description, definition, now_ms],
        )?;
        Ok(conn.last_insert_rowid() as u64)
    }

    pub(crate) fn list_cohorts(&self, id: ProjectId) -> Result<Vec<CohortRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, name, description, definition, created_ms FROM cohorts WHERE project_id = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map(params![id.0 as i64], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub(crate) fn get_cohort(&self, id: ProjectId, cohort: u64) -> Result<Option<CohortRow>> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT id, name, description, definition, created_ms FROM cohorts WHERE project_id = ?1 AND id = ?2",
                params![id.0 as i64, cohort as i64],
                row,
            )
            .optional()?)
    }

    pub(crate) fn remove_cohort(&self, id: ProjectId, cohort: u64) -> Result<bool> {
        let conn = self.conn();
        Ok(conn.execute(
            "DELETE FROM cohorts WHERE project_id = ?1 AND id = ?2",
            params![id.0 as i64, cohort as i64],
        )? > 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::{ControlPlane, SqliteControl};
    use canopy_crypto::{Key, MasterKey, MasterKeySource};
    use std::sync::Arc;

    #[test]
    fn cohorts_belong_to_their_project_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let master = Arc::new(MasterKey::from_key(Key::generate(), MasterKeySource::Env));
        let c = SqliteControl::open(dir.path(), master.clone()).unwrap();
        let a = c.create_project("a").unwrap().project.id;
        let b = c.create_project("b").unwrap().project.id;
        let id = c
            .create_cohort(a, "Buyers", "bought twice", "{\"version\":1}")
            .unwrap();
        assert!(
            c.cohort(b, id).unwrap().is_none(),
            "not visible from another project"
        );
        drop(c);
        let c = SqliteControl::open(dir.path(), master).unwrap();
        let row = c.cohort(a, id).unwrap().unwrap();
        assert_eq!(
            (row.name.as_str(), row.definition.as_str()),
            ("Buyers", "{\"version\":1}")
        );
        assert_eq!(c.cohorts(a).unwrap().len(), 1);
        assert!(!c.delete_cohort(b, id).unwrap());
        assert!(c.delete_cohort(a, id).unwrap());
        assert!(c.cohorts(a).unwrap().is_empty());
    }
}
