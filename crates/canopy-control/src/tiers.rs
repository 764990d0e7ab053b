//! Sticky age tiers (issue #4 item 2): once a person is recorded as a child, later signals
//! cannot make them an adult; only an explicit, audited correction can. Keyed hashes of
//! identifiers only, like the suppression list.

use crate::Result;
use crate::sqlite::SqliteControl;
use canopy_types::ProjectId;
use rusqlite::params;

pub(crate) const MIGRATION_3: &str = "
CREATE TABLE person_tiers (
    project_id    INTEGER NOT NULL REFERENCES projects(id),
    id_hash       BLOB NOT NULL,
    tier          TEXT NOT NULL,
    updated_ms    INTEGER NOT NULL,
    PRIMARY KEY (project_id, id_hash)
) WITHOUT ROWID;
CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    project_id    INTEGER NOT NULL,
    time_ms       INTEGER NOT NULL,
    action        TEXT NOT NULL,
    detail        TEXT NOT NULL
);
";

impl SqliteControl {
    pub(crate) fn load_tiers(&self, id: ProjectId) -> Result<Vec<([u8; 32], String)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT id_hash, tier FROM person_tiers WHERE project_id = ?1")?;
        let rows = stmt.query_map(params![id.0 as i64], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (h, t) = r?;
            if let Ok(h) = <[u8; 32]>::try_from(h.as_slice()) {
                out.push((h, t));
            }
        }
        Ok(out)
    }

    /// Records tiers; `audit` (a correction) also writes an audit row naming the action.
    pub(crate) fn store_tiers(
        &self,
        id: ProjectId,
        tiers: &[([u8; 32], String)],
        audit: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO person_tiers (project_id, id_hash, tier, updated_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (project_id, id_hash) DO UPDATE SET tier = excluded.tier, updated_ms = excluded.updated_ms",
            )?;
            for (h, t) in tiers {
                stmt.execute(params![id.0 as i64, &h[..], t, now_ms])?;
            }
            if let Some(detail) = audit {
                tx.execute(
                    "INSERT INTO audit_log (project_id, time_ms, action, detail) VALUES (?1, ?2, 'tier_correction', ?3)",
                    params![id.0 as i64, now_ms, detail],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
