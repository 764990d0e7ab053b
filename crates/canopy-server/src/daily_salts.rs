//! The salts of aggregate-only pseudonyms (issue #4 item 4), one per project and UTC day,
//! kept in `control.db` (wrapped by the master key) and cached here. A salt lives 48 hours
//! from the start of its day; after that it is destroyed and never handed out again, so a
//! pseudonym can no longer be recomputed or linked — not even by the operator.

use crate::ApiError;
use canopy_control::ControlPlane;
use canopy_types::ProjectId;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};

const DAY_MS: i64 = 86_400_000;
/// How long a salt lives, from the start of its day.
pub const SALT_LIFETIME_MS: i64 = 48 * 3_600_000;

#[derive(Debug, Default)]
pub struct DailySalts {
    cache: Mutex<HashMap<(ProjectId, i64), [u8; 32]>>,
    /// The first live day at the last successful destruction (0: not yet run). Salts only
    /// expire when it moves, so the upkeep touches `control.db` once a day, not every tick.
    destroyed_before: AtomicI64,
}

/// The first day whose salt is still alive at `now_ms`.
pub fn first_live_day(now_ms: i64) -> i64 {
    (now_ms - SALT_LIFETIME_MS).div_euclid(DAY_MS) + 1
}

impl DailySalts {
    /// The salt for an event at `time_ms`: its day's, or today's when its day's salt is gone
    /// (late events) or the time is in the future.
    pub fn salt_for(
        &self,
        control: &dyn ControlPlane,
        project: ProjectId,
        time_ms: i64,
        now_ms: i64,
    ) -> Result<[u8; 32], ApiError> {
        let today = now_ms.div_euclid(DAY_MS);
        let day = time_ms.div_euclid(DAY_MS);
        let day = if day > today || day < first_live_day(now_ms) {
            today
        } else {
            day
        };
        if let Some(s) = self.cache.lock().get(&(project, day)) {
            return Ok(*s);
        }
        let salt = control.daily_salt(project, day, rand::random())?;
        self.cache.lock().insert((project, day), salt);
        Ok(salt)
    }

    /// Destroys every salt past its lifetime, in memory and on disk; returns how many rows
    /// were deleted.
    pub fn destroy_expired(
        &self,
        control: &dyn ControlPlane,
        now_ms: i64,
    ) -> Result<usize, ApiError> {
        let first = first_live_day(now_ms);
        if self.destroyed_before.load(Ordering::Relaxed) == first {
            return Ok(0);
        }
        self.cache.lock().retain(|(_, day), _| *day >= first);
        let n = control.destroy_daily_salts(first)?;
        self.destroyed_before.store(first, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_crypto::{Key, MasterKey, MasterKeySource};
    use canopy_types::{Clock, ManualClock};
    use std::sync::Arc;

    #[test]
    fn salts_rotate_daily_and_are_destroyed_48_hours_after_their_day_began() {
        let dir = tempfile::tempdir().unwrap();
        let master = Arc::new(MasterKey::from_key(Key::generate(), MasterKeySource::Env));
        let control = canopy_control::SqliteControl::open(dir.path(), master).unwrap();
        let p = control.create_project("p").unwrap().project.id;
        let day0 = 20_000 * DAY_MS;
        let clock = ManualClock::new(day0 + 3_600_000);
        let salts = DailySalts::default();
        let s0 = salts
            .salt_for(&control, p, clock.now_ms(), clock.now_ms())
            .unwrap();
        assert_eq!(
            s0,
            salts
                .salt_for(&control, p, day0 + 5, clock.now_ms())
                .unwrap()
        );
        // The next day: a new salt; yesterday's late events still get yesterday's.
        clock.set(day0 + DAY_MS + 60_000);
        let s1 = salts
            .salt_for(&control, p, clock.now_ms(), clock.now_ms())
            .unwrap();
        assert_ne!(s0, s1);
        assert_eq!(
            s0,
            salts
                .salt_for(&control, p, day0 + 10, clock.now_ms())
                .unwrap()
        );
        assert_eq!(salts.destroy_expired(&control, clock.now_ms()).unwrap(), 0);
        // 48 hours after day 0 began, its salt is destroyed, and never handed out again.
        clock.set(day0 + SALT_LIFETIME_MS);
        assert_eq!(salts.destroy_expired(&control, clock.now_ms()).unwrap(), 1);
        assert!(!control.has_daily_salt(p, day0 / DAY_MS).unwrap());
        assert!(control.has_daily_salt(p, day0 / DAY_MS + 1).unwrap());
        let late = salts
            .salt_for(&control, p, day0 + 10, clock.now_ms())
            .unwrap();
        assert_ne!(late, s0, "a late day-0 event gets today's salt");
        assert!(!control.has_daily_salt(p, day0 / DAY_MS).unwrap());
    }
}
