//! The identity table in SQLite (`identity.db` beside the control plane). One row per raw id:
//! its id key, the person key of its cluster, whether it is a user id, and the raw id sealed
//! with the project's identity key — the only place raw identifiers are kept.
//!
//! Writes use WAL mode with `synchronous=NORMAL`: a commit survives a process crash at once
//! and an OS crash after the next [`IdentityDb::sync`], which the store calls before it
//! checkpoints the event WAL (identity effects of events still in the WAL are replayed).

use crate::Result;
use crate::graph::Change;
use crate::keys::ProjectSecrets;
use canopy_types::{PersonKey, ProjectId};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

const SCHEMA_VERSION: i32 = 1;

pub struct IdentityDb {
    conn: Connection,
}

impl IdentityDb {
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Erased identities must not linger in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        let version: i32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(crate::IdentityError::Corrupt(format!(
                "identity.db has schema version {version}; this build knows {SCHEMA_VERSION}"
            )));
        }
        if version < 1 {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS ids (
                    project INTEGER NOT NULL,
                    id_key INTEGER NOT NULL,
                    person INTEGER NOT NULL,
                    identified INTEGER NOT NULL DEFAULT 0,
                    sealed BLOB NOT NULL,
                    first_seen INTEGER NOT NULL,
                    PRIMARY KEY (project, id_key)
                 ) WITHOUT ROWID;
                 CREATE INDEX IF NOT EXISTS ids_by_person ON ids (project, person);
                 PRAGMA user_version = 1;",
            )?;
        }
        Ok(Self { conn })
    }

    /// Every row of a project: `(id, person, identified)`.
    pub fn load(&self, project: ProjectId) -> Result<Vec<(u64, u64, bool)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id_key, person, identified FROM ids WHERE project = ?1")?;
        let rows = stmt.query_map(params![project.0 as i64], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? != 0,
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Persists `changes` in one transaction.
    pub fn write(
        &mut self,
        project: ProjectId,
        secrets: &ProjectSecrets,
        changes: &[Change],
        now_ms: i64,
    ) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let p = project.0 as i64;
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO ids (project, id_key, person, identified, sealed, first_seen)
                 VALUES (?1, ?2, ?2, 0, ?3, ?4)",
            )?;
            let mut point =
                tx.prepare_cached("UPDATE ids SET person = ?3 WHERE project = ?1 AND id_key = ?2")?;
            let mut ident = tx.prepare_cached(
                "UPDATE ids SET identified = 1 WHERE project = ?1 AND id_key = ?2",
            )?;
            let mut forget =
                tx.prepare_cached("DELETE FROM ids WHERE project = ?1 AND id_key = ?2")?;
            for c in changes {
                match c {
                    Change::Register { id, raw } => {
                        let sealed = secrets.seal(project, PersonKey(*id), raw)?;
                        insert.execute(params![p, *id as i64, sealed, now_ms])?;
                    }
                    Change::Point { id, person } => {
                        point.execute(params![p, *id as i64, *person as i64])?;
                    }
                    Change::Identified { id } => {
                        ident.execute(params![p, *id as i64])?;
                    }
                    Change::Forget { id } => {
                        forget.execute(params![p, *id as i64])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The sealed raw id of `id`, if registered.
    pub fn sealed(&self, project: ProjectId, id: PersonKey) -> Result<Option<Vec<u8>>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT sealed FROM ids WHERE project = ?1 AND id_key = ?2")?;
        Ok(stmt
            .query_row(params![project.0 as i64, id.0 as i64], |r| r.get(0))
            .optional()?)
    }

    /// Every `(id key, sealed raw id)` of a project.
    pub fn all_sealed(&self, project: ProjectId) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id_key, sealed FROM ids WHERE project = ?1")?;
        let rows = stmt.query_map(params![project.0 as i64], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Makes every commit so far durable against an OS crash.
    pub fn sync(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))?;
        Ok(())
    }

    /// After an erasure: copies the WAL into the database and truncates it, so deleted rows
    /// (zeroed in the database by `secure_delete`) survive in no WAL frame either.
    pub fn purge_wal(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}
