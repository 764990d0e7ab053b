//! Carrying out erasures. One batch per project: every open erasure of the project is resolved,
//! then the store is rewritten once for all of them, so a burst of requests costs one rewrite
//! per affected segment.
//!
//! Order matters for crash safety: the person keys are saved (sealed) in each request row
//! before anything is deleted, rows leave the store before the identity rows that locate them,
//! and the receipt is written only after the verifying scan — a crash at any point leaves the
//! request open, and the next attempt repeats every step (each is idempotent).

use crate::receipt_body::{BatchOutcome, receipt_for};
use crate::requests::Dsr;
use crate::subject::Subject;
use crate::{DsrError, Result};
use canopy_control::DsrRow;
use canopy_types::{PersonKey, ProjectId};
use std::collections::{BTreeMap, HashSet};

/// What only the server knows: how the policy hashes ids, and which caches to drop.
pub trait EraseHooks: Send + Sync {
    /// Keyed hashes of raw ids as the suppression list stores them.
    fn suppression_hashes(&self, project: ProjectId, ids: &[String]) -> Result<Vec<[u8; 32]>>;
    /// Keyed hashes of raw ids as the consent ledger and sticky tiers store them.
    fn person_row_hashes(&self, project: ProjectId, ids: &[String]) -> Result<Vec<[u8; 32]>>;
    /// Drops every in-memory copy derived from the project's data (policy, tier and consent
    /// caches, query caches), so nothing erased is served from memory.
    fn clear_caches(&self, project: ProjectId);
}

/// Rewrite passes before giving up on rows that keep arriving (in-flight requests that passed
/// the suppression check just before it was updated).
const MAX_PASSES: usize = 3;

impl Dsr {
    /// Runs every open request (pending, or interrupted by a crash); returns how many ended.
    pub fn run_open(&self) -> Result<usize> {
        let _one_batch = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_project: BTreeMap<ProjectId, Vec<DsrRow>> = BTreeMap::new();
        for row in self.control.dsr_open()? {
            by_project.entry(row.project).or_default().push(row);
        }
        let mut done = 0;
        for (project, rows) in by_project {
            let now = self.clock.now_ms();
            let mut started = Vec::new();
            let window = self.config.cancel_window.as_millis() as i64;
            for row in rows {
                if row.status == "pending" && row.received_ms + window > now {
                    continue;
                }
                // A request already running was interrupted by a crash: resume it (counted as
                // another attempt).
                if self
                    .control
                    .dsr_transition(&row.id, &["pending", "running"], "running", now)?
                    && let Some(current) = self.control.dsr(None, &row.id)?
                {
                    started.push(current);
                }
            }
            let (access, started): (Vec<DsrRow>, Vec<DsrRow>) =
                started.into_iter().partition(|r| r.kind == "access");
            for row in &access {
                self.complete_access(row)?;
                done += 1;
            }
            if started.is_empty() {
                continue;
            }
            done += started.len();
            if let Err(e) = self.erase_batch(project, &started) {
                tracing::error!(error = %e, requests = started.len(), "erasure batch failed; will retry");
                for row in &started {
                    self.retry_or_fail(row, &e)?;
                }
                done -= started.len();
            }
        }
        Ok(done)
    }

    fn retry_or_fail(&self, row: &DsrRow, e: &DsrError) -> Result<()> {
        let now = self.clock.now_ms();
        let attempts = self
            .control
            .dsr(None, &row.id)?
            .map_or(row.attempts, |r| r.attempts);
        if attempts >= self.config.max_attempts {
            self.control
                .dsr_finish(&row.id, "failed", None, Some(&e.to_string()), now)?;
            metrics::counter!("canopy_dsr_failed_total").increment(1);
        } else {
            self.control
                .dsr_transition(&row.id, &["running"], "pending", now)?;
        }
        Ok(())
    }

    fn erase_batch(&self, project: ProjectId, rows: &[DsrRow]) -> Result<()> {
        let mut phases = Phases::start();
        let project_key = self.keyring.project_key(project.0)?;
        // 1. Who: each request's clusters, saved before anything is deleted.
        let mut subjects = Vec::with_capacity(rows.len());
        for row in rows {
            let sealed = row
                .subject_sealed
                .as_deref()
                .ok_or_else(|| DsrError::Internal("an open request without its subject".into()))?;
            let mut subject = Subject::open(sealed, &project_key, &row.id)?;
            if !subject.resolved {
                self.resolve(project, &mut subject)?;
                self.control
                    .dsr_reseal(&row.id, &subject.seal(&project_key, &row.id)?)?;
            }
            subjects.push(subject);
        }
        let keys: HashSet<u64> = subjects
            .iter()
            .flat_map(|s| s.keys.iter().copied())
            .collect();
        let all_ids: Vec<String> = subjects
            .iter()
            .flat_map(|s| s.ids.iter().chain(&s.cluster_ids).cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let hashes = self.hooks.person_row_hashes(project, &all_ids)?;
        phases.mark("resolve");
        // 2. Nothing new gets in: suppress before the rewrite.
        let suppress_ids: Vec<String> = subjects
            .iter()
            .zip(rows)
            .filter(|(_, r)| r.suppress)
            .flat_map(|(s, _)| s.ids.iter().chain(&s.cluster_ids).cloned())
            .collect();
        let suppressed = if suppress_ids.is_empty() {
            0
        } else {
            let h = self.hooks.suppression_hashes(project, &suppress_ids)?;
            let n = self.control.suppress(project, &h)?;
            self.hooks.clear_caches(project);
            n
        };
        phases.mark("suppress");
        // 3. The rows: segments rewritten, tail flushed, old keys dropped.
        let mut outcome = BatchOutcome {
            requests: rows.len(),
            suppressed,
            ..Default::default()
        };
        for pass in 0..MAX_PASSES {
            let report = self
                .store
                .erase_persons(project, &keys, self.config.unlink_wait)?;
            outcome.add(&report);
            phases.mark("rewrite");
            let found = self.store.count_person_rows(project, &keys)?;
            outcome.found = found;
            phases.mark("verify_rows");
            if found.total() == 0 || pass + 1 == MAX_PASSES {
                break;
            }
        }
        // 4. Ledger and tier rows, then the identities themselves.
        let (ledger, tiers) =
            self.control
                .forget_person_rows(project, &hashes, self.clock.now_ms())?;
        outcome.ledger_rows = ledger;
        outcome.tier_rows = tiers;
        let persons: Vec<u64> = keys.iter().copied().collect();
        outcome.ids_removed = self.identity.forget_clusters(project, &persons)?.len();
        self.hooks.clear_caches(project);
        phases.mark("forget_ids");
        // 5. Proof: no row under any key, no id resolvable, no ledger row.
        outcome.ids_remaining = all_ids
            .iter()
            .map(|id| self.identity.lookup(project, id))
            .collect::<canopy_identity::Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .count();
        outcome.ledger_remaining = hashes
            .iter()
            .map(|h| self.control.consent(project, Some(*h)).map(|r| r.len()))
            .sum::<canopy_control::Result<usize>>()?;
        phases.mark("verify_ids");
        if !outcome.passed() {
            return Err(DsrError::Internal(format!(
                "verification found {} rows, {} ids and {} ledger rows left",
                outcome.found.total(),
                outcome.ids_remaining,
                outcome.ledger_remaining
            )));
        }
        // 6. Receipts, each with its own subject and row counts.
        let now = self.clock.now_ms();
        for (row, subject) in rows.iter().zip(&subjects) {
            let receipt = self
                .signer
                .sign(&receipt_for(row, subject, &outcome, now))?;
            let text =
                serde_json::to_string(&receipt).map_err(|e| DsrError::Internal(e.to_string()))?;
            self.control
                .dsr_finish(&row.id, "completed", Some(&text), None, now)?;
            metrics::histogram!("canopy_dsr_erasure_seconds")
                .record((now - row.received_ms).max(0) as f64 / 1000.0);
        }
        phases.mark("receipts");
        tracing::info!(
            requests = rows.len(),
            segments_rewritten = outcome.segments_rewritten,
            phases = %phases,
            "erasure batch completed"
        );
        Ok(())
    }

    /// Finds the clusters of a subject's ids: their person keys (where rows are stored) and
    /// every raw id they hold.
    fn resolve(&self, project: ProjectId, subject: &mut Subject) -> Result<()> {
        let mut keys = Vec::new();
        let mut ids = Vec::new();
        for raw in &subject.ids {
            if let Some(person) = self.identity.lookup(project, raw)? {
                keys.extend(self.identity.cluster_keys(project, person)?);
                ids.extend(self.identity.cluster_ids(project, person)?);
            }
        }
        keys.sort_unstable();
        keys.dedup();
        ids.sort();
        ids.dedup();
        // Key 0 stands for "no person" and is never erased.
        keys.retain(|k| *k != PersonKey::NONE.0);
        subject.keys = keys;
        subject.resolved = true;
        subject.cluster_ids = ids;
        Ok(())
    }
}

/// How long each step of a batch took (milliseconds, summed over passes), for the log: the
/// numbers that say where an erasure's time goes, and nothing about whom it erased.
struct Phases {
    last: std::time::Instant,
    spent: Vec<(&'static str, u128)>,
}

impl Phases {
    fn start() -> Self {
        Phases {
            last: std::time::Instant::now(),
            spent: Vec::new(),
        }
    }

    fn mark(&mut self, phase: &'static str) {
        let now = std::time::Instant::now();
        let ms = now.duration_since(self.last).as_millis();
        self.last = now;
        match self.spent.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, total)) => *total += ms,
            None => self.spent.push((phase, ms)),
        }
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (phase, ms)) in self.spent.iter().enumerate() {
            write!(f, "{}{phase}={ms}ms", if i == 0 { "" } else { " " })?;
        }
        Ok(())
    }
}
