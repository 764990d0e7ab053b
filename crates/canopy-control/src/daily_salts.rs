//! Daily salts for aggregate-only tiers (issue #4 item 4, DPDP s.9(3)): events of people who
//! may not be tracked keep only a pseudonym derived from the salt of their day, so daily
//! counts and uniques work but days cannot be linked. A salt is random, stored wrapped by the
//! master key, and destroyed 48 hours after its day began; `secure_delete` and a truncating
//! WAL checkpoint make sure no copy of it survives in the database files.

use crate::Result;
use crate::sqlite::SqliteControl;
use canopy_crypto::{Key, WrappedKey};
use canopy_types::ProjectId;
use rusqlite::{OptionalExtension, params};

pub(crate) const MIGRATION_5: &str = "
CREATE TABLE daily_salts (
    project_id    INTEGER NOT NULL REFERENCES projects(id),
    day           INTEGER NOT NULL,
    wrapped_salt  BLOB NOT NULL,
    PRIMARY KEY (project_id, day)
) WITHOUT ROWID;
CREATE TABLE lint_counts (
    project_id    INTEGER NOT NULL REFERENCES projects(id),
    property      TEXT NOT NULL,
    rule          TEXT NOT NULL,
    action        TEXT NOT NULL,
    tier          TEXT NOT NULL,
    count         INTEGER NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    PRIMARY KEY (project_id, property, rule, action, tier)
) WITHOUT ROWID;
";

fn purpose(id: ProjectId, day: i64) -> String {
    format!("daily-salt:{}:{day}", id.0)
}

impl SqliteControl {
    /// The salt of `day` (UTC days since the epoch), created from `candidate` when the day has
    /// none yet. Two servers racing agree: the first insert wins and both read it back.
    pub(crate) fn daily_salt_for(
        &self,
        id: ProjectId,
        day: i64,
        candidate: [u8; 32],
    ) -> Result<[u8; 32]> {
        let master = self.master().key();
        let p = purpose(id, day);
        let wrapped = master.wrap(&Key::from_bytes(candidate), &p)?;
        let conn = self.conn();
        conn.execute(
            "INSERT OR IGNORE INTO daily_salts (project_id, day, wrapped_salt) VALUES (?1, ?2, ?3)",
            params![id.0 as i64, day, wrapped.as_bytes()],
        )?;
        let stored: Vec<u8> = conn.query_row(
            "SELECT wrapped_salt FROM daily_salts WHERE project_id = ?1 AND day = ?2",
            params![id.0 as i64, day],
            |r| r.get(0),
        )?;
        let key = master.unwrap_key(&WrappedKey::from_bytes(&stored)?, &p)?;
        Ok(*key.as_bytes())
    }

    /// Whether a salt for `day` is on record (for tests and status).
    pub(crate) fn has_daily_salt(&self, id: ProjectId, day: i64) -> Result<bool> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT 1 FROM daily_salts WHERE project_id = ?1 AND day = ?2",
                params![id.0 as i64, day],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Destroys every salt of a day before `first_kept_day`, in all projects; returns how many.
    pub(crate) fn destroy_daily_salts(&self, first_kept_day: i64) -> Result<usize> {
        let conn = self.conn();
        let n = conn.execute(
            "DELETE FROM daily_salts WHERE day < ?1",
            params![first_kept_day],
        )?;
        if n > 0 {
            // The WAL still holds the pages as they were: checkpoint and truncate it.
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use crate::{ControlPlane, SqliteControl};
    use canopy_crypto::{Key, MasterKey, MasterKeySource};
    use std::sync::Arc;

    #[test]
    fn a_day_keeps_its_first_salt_and_destroyed_salts_leave_no_trace_in_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let master = Arc::new(MasterKey::from_key(Key::generate(), MasterKeySource::Env));
        let c = SqliteControl::open(dir.path(), master).unwrap();
        let p = c.create_project("p").unwrap().project.id;
        let a = c.daily_salt(p, 100, [7; 32]).unwrap();
        assert_eq!(a, [7; 32]);
        assert_eq!(
            c.daily_salt(p, 100, [9; 32]).unwrap(),
            [7; 32],
            "first wins"
        );
        assert_eq!(c.daily_salt(p, 101, [9; 32]).unwrap(), [9; 32]);
        let wrapped: Vec<u8> = c
            .conn()
            .query_row(
                "SELECT wrapped_salt FROM daily_salts WHERE day = 100",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(c.destroy_daily_salts(101).unwrap(), 1);
        for f in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            assert!(!bytes.windows(wrapped.len()).any(|w| w == wrapped));
        }
        assert!(!c.has_daily_salt(p, 100).unwrap());
        assert!(c.has_daily_salt(p, 101).unwrap());
        // A new salt for a destroyed day is a different salt: the old pseudonyms stay unlinkable.
        assert_eq!(c.daily_salt(p, 100, [3; 32]).unwrap(), [3; 32]);
    }
}
