//! The suppression list (mParticle's Data Suppression API; issue #4 item 7): keyed hashes of
//! identifiers whose events and profile updates are dropped before any write. Raw ids are never
//! stored here; the hash key derives from the project key (`canopy-policy`).

use crate::Result;
use crate::sqlite::SqliteControl;
use canopy_types::ProjectId;
use rusqlite::params;

pub(crate) const MIGRATION_2: &str = "
CREATE TABLE suppressions (
    project_id    INTEGER NOT NULL REFERENCES projects(id),
    id_hash       BLOB NOT NULL,
    created_ms    INTEGER NOT NULL,
    PRIMARY KEY (project_id, id_hash)
) WITHOUT ROWID;
";

impl SqliteControl {
    /// Adds hashes; returns how many were new.
    pub(crate) fn add_suppressions(
        &self,
        id: ProjectId,
        hashes: &[[u8; 32]],
        now_ms: i64,
    ) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO suppressions (project_id, id_hash, created_ms) VALUES (?1, ?2, ?3)",
            )?;
            for h in hashes {
                n += stmt.execute(params![id.0 as i64, &h[..], now_ms])?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    pub(crate) fn remove_suppressions(&self, id: ProjectId, hashes: &[[u8; 32]]) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare_cached(
                "DELETE FROM suppressions WHERE project_id = ?1 AND id_hash = ?2",
            )?;
            for h in hashes {
                n += stmt.execute(params![id.0 as i64, &h[..]])?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    pub(crate) fn list_suppressions(&self, id: ProjectId) -> Result<Vec<[u8; 32]>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT id_hash FROM suppressions WHERE project_id = ?1")?;
        let rows = stmt.query_map(params![id.0 as i64], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for r in rows {
            let v = r?;
            if let Ok(h) = <[u8; 32]>::try_from(v.as_slice()) {
                out.push(h);
            }
        }
        Ok(out)
    }
}
