//! Background upkeep while the server runs: the privacy lint counters are written to
//! `control.db` every few seconds (and once more at shutdown), and expired aggregate-only
//! salts are destroyed on time, and the identifiers behind expired access links are
//! forgotten.

use crate::AppState;
use std::sync::atomic::Ordering;
use std::time::Duration;

const PERIOD: Duration = Duration::from_secs(5);

/// Runs until the server shuts down.
pub(crate) async fn run(state: AppState) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if state.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let s = state.clone();
        // SQLite work off the async workers.
        let _ = tokio::task::spawn_blocking(move || once(&s)).await;
    }
}

/// One round of upkeep.
pub(crate) fn once(state: &AppState) {
    flush_lint(state);
    let control = state.projects.control().as_ref();
    match state.salts.destroy_expired(control, state.clock.now_ms()) {
        Ok(0) => {}
        Ok(n) => tracing::info!(salts = n, "expired aggregate-only salts destroyed"),
        Err(e) => tracing::error!(error = %e, "destroying expired salts failed"),
    }
    if let Some(dsr) = &state.dsr {
        match dsr.expire_downloads() {
            Ok(0) => {}
            Ok(n) => tracing::info!(requests = n, "expired access links: identifiers forgotten"),
            Err(e) => tracing::error!(error = %e, "expiring access links failed"),
        }
    }
}

/// Adds the counters gathered since the last flush to the persisted report.
pub(crate) fn flush_lint(state: &AppState) {
    let pending = std::mem::take(&mut *state.lint.lock());
    let control = state.projects.control();
    for (project, delta) in pending {
        if let Err(e) = control.add_lint(project, &delta) {
            tracing::error!(error = %e, "persisting the lint report failed; kept in memory");
            state.lint.lock().entry(project).or_default().merge(delta);
        }
    }
}
