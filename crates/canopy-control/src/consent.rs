//! The consent ledger (issue #4 item 6, control A16): append-only, one row per grant or
//! withdrawal — keyed hash of the person's id, scope, method, notice version, time, evidence
//! hash, source. Never updated, never deleted except by erasure.

use crate::Result;
use crate::sqlite::SqliteControl;
use canopy_types::ProjectId;
use rusqlite::params;
use serde::Serialize;

pub(crate) const MIGRATION_4: &str = "
CREATE TABLE consent_ledger (
    id              INTEGER PRIMARY KEY,
    project_id      INTEGER NOT NULL REFERENCES projects(id),
    id_hash         BLOB NOT NULL,
    scope           TEXT NOT NULL,
    granted         INTEGER NOT NULL,
    method          TEXT NOT NULL,
    notice_version  TEXT NOT NULL,
    time_ms         INTEGER NOT NULL,
    evidence_hash   TEXT NOT NULL,
    source          TEXT NOT NULL
);
CREATE INDEX consent_by_person ON consent_ledger (project_id, id_hash, id);
";

/// One grant or withdrawal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentRecord {
    #[serde(skip)]
    pub id_hash: [u8; 32],
    pub scope: String,
    pub granted: bool,
    pub method: String,
    pub notice_version: String,
    pub time_ms: i64,
    pub evidence_hash: String,
    pub source: String,
}

impl SqliteControl {
    pub(crate) fn append_consent(&self, id: ProjectId, rows: &[ConsentRecord]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO consent_ledger (project_id, id_hash, scope, granted, method, notice_version, time_ms, evidence_hash, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for r in rows {
                stmt.execute(params![
                    id.0 as i64,
                    &r.id_hash[..],
                    r.scope,
                    r.granted,
                    r.method,
                    r.notice_version,
                    r.time_ms,
                    r.evidence_hash,
                    r.source
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every row of a project (or of one person), in the order recorded.
    pub(crate) fn read_consent(
        &self,
        id: ProjectId,
        person: Option<[u8; 32]>,
    ) -> Result<Vec<ConsentRecord>> {
        let conn = self.conn();
        let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(Vec<u8>, ConsentRecord)> {
            Ok((
                r.get(0)?,
                ConsentRecord {
                    id_hash: [0; 32],
                    scope: r.get(1)?,
                    granted: r.get(2)?,
                    method: r.get(3)?,
                    notice_version: r.get(4)?,
                    time_ms: r.get(5)?,
                    evidence_hash: r.get(6)?,
                    source: r.get(7)?,
                },
            ))
        };
        const COLS: &str = "SELECT id_hash, scope, granted, method, notice_version, time_ms, evidence_hash, source FROM consent_ledger";
        let rows: Vec<(Vec<u8>, ConsentRecord)> = match person {
            Some(h) => conn
                .prepare_cached(&format!(
                    "{COLS} WHERE project_id = ?1 AND id_hash = ?2 ORDER BY id"
                ))?
                .query_map(params![id.0 as i64, &h[..]], map)?
                .collect::<rusqlite::Result<_>>()?,
            None => conn
                .prepare_cached(&format!("{COLS} WHERE project_id = ?1 ORDER BY id"))?
                .query_map(params![id.0 as i64], map)?
                .collect::<rusqlite::Result<_>>()?,
        };
        Ok(rows
            .into_iter()
            .filter_map(|(h, mut r)| {
                r.id_hash = <[u8; 32]>::try_from(h.as_slice()).ok()?;
                Some(r)
            })
            .collect())
    }
}
