//! The privacy lint report, persisted (issue #4 item 9): counters survive restarts. The server
//! adds its in-memory deltas every few seconds; property names reach here only through
//! `canopy_policy::Lint`, which replaces names that are themselves personal data by their kind.

use crate::Result;
use crate::sqlite::SqliteControl;
use canopy_policy::{Lint, LintCount, LintKey};
use canopy_types::ProjectId;
use rusqlite::params;

impl SqliteControl {
    pub(crate) fn add_lint_counts(&self, id: ProjectId, delta: &Lint) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO lint_counts (project_id, property, rule, action, tier, count, first_seen_ms, last_seen_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (project_id, property, rule, action, tier) DO UPDATE SET
                   count = count + excluded.count,
                   first_seen_ms = min(first_seen_ms, excluded.first_seen_ms),
                   last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)",
            )?;
            for (k, v) in delta.entries() {
                stmt.execute(params![
                    id.0 as i64,
                    k.property,
                    k.rule,
                    k.action,
                    k.tier,
                    v.count as i64,
                    v.first_seen_ms,
                    v.last_seen_ms
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn load_lint_counts(&self, id: ProjectId) -> Result<Lint> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT property, rule, action, tier, count, first_seen_ms, last_seen_ms
             FROM lint_counts WHERE project_id = ?1",
        )?;
        let rows = stmt.query_map(params![id.0 as i64], |r| {
            Ok((
                LintKey {
                    property: r.get(0)?,
                    rule: r.get(1)?,
                    action: r.get(2)?,
                    tier: r.get(3)?,
                },
                LintCount {
                    count: r.get::<_, i64>(4)?.max(0) as u64,
                    first_seen_ms: r.get(5)?,
                    last_seen_ms: r.get(6)?,
                },
            ))
        })?;
        let mut lint = Lint::default();
        for row in rows {
            let (k, v) = row?;
            lint.add(k, v);
        }
        Ok(lint)
    }
}
