//! What goes into an erasure receipt (signed in `receipt.rs`).

use crate::receipt::RECEIPT_FORMAT;
use crate::subject::Subject;
use canopy_control::DsrRow;
use canopy_store::{ErasureReport, RowsFound};
use serde_json::{Value, json};
use std::collections::HashMap;

/// What one batch did, summed over its rewrite passes.
#[derive(Debug, Clone, Default)]
pub(crate) struct BatchOutcome {
    pub requests: usize,
    pub suppressed: usize,
    pub event_rows: u64,
    pub profile_rows: u64,
    pub rows_by_key: HashMap<u64, u64>,
    pub tail_records_flushed: usize,
    pub segments_scanned: usize,
    pub segments_rewritten: usize,
    pub segments_dropped: usize,
    pub old_files_unlinked: bool,
    pub passes: usize,
    pub found: RowsFound,
    pub ledger_rows: usize,
    pub tier_rows: usize,
    pub ids_removed: usize,
    pub ids_remaining: usize,
    pub ledger_remaining: usize,
}

impl BatchOutcome {
    pub fn add(&mut self, r: &ErasureReport) {
        self.passes += 1;
        self.event_rows += r.event_rows;
        self.profile_rows += r.profile_rows;
        for (k, n) in &r.rows_by_key {
            *self.rows_by_key.entry(*k).or_default() += n;
        }
        self.tail_records_flushed += r.tail_records_flushed;
        self.segments_scanned = self.segments_scanned.max(r.segments_scanned);
        self.segments_rewritten += r.segments_rewritten;
        self.segments_dropped += r.segments_dropped;
        // Every pass's replaced files must be gone.
        self.old_files_unlinked =
            r.old_files_unlinked && (self.passes == 1 || self.old_files_unlinked);
    }

    pub fn passed(&self) -> bool {
        self.found.total() == 0 && self.ids_remaining == 0 && self.ledger_remaining == 0
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The unsigned receipt of one request of a batch.
pub(crate) fn receipt_for(row: &DsrRow, subject: &Subject, o: &BatchOutcome, now_ms: i64) -> Value {
    let own_rows: u64 = subject
        .keys
        .iter()
        .filter_map(|k| o.rows_by_key.get(k))
        .sum();
    json!({
        "format": RECEIPT_FORMAT,
        "version": 1,
        "request_id": row.id,
        "project_id": row.project.0,
        "api": row.api,
        "regulation": row.regulation,
        "subject": {
            "hash": row.subject_hash,
            "hash_method": "sha256(\"canopy-dsr-subject-v1\\0\" + request_id + (\"\\0\" + id) for each id sorted)",
            "identifiers_given": subject.ids.len(),
            "identities_in_cluster": subject.cluster_ids.len(),
        },
        "submitted_at": rfc3339(row.submitted_ms),
        "received_at": rfc3339(row.received_ms),
        "completed_at": rfc3339(now_ms),
        "deadline": rfc3339(row.deadline_ms),
        "attempts": row.attempts.max(1),
        "rows_removed": own_rows,
        "stores": {
            "events_and_profiles": {
                "rows_removed_this_subject": own_rows,
                "batch_event_rows_removed": o.event_rows,
                "batch_profile_update_rows_removed": o.profile_rows,
                "segments_scanned": o.segments_scanned,
                "segments_rewritten_under_new_keys": o.segments_rewritten,
                "segments_dropped": o.segments_dropped,
                "old_data_keys_destroyed": true,
                "old_files_unlinked": o.old_files_unlinked,
                "rewrite_passes": o.passes,
            },
            "write_ahead_log": {
                "records_flushed_and_files_deleted": o.tail_records_flushed,
            },
            "identity": { "batch_ids_removed": o.ids_removed },
            "consent_ledger": { "batch_rows_removed": o.ledger_rows },
            "sticky_tiers": { "batch_rows_removed": o.tier_rows },
            "suppression_list": {
                "enabled": row.suppress,
                "batch_ids_added": o.suppressed,
            },
            "caches": { "cleared": true },
        },
        "batch": { "requests": o.requests },
        "verification": {
            "method": "every segment of the project checked for the subject's person keys (its person filter, built from the rows written, rules a key out; otherwise its person column is read and counted) and the in-memory tail scanned; every identifier looked up; consent ledger read",
            "segments_scanned": o.found.segments_scanned,
            "segments_read": o.found.segments_read,
            "rows_remaining": o.found.total(),
            "identifiers_resolvable": o.ids_remaining,
            "consent_rows_remaining": o.ledger_remaining,
            "passed": o.passed(),
        },
    })
}
