//! Data-subject requests (issue #6): the durable queue every erasure and access request goes
//! through, whichever API it came from, and the receipt-signing key. A request's raw
//! identifiers are kept only while it is open, sealed by the caller under the project key;
//! once it ends only a keyed hash of the subject, its times, counts and receipt remain (the
//! request log regulators ask for, without the data it was about).

use crate::sqlite::SqliteControl;
use crate::{ControlError, Result};
use canopy_crypto::{Key, WrappedKey};
use canopy_types::ProjectId;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

pub(crate) const MIGRATION_7: &str = "
CREATE TABLE dsr_requests (
    id              TEXT PRIMARY KEY,
    project_id      INTEGER NOT NULL REFERENCES projects(id),
    kind            TEXT NOT NULL,
    api             TEXT NOT NULL,
    regulation      TEXT NOT NULL,
    subject_hash    TEXT NOT NULL,
    subject_sealed  BLOB,
    id_count        INTEGER NOT NULL,
    suppress        INTEGER NOT NULL,
    status          TEXT NOT NULL,
    received_ms     INTEGER NOT NULL,
    submitted_ms    INTEGER NOT NULL,
    deadline_ms     INTEGER NOT NULL,
    started_ms      INTEGER,
    completed_ms    INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    callbacks       TEXT NOT NULL DEFAULT '[]',
    result          TEXT,
    error           TEXT
);
CREATE INDEX dsr_by_status ON dsr_requests (status, received_ms);
CREATE INDEX dsr_by_project ON dsr_requests (project_id, received_ms);
CREATE TABLE signing_keys (
    key_id          TEXT PRIMARY KEY,
    wrapped_seed    BLOB NOT NULL,
    created_ms      INTEGER NOT NULL
);
";

/// Status callbacks to deliver (OpenDSR): one row per state change and URL, written in the
/// transaction that changes the state, deleted once delivered (an outbox: a crash between the
/// change and the delivery loses nothing).
pub(crate) const MIGRATION_8: &str = "
CREATE TABLE dsr_outbox (
    id              INTEGER PRIMARY KEY,
    request_id      TEXT NOT NULL REFERENCES dsr_requests(id),
    status          TEXT NOT NULL,
    url             TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_ms         INTEGER NOT NULL
);
CREATE INDEX dsr_outbox_due ON dsr_outbox (next_ms);
";

/// One status callback waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub request_id: String,
    pub status: String,
    pub url: String,
    pub attempts: u32,
}

/// A request as stored. `status` is one of `pending`, `running`, `completed`, `failed`,
/// `cancelled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DsrRow {
    pub id: String,
    pub project: ProjectId,
    pub kind: String,
    pub api: String,
    pub regulation: String,
    pub subject_hash: String,
    #[serde(skip)]
    pub subject_sealed: Option<Vec<u8>>,
    pub id_count: u32,
    pub suppress: bool,
    pub status: String,
    pub received_ms: i64,
    pub submitted_ms: i64,
    pub deadline_ms: i64,
    pub started_ms: Option<i64>,
    pub completed_ms: Option<i64>,
    pub attempts: u32,
    pub callbacks: Vec<String>,
    /// JSON: the receipt of a completed erasure, the bundle description of an access request.
    pub result: Option<String>,
    pub error: Option<String>,
}

const COLUMNS: &str = "id, project_id, kind, api, regulation, subject_hash, subject_sealed, id_count, suppress, status, received_ms, submitted_ms, deadline_ms, started_ms, completed_ms, attempts, callbacks, result, error";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DsrRow> {
    let callbacks: String = r.get(16)?;
    Ok(DsrRow {
        id: r.get(0)?,
        project: ProjectId(r.get::<_, i64>(1)? as u64),
        kind: r.get(2)?,
        api: r.get(3)?,
        regulation: r.get(4)?,
        subject_hash: r.get(5)?,
        subject_sealed: r.get(6)?,
        id_count: r.get(7)?,
        suppress: r.get(8)?,
        status: r.get(9)?,
        received_ms: r.get(10)?,
        submitted_ms: r.get(11)?,
        deadline_ms: r.get(12)?,
        started_ms: r.get(13)?,
        completed_ms: r.get(14)?,
        attempts: r.get(15)?,
        callbacks: serde_json::from_str(&callbacks).unwrap_or_default(),
        result: r.get(17)?,
        error: r.get(18)?,
    })
}

/// Queues a status callback to each of the request's URLs (none for most requests).
fn enqueue_callbacks(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    status: &str,
    now_ms: i64,
) -> Result<()> {
    let callbacks: Option<String> = tx
        .query_row(
            "SELECT callbacks FROM dsr_requests WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()?;
    let urls: Vec<String> = callbacks
        .and_then(|c| serde_json::from_str(&c).ok())
        .unwrap_or_default();
    for url in urls {
        tx.execute(
            "INSERT INTO dsr_outbox (request_id, status, url, next_ms) VALUES (?1, ?2, ?3, ?4)",
            params![id, status, url, now_ms],
        )?;
    }
    Ok(())
}

fn audit(
    tx: &rusqlite::Transaction<'_>,
    project: ProjectId,
    now_ms: i64,
    action: &str,
    detail: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO audit_log (project_id, time_ms, action, detail) VALUES (?1, ?2, ?3, ?4)",
        params![project.0 as i64, now_ms, action, detail],
    )?;
    Ok(())
}

impl SqliteControl {
    pub(crate) fn insert_dsr(&self, r: &DsrRow) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let callbacks = serde_json::to_string(&r.callbacks)
            .map_err(|e| ControlError::InvalidSettings(e.to_string()))?;
        tx.execute(
            &format!("INSERT INTO dsr_requests ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"),
            params![
                r.id, r.project.0 as i64, r.kind, r.api, r.regulation, r.subject_hash,
                r.subject_sealed, r.id_count, r.suppress, r.status, r.received_ms,
                r.submitted_ms, r.deadline_ms, r.started_ms, r.completed_ms, r.attempts,
                callbacks, r.result, r.error
            ],
        )?;
        audit(
            &tx,
            r.project,
            r.received_ms,
            &format!("dsr.{}.received", r.kind),
            &format!("request {} via {} ({})", r.id, r.api, r.regulation),
        )?;
        enqueue_callbacks(&tx, &r.id, &r.status, r.received_ms)?;
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn read_dsr(&self, project: Option<ProjectId>, id: &str) -> Result<Option<DsrRow>> {
        let conn = self.conn();
        let found = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM dsr_requests WHERE id = ?1"),
                params![id],
                row,
            )
            .optional()?;
        Ok(found.filter(|r| project.is_none_or(|p| r.project == p)))
    }

    /// The newest requests of a project first.
    pub(crate) fn list_dsr(&self, project: ProjectId, limit: u32) -> Result<Vec<DsrRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM dsr_requests WHERE project_id = ?1 ORDER BY received_ms DESC, id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![project.0 as i64, limit], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Requests not finished (pending or interrupted while running), oldest first.
    pub(crate) fn open_dsr(&self) -> Result<Vec<DsrRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM dsr_requests WHERE status IN ('pending', 'running') ORDER BY received_ms, id"
        ))?;
        let rows = stmt.query_map([], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Moves a request from one of `from` to `to`; false when it was in another state (the
    /// compare-and-set that makes "cancel only while pending" and "start once" safe).
    pub(crate) fn transition_dsr(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current: Option<(String, i64, String)> = tx
            .query_row(
                "SELECT status, project_id, kind FROM dsr_requests WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((status, project, kind)) = current else {
            return Ok(false);
        };
        if !from.contains(&status.as_str()) {
            return Ok(false);
        }
        tx.execute(
            "UPDATE dsr_requests SET status = ?2,
                started_ms = CASE WHEN ?2 = 'running' THEN COALESCE(started_ms, ?3) ELSE started_ms END,
                attempts = attempts + CASE WHEN ?2 = 'running' THEN 1 ELSE 0 END,
                completed_ms = CASE WHEN ?2 = 'cancelled' THEN ?3 ELSE completed_ms END,
                subject_sealed = CASE WHEN ?2 = 'cancelled' THEN NULL ELSE subject_sealed END
             WHERE id = ?1",
            params![id, to, now_ms],
        )?;
        audit(
            &tx,
            ProjectId(project as u64),
            now_ms,
            &format!("dsr.{kind}.{to}"),
            &format!("request {id}"),
        )?;
        // A retry (running → pending) or a resumed attempt (running → running) is no state
        // change the requester can see.
        if to != status && to != "pending" {
            enqueue_callbacks(&tx, id, to, now_ms)?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// Ends a request: its result (receipt) or error is recorded and its sealed identifiers
    /// are deleted in the same transaction.
    pub(crate) fn finish_dsr(
        &self,
        id: &str,
        status: &str,
        result: Option<&str>,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (project, kind): (i64, String) = tx.query_row(
            "SELECT project_id, kind FROM dsr_requests WHERE id = ?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        tx.execute(
            "UPDATE dsr_requests SET status = ?2, result = ?3, error = ?4, completed_ms = ?5,
                subject_sealed = CASE WHEN ?2 = 'failed' OR (?2 = 'completed' AND kind = 'access')
                                      THEN subject_sealed ELSE NULL END
             WHERE id = ?1",
            params![id, status, result, error, now_ms],
        )?;
        audit(
            &tx,
            ProjectId(project as u64),
            now_ms,
            &format!("dsr.{kind}.{status}"),
            &format!("request {id}"),
        )?;
        enqueue_callbacks(&tx, id, status, now_ms)?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets the identifiers of access requests completed before `before_ms` (their
    /// download links have expired); returns how many.
    pub(crate) fn expire_access(&self, before_ms: i64) -> Result<usize> {
        Ok(self.conn().execute(
            "UPDATE dsr_requests SET subject_sealed = NULL
             WHERE kind = 'access' AND status = 'completed' AND completed_ms < ?1
               AND subject_sealed IS NOT NULL",
            params![before_ms],
        )?)
    }

    /// Callbacks due for delivery, oldest first.
    pub(crate) fn due_callbacks(&self, now_ms: i64, limit: u32) -> Result<Vec<OutboxRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, request_id, status, url, attempts FROM dsr_outbox WHERE next_ms <= ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now_ms, limit], |r| {
            Ok(OutboxRow {
                id: r.get(0)?,
                request_id: r.get(1)?,
                status: r.get(2)?,
                url: r.get(3)?,
                attempts: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records a delivery attempt: delivered (or given up) rows go, others wait until `retry_ms`.
    pub(crate) fn callback_attempted(&self, id: i64, done: bool, retry_ms: i64) -> Result<()> {
        let conn = self.conn();
        if done {
            conn.execute("DELETE FROM dsr_outbox WHERE id = ?1", params![id])?;
        } else {
            conn.execute(
                "UPDATE dsr_outbox SET attempts = attempts + 1, next_ms = ?2 WHERE id = ?1",
                params![id, retry_ms],
            )?;
        }
        Ok(())
    }

    /// Deletes an erased person's consent-ledger rows and sticky tiers (by keyed id hash);
    /// returns (ledger rows, tier rows) deleted.
    pub(crate) fn delete_person_rows(
        &self,
        project: ProjectId,
        hashes: &[[u8; 32]],
        now_ms: i64,
    ) -> Result<(usize, usize)> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (mut ledger, mut tiers) = (0, 0);
        {
            let mut del_ledger = tx.prepare_cached(
                "DELETE FROM consent_ledger WHERE project_id = ?1 AND id_hash = ?2",
            )?;
            let mut del_tiers = tx.prepare_cached(
                "DELETE FROM person_tiers WHERE project_id = ?1 AND id_hash = ?2",
            )?;
            for h in hashes {
                ledger += del_ledger.execute(params![project.0 as i64, &h[..]])?;
                tiers += del_tiers.execute(params![project.0 as i64, &h[..]])?;
            }
        }
        audit(
            &tx,
            project,
            now_ms,
            "dsr.erasure.person_rows",
            &format!("{ledger} consent rows, {tiers} tier rows"),
        )?;
        tx.commit()?;
        Ok((ledger, tiers))
    }

    /// The receipt-signing seed and its id, created (wrapped by the master key) on first use.
    pub(crate) fn signing_seed(&self, now_ms: i64) -> Result<(String, Key)> {
        let conn = self.conn();
        let found: Option<(String, Vec<u8>)> = conn
            .query_row(
                "SELECT key_id, wrapped_seed FROM signing_keys ORDER BY created_ms DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((key_id, wrapped)) = found {
            let seed = self.master().key().unwrap_key(
                &WrappedKey::from_bytes(&wrapped)?,
                &signing_purpose(&key_id),
            )?;
            return Ok((key_id, seed));
        }
        let seed = Key::generate();
        let key_id = format!("canopy-receipts-{}", uuid_like(now_ms));
        let wrapped = self.master().key().wrap(&seed, &signing_purpose(&key_id))?;
        conn.execute(
            "INSERT INTO signing_keys (key_id, wrapped_seed, created_ms) VALUES (?1, ?2, ?3)",
            params![key_id, wrapped.as_bytes(), now_ms],
        )?;
        Ok((key_id, seed))
    }
}

fn signing_purpose(key_id: &str) -> String {
    format!("receipt-signing:{key_id}")
}

/// A short, unique-enough key id: creation time plus random bits.
fn uuid_like(now_ms: i64) -> String {
    let random = Key::generate();
    format!("{now_ms:x}-{}", hex::encode(&random.as_bytes()[..4]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConsentRecord, ControlPlane};
    use canopy_crypto::{MasterKey, MasterKeySource};
    use std::sync::Arc;

    fn request(project: ProjectId, id: &str, received_ms: i64) -> DsrRow {
        DsrRow {
            id: id.into(),
            project,
            kind: "erasure".into(),
            api: "native".into(),
            regulation: "gdpr".into(),
            subject_hash: "ab".into(),
            subject_sealed: Some(vec![1, 2, 3]),
            id_count: 1,
            suppress: true,
            status: "pending".into(),
            received_ms,
            submitted_ms: received_ms,
            deadline_ms: received_ms + 1000,
            started_ms: None,
            completed_ms: None,
            attempts: 0,
            callbacks: vec!["https://controller.example/cb".into()],
            result: None,
            error: None,
        }
    }

    #[test]
    fn requests_move_through_their_states_and_keep_no_identifiers_when_done() {
        let dir = tempfile::tempdir().unwrap();
        let master = Arc::new(MasterKey::from_key(Key::generate(), MasterKeySource::Env));
        let c = SqliteControl::open(dir.path(), master.clone()).unwrap();
        let p = c.create_project("kids").unwrap().project.id;
        c.create_dsr(&request(p, "r1", 10)).unwrap();
        c.create_dsr(&request(p, "r2", 20)).unwrap();
        assert_eq!(c.dsr_open().unwrap().len(), 2);
        assert_eq!(
            c.dsr(Some(ProjectId(99)), "r1").unwrap(),
            None,
            "another project's"
        );
        // Start once; cancel only while pending.
        assert!(c.dsr_transition("r1", &["pending"], "running", 30).unwrap());
        assert!(!c.dsr_transition("r1", &["pending"], "running", 31).unwrap());
        assert!(
            !c.dsr_transition("r1", &["pending"], "cancelled", 32)
                .unwrap()
        );
        assert!(
            c.dsr_transition("r2", &["pending"], "cancelled", 33)
                .unwrap()
        );
        let r2 = c.dsr(Some(p), "r2").unwrap().unwrap();
        assert_eq!((r2.status.as_str(), r2.subject_sealed), ("cancelled", None));
        c.dsr_finish("r1", "completed", Some("{\"receipt\":1}"), None, 40)
            .unwrap();
        let r1 = c.dsr(None, "r1").unwrap().unwrap();
        assert_eq!(r1.status, "completed");
        assert_eq!(
            (r1.started_ms, r1.completed_ms, r1.attempts),
            (Some(30), Some(40), 1)
        );
        assert_eq!(r1.subject_sealed, None);
        assert_eq!(
            r1.callbacks,
            vec!["https://controller.example/cb".to_string()]
        );
        assert!(c.dsr_open().unwrap().is_empty());
        assert_eq!(c.dsr_list(p, 10).unwrap()[0].id, "r2", "newest first");
        // Every visible state change queued one callback per URL, in order.
        let due = c.dsr_due_callbacks(100, 100).unwrap();
        let seen: Vec<(&str, &str)> = due
            .iter()
            .map(|o| (o.request_id.as_str(), o.status.as_str()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("r1", "pending"),
                ("r2", "pending"),
                ("r1", "running"),
                ("r2", "cancelled"),
                ("r1", "completed")
            ]
        );
        c.dsr_callback_attempted(due[0].id, false, 500).unwrap();
        c.dsr_callback_attempted(due[1].id, true, 0).unwrap();
        let later = c.dsr_due_callbacks(100, 100).unwrap();
        assert_eq!(later.len(), 3, "one delivered, one waiting for its retry");
        assert_eq!(c.dsr_due_callbacks(500, 100).unwrap()[0].attempts, 1);
        // The seed survives a reopen (same master key) and is never stored in the clear.
        let (kid, seed) = c.receipt_signing_seed(1).unwrap();
        drop(c);
        let c = SqliteControl::open(dir.path(), master).unwrap();
        let (kid2, seed2) = c.receipt_signing_seed(2).unwrap();
        assert_eq!((kid, seed), (kid2, seed2));
    }

    #[test]
    fn forgetting_a_person_deletes_their_ledger_and_tier_rows_only() {
        let dir = tempfile::tempdir().unwrap();
        let master = Arc::new(MasterKey::from_key(Key::generate(), MasterKeySource::Env));
        let c = SqliteControl::open(dir.path(), master).unwrap();
        let p = c.create_project("kids").unwrap().project.id;
        let consent = |h: u8| ConsentRecord {
            id_hash: [h; 32],
            scope: "analytics".into(),
            granted: true,
            method: "parent_email".into(),
            notice_version: "1".into(),
            time_ms: 1,
            evidence_hash: String::new(),
            source: "api".into(),
        };
        c.record_consent(p, &[consent(1), consent(1), consent(2)])
            .unwrap();
        c.set_person_tiers(
            p,
            &[([1; 32], "child".into()), ([2; 32], "child".into())],
            None,
        )
        .unwrap();
        assert_eq!(c.forget_person_rows(p, &[[1; 32]], 5).unwrap(), (2, 1));
        assert!(c.consent(p, Some([1; 32])).unwrap().is_empty());
        assert_eq!(c.consent(p, None).unwrap().len(), 1);
        assert_eq!(
            c.person_tiers(p).unwrap(),
            vec![([2; 32], "child".to_string())]
        );
    }
}
