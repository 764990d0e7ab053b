//! The SQLite implementation of the control plane. Opened by the server and, concurrently, by
//! CLI commands (WAL journal mode, busy timeout).

use crate::consent::ConsentRecord;
use crate::secrets::{SECRET_ID_LEN, hash_secret, secret_id, verify_secret};
use crate::{
    ControlError, ControlPlane, CreatedProject, Project, ProjectSettings, Result, generate_secret,
    generate_token,
};
use canopy_crypto::{Key, MasterKey};
use canopy_types::ProjectId;
use parking::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod parking {
    pub use std::sync::Mutex;
}

const SCHEMA_VERSION: i64 = 8;

const MIGRATION_1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE projects (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    token         TEXT NOT NULL UNIQUE,
    secret_id     TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    wrapped_key   BLOB NOT NULL,
    created_ms    INTEGER NOT NULL
);
CREATE INDEX projects_secret_id ON projects(secret_id);
CREATE TABLE project_settings (
    project_id    INTEGER NOT NULL REFERENCES projects(id),
    version       INTEGER NOT NULL,
    settings      TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    PRIMARY KEY (project_id, version)
);
";

/// SQLite-backed control plane.
#[derive(Debug)]
pub struct SqliteControl {
    conn: Mutex<Connection>,
    master: Arc<MasterKey>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl SqliteControl {
    /// Opens `control.db` in `data_dir`, migrating it, and checks the master key before
    /// anything else is read.
    pub fn open(data_dir: &Path, master: Arc<MasterKey>) -> Result<Self> {
        let path = data_dir.join("control.db");
        if path.exists() {
            Self::verify_master_read_only(&path, &master)?;
        }
        let conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Deleted rows (salts, erased people's ledger rows) are overwritten, not just unlinked.
        conn.pragma_update(None, "secure_delete", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(ControlError::FutureSchema(version));
        }
        if version < 1 {
            conn.execute_batch(&format!(
                "BEGIN; {MIGRATION_1} PRAGMA user_version = 1; COMMIT;"
            ))?;
        }
        if version < 2 {
            conn.execute_batch(&format!(
                "BEGIN; {} PRAGMA user_version = 2; COMMIT;",
                crate::suppression::MIGRATION_2
            ))?;
        }
        if version < 3 {
            conn.execute_batch(&format!(
                "BEGIN; {} PRAGMA user_version = 3; COMMIT;",
                crate::tiers::MIGRATION_3
            ))?;
        }
        if version < 4 {
            conn.execute_batch(&format!(
                "BEGIN; {} PRAGMA user_version = 4; COMMIT;",
                crate::consent::MIGRATION_4
            ))?;
        }
        if version < 5 {
            conn.execute_batch(&format!(
                "BEGIN; {} PRAGMA user_version = 5; COMMIT;",
                crate::daily_salts::MIGRATION_5
            ))?;
        }
        if version < 6 {
            conn.execute_batch(&format!(
                "BEGIN; {} PRAGMA user_version = 6; COMMIT;",
                crate::cohorts::MIGRATION_6
            ))?;
        }
        if version < 7 {
            conn.execute_batch(&format!(
                "BEGIN; {} PRAGMA user_version = 7; COMMIT;",
                crate::dsr::MIGRATION_7
            ))?;
        }
        if version < 8 {
            conn.execute_batch(&format!(
                "BEGIN; {} PRAGMA user_version = 8; COMMIT;",
                crate::dsr::MIGRATION_8
            ))?;
        }
        if !verify_master(&conn, &master)? {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('master_key_check', ?1)",
                params![master.check_value()?],
            )?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            master,
        })
    }

    /// Checks the master key without writing anything, so a wrong key leaves the data dir as
    /// it was.
    fn verify_master_read_only(path: &Path, master: &MasterKey) -> Result<()> {
        use rusqlite::OpenFlags;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let has_meta: bool = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'meta'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)?;
        if has_meta {
            verify_master(&conn, master)?;
        }
        Ok(())
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    fn row_to_project(r: &rusqlite::Row<'_>) -> rusqlite::Result<Project> {
        Ok(Project {
            id: ProjectId(r.get::<_, i64>(0)? as u64),
            name: r.get(1)?,
            token: r.get(2)?,
            created_ms: r.get(3)?,
        })
    }
}

const PROJECT_COLUMNS: &str = "id, name, token, created_ms";

fn key_purpose(id: u64) -> String {
    format!("project:{id}")
}

impl ControlPlane for SqliteControl {
    fn create_project(&self, name: &str) -> Result<CreatedProject> {
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(ControlError::InvalidName(
                "must be 1 to 200 characters".into(),
            ));
        }
        let token = generate_token();
        let secret = generate_secret();
        let hash = hash_secret(&secret)?;
        let created_ms = now_ms();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let id: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM projects", [], |r| {
            r.get(0)
        })?;
        let wrapped = self
            .master
            .key()
            .wrap(&Key::generate(), &key_purpose(id as u64))?;
        tx.execute(
            "INSERT INTO projects (id, name, token, secret_id, secret_hash, wrapped_key, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![id, name, token, &secret[..SECRET_ID_LEN], hash, wrapped.as_bytes(), created_ms],
        )?;
        let settings = serde_json::to_string(&ProjectSettings::default())
            .map_err(|e| ControlError::InvalidSettings(e.to_string()))?;
        tx.execute(
            "INSERT INTO project_settings (project_id, version, settings, created_ms) VALUES (?1, 1, ?2, ?3)",
            params![id, settings, created_ms],
        )?;
        tx.commit()?;
        Ok(CreatedProject {
            project: Project {
                id: ProjectId(id as u64),
                name: name.to_string(),
                token,
                created_ms,
            },
            api_secret: secret,
        })
    }

    fn list_projects(&self) -> Result<Vec<Project>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects ORDER BY id"
        ))?;
        let rows = stmt.query_map([], Self::row_to_project)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn project(&self, id: ProjectId) -> Result<Option<Project>> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                &format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ?1"),
                params![id.0 as i64],
                Self::row_to_project,
            )
            .optional()?)
    }

    fn project_by_token(&self, token: &str) -> Result<Option<Project>> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                &format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE token = ?1"),
                params![token],
                Self::row_to_project,
            )
            .optional()?)
    }

    fn project_by_secret(&self, secret: &str) -> Result<Option<Project>> {
        let Some(sid) = secret_id(secret) else {
            return Ok(None);
        };
        let candidates: Vec<(Project, String)> = {
            let conn = self.conn();
            let mut stmt = conn.prepare(&format!(
                "SELECT {PROJECT_COLUMNS}, secret_hash FROM projects WHERE secret_id = ?1"
            ))?;
            let rows =
                stmt.query_map(params![sid], |r| Ok((Self::row_to_project(r)?, r.get(4)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        // Hash verification runs without the connection lock held: it is deliberately slow.
        Ok(candidates
            .into_iter()
            .find(|(_, h)| verify_secret(secret, h))
            .map(|(p, _)| p))
    }

    fn settings(&self, id: ProjectId) -> Result<(u32, ProjectSettings)> {
        let conn = self.conn();
        let row: Option<(u32, String)> = conn
            .query_row(
                "SELECT version, settings FROM project_settings WHERE project_id = ?1
                 ORDER BY version DESC LIMIT 1",
                params![id.0 as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (v, json) = row.ok_or(ControlError::NoSuchProject(id.0))?;
        let s = serde_json::from_str(&json)
            .map_err(|e| ControlError::InvalidSettings(e.to_string()))?;
        Ok((v, s))
    }

    fn update_settings(&self, id: ProjectId, settings: &ProjectSettings) -> Result<u32> {
        settings.validate()?;
        let json = serde_json::to_string(settings)
            .map_err(|e| ControlError::InvalidSettings(e.to_string()))?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current: Option<u32> = tx
            .query_row(
                "SELECT MAX(version) FROM project_settings WHERE project_id = ?1",
                params![id.0 as i64],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let next = current.ok_or(ControlError::NoSuchProject(id.0))? + 1;
        tx.execute(
            "INSERT INTO project_settings (project_id, version, settings, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![id.0 as i64, next, json, now_ms()],
        )?;
        tx.commit()?;
        Ok(next)
    }

    fn suppress(&self, id: ProjectId, hashes: &[[u8; 32]]) -> Result<usize> {
        self.add_suppressions(id, hashes, now_ms())
    }

    fn create_cohort(
        &self,
        id: ProjectId,
        name: &str,
        description: &str,
        definition: &str,
    ) -> Result<u64> {
        self.insert_cohort(id, name, description, definition, now_ms())
    }

    fn cohorts(&self, id: ProjectId) -> Result<Vec<crate::CohortRow>> {
        self.list_cohorts(id)
    }

    fn cohort(&self, id: ProjectId, cohort: u64) -> Result<Option<crate::CohortRow>> {
        self.get_cohort(id, cohort)
    }

    fn delete_cohort(&self, id: ProjectId, cohort: u64) -> Result<bool> {
        self.remove_cohort(id, cohort)
    }

    fn unsuppress(&self, id: ProjectId, hashes: &[[u8; 32]]) -> Result<usize> {
        self.remove_suppressions(id, hashes)
    }

    fn suppressions(&self, id: ProjectId) -> Result<Vec<[u8; 32]>> {
        self.list_suppressions(id)
    }

    fn daily_salt(&self, id: ProjectId, day: i64, candidate: [u8; 32]) -> Result<[u8; 32]> {
        self.daily_salt_for(id, day, candidate)
    }

    fn destroy_daily_salts(&self, first_kept_day: i64) -> Result<usize> {
        SqliteControl::destroy_daily_salts(self, first_kept_day)
    }

    fn has_daily_salt(&self, id: ProjectId, day: i64) -> Result<bool> {
        SqliteControl::has_daily_salt(self, id, day)
    }

    fn add_lint(&self, id: ProjectId, delta: &canopy_policy::Lint) -> Result<()> {
        self.add_lint_counts(id, delta)
    }

    fn lint(&self, id: ProjectId) -> Result<canopy_policy::Lint> {
        self.load_lint_counts(id)
    }

    fn person_tiers(&self, id: ProjectId) -> Result<Vec<([u8; 32], String)>> {
        self.load_tiers(id)
    }

    fn set_person_tiers(
        &self,
        id: ProjectId,
        tiers: &[([u8; 32], String)],
        audit: Option<&str>,
    ) -> Result<()> {
        self.store_tiers(id, tiers, audit, now_ms())
    }

    fn record_consent(&self, id: ProjectId, rows: &[ConsentRecord]) -> Result<()> {
        self.append_consent(id, rows)
    }

    fn consent(&self, id: ProjectId, person: Option<[u8; 32]>) -> Result<Vec<ConsentRecord>> {
        self.read_consent(id, person)
    }

    fn create_dsr(&self, request: &crate::DsrRow) -> Result<()> {
        self.insert_dsr(request)
    }

    fn dsr(&self, project: Option<ProjectId>, id: &str) -> Result<Option<crate::DsrRow>> {
        self.read_dsr(project, id)
    }

    fn dsr_list(&self, project: ProjectId, limit: u32) -> Result<Vec<crate::DsrRow>> {
        self.list_dsr(project, limit)
    }

    fn dsr_open(&self) -> Result<Vec<crate::DsrRow>> {
        self.open_dsr()
    }

    fn dsr_reseal(&self, id: &str, sealed: &[u8]) -> Result<()> {
        self.conn().execute(
            "UPDATE dsr_requests SET subject_sealed = ?2 WHERE id = ?1 AND status IN ('pending', 'running')",
            params![id, sealed],
        )?;
        Ok(())
    }

    fn dsr_transition(&self, id: &str, from: &[&str], to: &str, now_ms: i64) -> Result<bool> {
        self.transition_dsr(id, from, to, now_ms)
    }

    fn dsr_finish(
        &self,
        id: &str,
        status: &str,
        result: Option<&str>,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        self.finish_dsr(id, status, result, error, now_ms)
    }

    fn forget_person_rows(
        &self,
        id: ProjectId,
        hashes: &[[u8; 32]],
        now_ms: i64,
    ) -> Result<(usize, usize)> {
        self.delete_person_rows(id, hashes, now_ms)
    }

    fn dsr_expire_access(&self, before_ms: i64) -> Result<usize> {
        self.expire_access(before_ms)
    }

    fn dsr_due_callbacks(&self, now_ms: i64, limit: u32) -> Result<Vec<crate::OutboxRow>> {
        self.due_callbacks(now_ms, limit)
    }

    fn dsr_callback_attempted(&self, id: i64, done: bool, retry_ms: i64) -> Result<()> {
        self.callback_attempted(id, done, retry_ms)
    }

    fn record_audit(&self, id: ProjectId, action: &str, detail: &str, now_ms: i64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO audit_log (project_id, time_ms, action, detail) VALUES (?1, ?2, ?3, ?4)",
            params![id.0 as i64, now_ms, action, detail],
        )?;
        Ok(())
    }

    fn receipt_signing_seed(&self, now_ms: i64) -> Result<(String, Key)> {
        self.signing_seed(now_ms)
    }

    fn wrapped_project_key(&self, id: ProjectId) -> Result<Vec<u8>> {
        let conn = self.conn();
        conn.query_row(
            "SELECT wrapped_key FROM projects WHERE id = ?1",
            params![id.0 as i64],
            |r| r.get(0),
        )
        .optional()?
        .ok_or(ControlError::NoSuchProject(id.0))
    }
}

/// Checks `master` against the stored check value: `Ok(false)` when none is stored yet,
/// `WrongMasterKey` when it does not match.
fn verify_master(conn: &Connection, master: &MasterKey) -> Result<bool> {
    let stored: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'master_key_check'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match stored {
        Some(check) if !master.verify_check_value(&check) => Err(ControlError::WrongMasterKey),
        Some(_) => Ok(true),
        None => Ok(false),
    }
}

pub(crate) fn unwrap_project_key(master: &MasterKey, id: u64, wrapped: &[u8]) -> Result<Key> {
    let w = canopy_crypto::WrappedKey::from_bytes(wrapped)?;
    Ok(master.key().unwrap_key(&w, &key_purpose(id))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_crypto::MasterKeySource;

    fn master() -> Arc<MasterKey> {
        Arc::new(MasterKey::from_key(Key::generate(), MasterKeySource::Env))
    }

    #[test]
    fn projects_are_created_found_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let c = SqliteControl::open(dir.path(), master()).unwrap();
        let a = c.create_project("Kids app").unwrap();
        let b = c.create_project("Other").unwrap();
        assert_ne!(a.project.id, b.project.id);
        assert_eq!(
            c.project_by_token(&a.project.token).unwrap(),
            Some(a.project.clone())
        );
        assert_eq!(
            c.project_by_secret(&a.api_secret).unwrap(),
            Some(a.project.clone())
        );
        assert_eq!(
            c.project_by_secret(&b.api_secret).unwrap(),
            Some(b.project.clone())
        );
        assert_eq!(c.project_by_secret(&generate_secret()).unwrap(), None);
        assert_eq!(c.list_projects().unwrap().len(), 2);
        assert!(c.create_project("  ").is_err());
    }

    #[test]
    fn settings_are_versioned_and_validated() {
        let dir = tempfile::tempdir().unwrap();
        let c = SqliteControl::open(dir.path(), master()).unwrap();
        let p = c.create_project("x").unwrap().project;
        let (v, s) = c.settings(p.id).unwrap();
        assert_eq!((v, s.timezone.as_str()), (1, "UTC"));
        let s2 = ProjectSettings {
            timezone: "Asia/Kolkata".into(),
            ..s
        };
        assert_eq!(c.update_settings(p.id, &s2).unwrap(), 2);
        assert_eq!(c.settings(p.id).unwrap(), (2, s2));
        let bad = ProjectSettings {
            timezone: "not a zone".into(),
            ..Default::default()
        };
        assert!(c.update_settings(p.id, &bad).is_err());
    }

    #[test]
    fn wrong_master_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        SqliteControl::open(dir.path(), master())
            .unwrap()
            .create_project("x")
            .unwrap();
        let err = SqliteControl::open(dir.path(), master()).unwrap_err();
        assert!(matches!(err, ControlError::WrongMasterKey));
    }
}
